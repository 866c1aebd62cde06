/**
 * `smcvisor fuzz` as a benchmark (issue 11): a campaign on the demo's config (examples/demo.yaml: two VMs
 * sharing OP-TEE through the mediator, SiP calls forwarded for one) with every invariant checked after every
 * call and every call made again with the answer cache off, against the same calls with no checks at all
 * (the plain call loop: the same generator, the same machine) measured in the same process, half just before
 * and half just after (after a short warm-up run), so that the machine's drift over the checked run (other
 * tenants of a shared machine) weighs on both. The ratio is what the checks cost per call.
 */
import { resolve } from "node:path";
import { runCampaign, type CampaignResult } from "../src/fuzz/campaign.js";
import { loadScenario } from "../src/machine/qemu/scenario.js";

export const FUZZ_CONFIG = "examples/demo.yaml";

export interface FuzzBenchResult {
  readonly config: string;
  readonly seed: number;
  readonly checked: { readonly calls: number; readonly seconds: number; readonly callsPerSecond: number; readonly violation: CampaignResult["violation"] };
  readonly plain: { readonly calls: number; readonly seconds: number; readonly callsPerSecond: number };
  /** Plain calls per second over checked calls per second. */
  readonly checkCost: number;
}

export async function fuzzBench(opts: { calls: number; baselineCalls: number; seed?: number; onProgress?: (calls: number) => void }): Promise<FuzzBenchResult> {
  const root = resolve(import.meta.dirname, "..");
  const scenario = loadScenario(resolve(root, FUZZ_CONFIG));
  if (!scenario.ok) throw new Error(`${FUZZ_CONFIG}: ${scenario.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  const seed = opts.seed ?? 1;
  const base = { config: scenario.scenario.config, seed, cwd: root };
  const half = Math.max(1, Math.round(opts.baselineCalls / 2));
  await runCampaign({ ...base, calls: Math.min(half, 20_000), checks: false });
  const before = await runCampaign({ ...base, calls: half, checks: false });
  const checked = await runCampaign({ ...base, calls: opts.calls, ...(opts.onProgress ? { onProgress: opts.onProgress, progressEvery: 1_000_000 } : {}) });
  const after = await runCampaign({ ...base, calls: half, checks: false });
  const rate = (r: CampaignResult) => (r.calls * 1000) / r.elapsedMs;
  const plain = { calls: before.calls + after.calls, elapsedMs: before.elapsedMs + after.elapsedMs };
  return {
    config: FUZZ_CONFIG,
    seed,
    checked: { calls: checked.calls, seconds: checked.elapsedMs / 1000, callsPerSecond: rate(checked), violation: checked.violation },
    plain: { calls: plain.calls, seconds: plain.elapsedMs / 1000, callsPerSecond: (plain.calls * 1000) / plain.elapsedMs },
    checkCost: (plain.calls * 1000) / plain.elapsedMs / rate(checked),
  };
}
