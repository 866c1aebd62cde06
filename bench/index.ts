/**
 * `npm run bench`: every benchmark, printed as a table with ratios against baselines measured in the same
 * run; `--json` for machine-readable results. `--quick` for a short run, `--no-qemu` for the in-process part only.
 */
import { fuzzBench } from "./fuzz.bench.js";
import { fmt, table } from "./harness.js";
import { platformBench } from "./platform.bench.js";
import { recordBench } from "./record.bench.js";
import { routerBench } from "./router.bench.js";
import { teeBench } from "./tee.bench.js";
import { wakeBench } from "./wake.bench.js";
import { uiBench } from "./ui.bench.js";

const args = new Set(process.argv.slice(2));
const quick = args.has("--quick");
const json = args.has("--json");

const router = routerBench({ iterations: quick ? 50_000 : 200_000, repetitions: quick ? 9 : 31 });
const platform = args.has("--no-qemu") ? null : await platformBench({ quick });
const tee = await teeBench({ quick, qemu: !args.has("--no-qemu") });
// 10^7 fuzzing calls with every invariant checked (72-124 s on the 2-core machine, by its load), against a
// tenth as many plain calls; --quick runs 10^5 of each.
const wake = args.has("--no-qemu") ? null : await wakeBench();
const ui = args.has("--no-qemu") ? null : await uiBench({ quick });
const fuzz = await fuzzBench({ calls: quick ? 100_000 : 10_000_000, baselineCalls: quick ? 100_000 : 1_000_000 });
const record = await recordBench({ iterations: quick ? 20_000 : 100_000, repetitions: quick ? 9 : 21 });

if (json) {
  console.log(JSON.stringify({ node: process.version, router, platform, tee, fuzz, wake, ui, record }, null, 2));
} else {
  console.log(`smcvisor benchmarks (Node ${process.version}; medians of interleaved repetitions, ratios paired per repetition)\n`);
  console.log("In-process router: one trapped HVC per iteration, each case in a loop of the same shape a backend has\n");
  console.log(table([["case", "ns/call", "calls/s"], ...router.measurements.map((m) => [m.name, m.nsPerOp.toFixed(1), fmt(m.opsPerSec)])]));
  console.log("");
  console.log(table([["ratio", "value"], ...Object.entries(router.ratios).map(([k, v]) => [k, `${v.toFixed(2)}x`])]));
}

if (!json && platform) {
  console.log("");
  console.log("Platform: a bare-metal loop of hvc PSCI_VERSION from EL1 (guest counter), medians");
  console.log("");
  console.log(table([["case", "calls", "ns/call", "calls/s"], ...platform.loops.map((l) => [l.name, String(l.calls), l.nsPerCall.toFixed(0), fmt(1e9 / l.nsPerCall)])]));
  console.log("");
  console.log(table([["Linux boot (2 vCPUs) to its first userspace line", "ms (each run)"], ...platform.boots.map((b) => [b.name, b.ms.map((x) => x.toFixed(0)).join(", ")])]));
  console.log("");
  console.log(table([["ratio", "value"], ...Object.entries(platform.ratios).map(([k, v]) => [k, `${v.toFixed(2)}x`])]));
}

if (!json) {
  console.log("");
  console.log("TEE: OP-TEE round trips through the mediator and the modelled OP-TEE (per second)");
  console.log("");
  const cell = (r: Record<string, number> | null, k: string) => (r?.[k] !== undefined ? fmt(r[k]!) : "");
  const rows = Object.keys(tee.inProcess).map((k) => [k, fmt(tee.inProcess[k]!), cell(tee.linux, k), cell(tee.linuxFfa, k)]);
  for (const k of Object.keys(tee.linux ?? {})) if (!(k in tee.inProcess)) rows.push([k, "", cell(tee.linux, k), cell(tee.linuxFfa, k)]);
  console.log(table([["case", "in-process", "Linux, SMC ABI", "Linux, FF-A"], ...rows]));
  console.log("");
  console.log(table([["ratio", "value"], ...Object.entries(tee.ratios).map(([k, v]) => [k, `${v.toFixed(3)}x`])]));
}

if (!json) {
  console.log("");
  console.log(`Fuzzing: smcvisor fuzz on ${fuzz.config} (seed ${fuzz.seed}), every call checked and made again with the answer cache off, against the same calls unchecked`);
  console.log("");
  console.log(table([["case", "calls", "s", "calls/s"], ["checked campaign", String(fuzz.checked.calls), fuzz.checked.seconds.toFixed(1), fmt(fuzz.checked.callsPerSecond)], ["plain call loop (no checks)", String(fuzz.plain.calls), fuzz.plain.seconds.toFixed(1), fmt(fuzz.plain.callsPerSecond)]]));
  console.log("");
  console.log(table([["ratio", "value"], ["plain calls/s / checked calls/s", `${fuzz.checkCost.toFixed(2)}x`]]));
  const v = fuzz.checked.violation;
  if (v) console.log(`\nVIOLATION (${v.kind}) at call ${v.call}: ${v.message}\n  replay: smcvisor fuzz --config ${fuzz.config} --seed ${fuzz.seed} --calls ${v.call + 1}`);
}

if (!json && wake) {
  console.log("");
  console.log(`Wake-up latency: ${wake.config}, Linux idling through cpuidle-psci; guest timer condition -> guest resumed (${wake.samples} timer wake-ups of ${wake.waits} waits)`);
  console.log("");
  console.log(table([["median µs", "p90 µs", "max µs"], [wake.medianUs.toFixed(0), wake.p90Us.toFixed(0), wake.maxUs.toFixed(0)]]));
  console.log("");
  console.log(table([["ratio", "value"], [`median / declared exit latency (${wake.declaredExitUs} µs)`, `${wake.ratio.toFixed(2)}x`]]));
}

if (!json && ui) {
  console.log("");
  console.log("Dashboard: Linux (2 vCPUs) boot to its first userspace line, without and with the page open in chromium");
  console.log("");
  console.log(table([["case", "ms (each run)"], ...ui.boots.map((b) => [b.name, b.ms.map((x) => x.toFixed(0)).join(", ")]), ["browser CPU seconds during the boot", ui.browserCpuSeconds.map((x) => x.toFixed(2)).join(", ")]]));
  console.log("");
  console.log(table([["ratio", "value"], ...Object.entries(ui.ratios).map(([k, v]) => [k, `${v.toFixed(3)}x`])]));
}

if (!json) {
  console.log("");
  console.log("Recording (--record): the same trap loop with the recorder writing to /dev/null and without; replay of such a recording (read, parse, replay) against the live calls");
  console.log("");
  console.log(table([["case", "ns/call", "calls/s"], ...record.measurements.map((m) => [m.name, m.nsPerOp.toFixed(1), fmt(m.opsPerSec)]), [`replay of ${record.replay.calls} recorded calls (one run)`, record.replay.replayNsPerCall.toFixed(0), fmt(1e9 / record.replay.replayNsPerCall)]]));
  console.log("");
  console.log(table([["ratio", "value"], ...Object.entries(record.ratios).map(([k, v]) => [k, `${v.toFixed(2)}x`])]));
}
