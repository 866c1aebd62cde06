/** The in-process backend for the conformance suite: scripted vCPUs, every step in order. */
import { ScriptedMachine } from "../../src/machine/scripted/machine.js";
import { parseConfigText } from "../../src/policy/load.js";
import { caseConfig, isResultOf, RAM_BASE, SECONDARY_ENTRY, type Arg, type Backend, type Case, type CaseResult, type Params, type StepResult } from "./case.js";

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
    const parsed = parseConfigText(JSON.stringify(caseConfig(c, p)), "json");
    if (!parsed.ok) throw new Error(`case config: ${JSON.stringify(parsed.errors)}`);
    const m = ScriptedMachine.fromConfig(parsed.value, c.entropyBudget !== undefined ? { entropyBudget: c.entropyBudget } : {});
    const v = m.vm("vm0");
    for (const w of c.memory ?? []) if (!v.memory.write(w.at, w.bytes)) throw new Error(`case memory at 0x${w.at.toString(16)} is outside the VM's RAM`);
    const steps: StepResult[] = [];
    const arg = (a: Arg): bigint => {
      if (!isResultOf(a)) return substitute(a);
      const r = steps[a.step];
      if (!r || r.halted) throw new Error(`an argument takes step ${a.step}'s result, which it does not have`);
      return r.regs[a.reg]!;
    };
    for (const s of c.steps) {
      if (s.wakeFirst !== undefined) v.wake(s.wakeFirst);
      if (s.write && !v.memory.write(s.write.at, s.write.bytes)) throw new Error(`a step's write at 0x${s.write.at.toString(16)} is outside the VM's RAM`);
      const r = await v.vcpu(s.vcpu).callAsync(p.conduit, s.fid, (s.args ?? []).map(arg));
      steps.push({ regs: r.regs.slice(0, 18), halted: r.outcome === "halt" });
    }
    const state = v.power.state === "off" ? "off" : v.power.resets > 0 ? "reset" : "running";
    const memoryAfter = (c.memoryAfter ?? []).map((e) => v.memory.read(e.at, e.bytes.length));
    return { steps, starts: v.vcpus.map((x) => x.starts), entryContext: v.vcpus.map((x) => x.entryX0), vmState: state, memoryAfter };
  },
};
