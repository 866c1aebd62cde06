/** Evaluates a case's expectations against what a backend observed. Shared by every backend. */
import { expect } from "vitest";
import type { Case, CaseResult, Params } from "./case.js";
import { caseFailures } from "./verdict.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The case's `memoryAfter` against the bytes the backend read at the end. */
export function memoryFailures(c: Case, r: CaseResult): string[] {
  return (c.memoryAfter ?? []).flatMap((want, i) => {
    const got = r.memoryAfter?.[i] ?? null;
    const where = `memory at 0x${want.at.toString(16)}`;
    if (got === null) return [`${where}: the backend did not read it`];
    return hex(got) === hex(want.bytes) ? [] : [`${where}: ${hex(got)}, expected ${hex(want.bytes)}`];
  });
}

/** Each step's `same` registers against the earlier results they name. */
export function sameFailures(c: Case, r: CaseResult): string[] {
  return c.steps.flatMap((s, i) =>
    Object.entries(s.same ?? {}).flatMap(([reg, ref]) => {
      const got = r.steps[i]?.regs[Number(reg)], want = r.steps[ref.step]?.regs[ref.reg];
      return got !== undefined && got === want ? [] : [`step ${i}: x${reg} = ${got?.toString(16)}, expected step ${ref.step}'s x${ref.reg} = ${want?.toString(16)}`];
    }),
  );
}

export function checkCase(c: Case, r: CaseResult, p: Params): void {
  expect([...caseFailures(c, r, p), ...memoryFailures(c, r), ...sameFailures(c, r)]).toEqual([]);
}
