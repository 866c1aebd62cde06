/** Evaluates a case's expectations against what a backend observed. Shared by every backend. */
import { expect } from "vitest";
import type { Case, CaseResult, Params, Step } from "./case.js";

/** x0 as a signed value of the call's width: W for SMC32 or AArch32 callers, X for SMC64. */
export function signedRet(step: Step, regs: readonly bigint[], p: Params): number {
  const wide = !p.aarch32 && (step.fid & 0x4000_0000) !== 0;
  return Number(wide ? BigInt.asIntN(64, regs[0]!) : BigInt.asIntN(32, regs[0]!));
}

export function checkCase(c: Case, r: CaseResult, p: Params): void {
  expect(r.steps).toHaveLength(c.steps.length);
  const raceRets = new Map<string, number[]>();
  c.steps.forEach((step, i) => {
    const got = r.steps[i]!;
    const where = `step ${i} (vCPU ${step.vcpu}, 0x${step.fid.toString(16)})`;
    expect(got.halted, `${where}: halts`).toBe(step.halts ?? false);
    if (got.halted) return;
    const ret = signedRet(step, got.regs, p);
    if (step.race !== undefined) raceRets.set(step.race, [...(raceRets.get(step.race) ?? []), ret]);
    if (step.ret !== undefined) expect(ret, `${where}: x0`).toBe(step.ret);
    for (const [reg, value] of Object.entries(step.regs ?? {})) expect(got.regs[Number(reg)], `${where}: x${reg}`).toBe(value);
    for (const reg of step.nonZero ?? []) expect(got.regs[reg], `${where}: x${reg} is not zero`).not.toBe(0n);
    for (const [reg, mask] of Object.entries(step.clearBits ?? {})) expect(got.regs[Number(reg)]! & mask, `${where}: x${reg} & 0x${mask.toString(16)}`).toBe(0n);
  });
  for (const [race, want] of Object.entries(c.races ?? {})) {
    const rets = raceRets.get(race) ?? [];
    expect(rets.filter((x) => x === want.winner), `race ${race}: exactly one winner in ${rets}`).toHaveLength(1);
    expect(rets.filter((x) => x !== want.winner).every((x) => x === want.others), `race ${race}: every other call gets ${want.others}: ${rets}`).toBe(true);
  }
  for (const [vcpu, n] of Object.entries(c.starts ?? {})) expect(r.starts[Number(vcpu)], `vCPU ${vcpu} starts`).toBe(n);
  for (const [vcpu, ctx] of Object.entries(c.entryContext ?? {})) expect(r.entryContext[Number(vcpu)], `vCPU ${vcpu} x0 at entry`).toBe(ctx);
  if (c.vmState !== undefined) expect(r.vmState).toBe(c.vmState);
}
