/** A case's expectations against what a backend observed, as a list of failures (empty: the case holds). */
import type { Case, CaseResult, Params, Step } from "./case.js";

/** x0 as a signed value of the call's width: W for SMC32 or AArch32 callers, X for SMC64. */
export function signedRet(step: Step, regs: readonly bigint[], p: Params): number {
  const wide = !p.aarch32 && (step.fid & 0x4000_0000) !== 0;
  return Number(wide ? BigInt.asIntN(64, regs[0]!) : BigInt.asIntN(32, regs[0]!));
}

const hex = (v: bigint | undefined) => (v === undefined ? "nothing" : `0x${v.toString(16)}`);

export function caseFailures(c: Case, r: CaseResult, p: Params): string[] {
  const out: string[] = [];
  if (r.steps.length !== c.steps.length) out.push(`${r.steps.length} steps ran, ${c.steps.length} expected`);
  const raceRets = new Map<string, number[]>();
  c.steps.forEach((step, i) => {
    const got = r.steps[i];
    if (!got) return;
    const where = `step ${i} (vCPU ${step.vcpu}, 0x${step.fid.toString(16)})`;
    if (got.halted !== (step.halts ?? false)) out.push(`${where}: ${got.halted ? "halted" : "returned"}, expected it to ${step.halts ? "halt" : "return"}`);
    if (got.halted) return;
    const ret = signedRet(step, got.regs, p);
    if (step.race !== undefined) raceRets.set(step.race, [...(raceRets.get(step.race) ?? []), ret]);
    if (step.ret !== undefined && ret !== step.ret) out.push(`${where}: x0 = ${ret}, expected ${step.ret}`);
    for (const [reg, value] of Object.entries(step.regs ?? {})) if (got.regs[Number(reg)] !== value) out.push(`${where}: x${reg} = ${hex(got.regs[Number(reg)])}, expected ${hex(value)}`);
    for (const reg of step.nonZero ?? []) if (got.regs[reg] === 0n) out.push(`${where}: x${reg} is zero`);
    for (const [reg, mask] of Object.entries(step.clearBits ?? {})) if ((got.regs[Number(reg)]! & mask) !== 0n) out.push(`${where}: x${reg} has bits of ${hex(mask)} set`);
  });
  for (const [race, want] of Object.entries(c.races ?? {})) {
    const rets = raceRets.get(race) ?? [];
    const winners = rets.filter((x) => x === want.winner).length;
    if (winners !== 1 || !rets.filter((x) => x !== want.winner).every((x) => x === want.others)) {
      out.push(`race ${race}: got ${rets.join(", ")}; expected exactly one ${want.winner} and ${want.others} for the others`);
    }
  }
  for (const [vcpu, n] of Object.entries(c.starts ?? {})) if (r.starts[Number(vcpu)] !== n) out.push(`vCPU ${vcpu} started ${r.starts[Number(vcpu)]} times, expected ${n}`);
  for (const [vcpu, ctx] of Object.entries(c.entryContext ?? {})) if (r.entryContext[Number(vcpu)] !== ctx) out.push(`vCPU ${vcpu} saw x0 = ${hex(r.entryContext[Number(vcpu)])} at entry, expected ${hex(ctx)}`);
  if (c.vmState !== undefined && r.vmState !== c.vmState) out.push(`the VM is ${r.vmState}, expected ${c.vmState}`);
  return out;
}
