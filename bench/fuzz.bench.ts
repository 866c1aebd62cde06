/**
 * `smcvisor fuzz` as a benchmark (issue 11): a campaign on the demo's config (examples/demo.yaml: two VMs
 * sharing OP-TEE through the mediator, SiP calls forwarded for one) with every invariant checked after every
 * call and every call made again with the answer cache off, against the same calls with no checks at all
 * (the plain call loop: the same generator, the same machine) measured in the same process just before.
 * The ratio is what the checks cost per call.
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
  const plain = await runCampaign({ ...base, calls: opts.baselineCalls, checks: false });
  const checked = await runCampaign({ ...base, calls: opts.calls, ...(opts.onProgress ? { onProgress: opts.onProgress, progressEvery: 1_000_000 } : {}) });
  const rate = (r: CampaignResult) => (r.calls * 1000) / r.elapsedMs;
  return {
    config: FUZZ_CONFIG,
    seed,
    checked: { calls: checked.calls, seconds: checked.elapsedMs / 1000, callsPerSecond: rate(checked), violation: checked.violation },
    plain: { calls: plain.calls, seconds: plain.elapsedMs / 1000, callsPerSecond: rate(plain) },
    checkCost: rate(plain) / rate(checked),
  };
}
