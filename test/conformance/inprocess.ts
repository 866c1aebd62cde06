/** The in-process backend for the conformance suite: scripted vCPUs, every step in order. */
import { ScriptedMachine } from "../../src/machine/scripted/machine.js";
import { parseConfigText } from "../../src/policy/load.js";
import { RAM_BASE, SECONDARY_ENTRY, type Backend, type Case, type CaseResult, type Params, type StepResult } from "./case.js";

/** Where a started vCPU "runs": any address in RAM will do in-process. */
const ENTRY = RAM_BASE + 0x8_0000n;

function substitute(a: bigint | number): bigint {
  const v = BigInt(a);
  // Keep the upper word (W-register tests) and the low two bits (Thumb and alignment tests).
  return (v & 0xffff_fffcn) === SECONDARY_ENTRY ? (v & ~0xffff_ffffn) | ENTRY | (v & 3n) : v;
}

export const inProcessBackend: Backend = {
  name: "in-process",
  capabilities: new Set(["aarch32", "wake", "system-events", "entropy-budget", "entry-registers"]),
  async run(c: Case, p: Params): Promise<CaseResult> {
    const vm = { aarch32: p.aarch32, conduit: p.conduit, ...c.vm, services: { psci: { version: p.psci }, ...((c.vm?.services as object) ?? {}) } };
    const parsed = parseConfigText(JSON.stringify({ vms: { vm0: vm } }), "json");
    if (!parsed.ok) throw new Error(`case config: ${JSON.stringify(parsed.errors)}`);
    const m = ScriptedMachine.fromConfig(parsed.value, c.entropyBudget !== undefined ? { entropyBudget: c.entropyBudget } : {});
    const v = m.vm("vm0");
    const steps: StepResult[] = [];
    for (const s of c.steps) {
      if (s.wakeFirst !== undefined) v.wake(s.wakeFirst);
      const r = await v.vcpu(s.vcpu).callAsync(p.conduit, s.fid, (s.args ?? []).map(substitute));
      steps.push({ regs: r.regs.slice(0, 18), halted: r.outcome === "halt" });
    }
    const state = v.power.state === "off" ? "off" : v.power.resets > 0 ? "reset" : "running";
    return { steps, starts: v.vcpus.map((x) => x.starts), entryContext: v.vcpus.map((x) => x.entryX0), vmState: state };
  },
};
