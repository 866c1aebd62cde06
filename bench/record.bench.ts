/**
 * What `--record` costs per call (docs/record-replay.md): the same trap loop through a hypervisor with the
 * recorder as its observer (writing to /dev/null, so the cost is the recorder's, not the disk's) and through
 * one without, interleaved, as paired ratios. Two calls: SMCCC_VERSION (the answer cache's path, the
 * cheapest call there is, so the worst ratio) and PSCI_AFFINITY_INFO (the full path). And replay's speed:
 * a recording of those calls read, parsed and replayed, per call, against making them live.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hypervisor, type Domain } from "../src/hypervisor/hypervisor.js";
import { parseConfigText, type Config } from "../src/policy/load.js";
import { parseRecording } from "../src/record/format.js";
import { Recorder } from "../src/record/recorder.js";
import { replayRecording } from "../src/record/replay.js";
import { esrFor } from "../src/smccc/esr.js";
import { measure, pairedRatio, type Case, type Measurement } from "./harness.js";

const SMCCC_VERSION = 0x8000_0000;
const PSCI_AFFINITY_INFO = 0x8400_0004;
const ESR_HVC = esrFor("hvc", false);

function config(): Config {
  const r = parseConfigText("vms:\n  vm0: { smccc: '1.2' }\n");
  if (!r.ok) throw new Error("config");
  return r.value;
}

function domain(recorder: Recorder | null): Domain {
  const r = Hypervisor.fromConfig(config(), recorder ? { observer: recorder } : {});
  if (!r.ok) throw new Error("hypervisor");
  const d = r.hypervisor.domain("vm0");
  d.start();
  return d;
}

function loop(d: Domain, regs: Uint32Array, fid: number, n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) {
    regs[0] = fid;
    regs[1] = 0;
    regs[2] = 0;
    d.trap(0, regs, ESR_HVC, 0x3c5);
    acc += regs[0]!;
  }
  return acc;
}

function trapCase(name: string, d: Domain, fid: number): Case {
  const regs = new Uint32Array(36);
  return { name, run: (n) => loop(d, regs, fid, n) };
}

export interface RecordBenchResult {
  readonly measurements: Measurement[];
  readonly ratios: Record<string, number>;
  readonly replay: { readonly calls: number; readonly liveNsPerCall: number; readonly replayNsPerCall: number };
}

export async function recordBench(opts: { iterations: number; repetitions: number }): Promise<RecordBenchResult> {
  const sink = new Recorder("/dev/null", { smcvisor: "bench", config: { kind: "config", name: "bench", text: "" } }, { limitBytes: Number.MAX_SAFE_INTEGER });
  const plain = domain(null);
  const recorded = domain(sink);
  const measurements = measure(
    [
      trapCase("SMCCC_VERSION, not recording", plain, SMCCC_VERSION),
      trapCase("SMCCC_VERSION, recording", recorded, SMCCC_VERSION),
      trapCase("PSCI_AFFINITY_INFO, not recording", plain, PSCI_AFFINITY_INFO),
      trapCase("PSCI_AFFINITY_INFO, recording", recorded, PSCI_AFFINITY_INFO),
    ],
    { iterations: opts.iterations, repetitions: opts.repetitions },
  );
  sink.close();
  const [v0, v1, a0, a1] = measurements as [Measurement, Measurement, Measurement, Measurement];

  // Replay: a recording of `calls` calls, replayed whole (read, parse, replay) against making them live.
  const dir = mkdtempSync(join(tmpdir(), "smcvisor-record-bench-"));
  try {
    const calls = opts.iterations;
    const path = join(dir, "bench.ndjson");
    const rec = new Recorder(path, { smcvisor: "bench", config: { kind: "config", name: "bench", text: "" } }, { limitBytes: Number.MAX_SAFE_INTEGER });
    const d = domain(rec);
    const regs = new Uint32Array(36);
    loop(d, regs, SMCCC_VERSION, calls / 2);
    loop(d, regs, PSCI_AFFINITY_INFO, calls / 2);
    rec.close();
    const t0 = performance.now();
    const live = domain(null);
    loop(live, regs, SMCCC_VERSION, calls / 2);
    loop(live, regs, PSCI_AFFINITY_INFO, calls / 2);
    const t1 = performance.now();
    const parsed = parseRecording(readFileSync(path, "utf8"));
    if (!parsed.ok) throw new Error(parsed.error);
    const r = await replayRecording(parsed.recording, config());
    const t2 = performance.now();
    if (!r.ok || r.report.diffs.length > 0) throw new Error("the benchmark's recording does not replay cleanly");
    return {
      measurements,
      ratios: { "SMCCC_VERSION recording / not": pairedRatio(v1, v0), "PSCI_AFFINITY_INFO recording / not": pairedRatio(a1, a0), "replay / live, per call": (t2 - t1) / (t1 - t0) },
      replay: { calls, liveNsPerCall: ((t1 - t0) * 1e6) / calls, replayNsPerCall: ((t2 - t1) * 1e6) / calls },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
