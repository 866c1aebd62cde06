/**
 * Wake-up latency of CPU idle under QEMU (docs/suspend.md): examples/idle.yaml's first (GICv2) Linux guest idles on two
 * vCPUs through cpuidle-psci, and for each wait that its own virtual timer ends the shim notes the counter
 * ticks from the timer's condition (CNTV_CVAL_EL0 reached) to the moment it resumes the guest (the last
 * 256 per vCPU, shim/suspend.c). Reported: median, 90th percentile and largest, in µs, and as a ratio to
 * the exit latency the device tree declares for the power-down state (what the guest's governor budgets):
 * above 1, the state costs more than the guest is told.
 *
 * `node bin/run-ts.mjs bench/wake.bench.ts` runs it alone.
 */
import { resolve } from "node:path";
import { runScenario } from "../src/cli/run.js";
import { loadScenario } from "../src/machine/qemu/scenario.js";
import { DEFAULT_IDLE_STATES } from "../src/policy/load.js";

export const WAKE_CONFIG = "examples/idle.yaml";
/** QEMU virt's generic timer (CNTFRQ_EL0 under QEMU 7.2). */
const COUNTER_HZ = 62_500_000;

export interface WakeBenchResult {
  readonly config: string;
  /** Timer wake-ups measured (all vCPUs), and all wake-up waits the shim counted. */
  readonly samples: number;
  readonly waits: number;
  readonly medianUs: number;
  readonly p90Us: number;
  readonly maxUs: number;
  /** The power-down state's exit-latency-us in the device tree. */
  readonly declaredExitUs: number;
  /** medianUs / declaredExitUs. */
  readonly ratio: number;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export async function wakeBench(): Promise<WakeBenchResult> {
  const root = resolve(import.meta.dirname, "..");
  const s = loadScenario(resolve(root, WAKE_CONFIG));
  if (!s.ok) throw new Error(`${WAKE_CONFIG}: ${s.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  // Its first VM alone (GICv2), so the latency is one VM's with the host's cores to itself.
  const first = s.scenario.config.vms[0]!.name;
  const scenario = { ...s.scenario, config: { ...s.scenario.config, vms: [s.scenario.config.vms[0]!] }, guests: new Map([[first, s.scenario.guests.get(first)!]]) };
  const report = await runScenario(scenario);
  const vm = report.vms[0]!;
  if (vm.exit.state !== "off") throw new Error(`${WAKE_CONFIG}: the guest did not power off (${vm.exit.state}: ${vm.exit.reason})`);
  const wakes = vm.exit.wakes ?? [];
  const us = wakes.flatMap((w) => w.samples.map((t) => (t * 1e6) / COUNTER_HZ)).sort((a, b) => a - b);
  if (us.length === 0) throw new Error(`${WAKE_CONFIG}: no timer wake-up was measured`);
  const declaredExitUs = DEFAULT_IDLE_STATES.find((st) => st.powerDown)!.exitLatencyUs;
  const medianUs = quantile(us, 0.5);
  return {
    config: WAKE_CONFIG,
    samples: us.length,
    waits: wakes.reduce((n, w) => n + w.wakes, 0),
    medianUs,
    p90Us: quantile(us, 0.9),
    maxUs: us.at(-1)!,
    declaredExitUs,
    ratio: medianUs / declaredExitUs,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const r = await wakeBench();
  console.log(`Wake-up latency (${r.config}): guest timer condition -> guest resumed, ${r.samples} timer wake-ups of ${r.waits} waits`);
  console.log(`  median ${r.medianUs.toFixed(0)} µs, p90 ${r.p90Us.toFixed(0)} µs, max ${r.maxUs.toFixed(0)} µs`);
  console.log(`  median / declared exit latency (${r.declaredExitUs} µs): ${r.ratio.toFixed(2)}x`);
}
