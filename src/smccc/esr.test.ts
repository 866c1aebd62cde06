import { describe, expect, it } from "vitest";
import { aarch32ConditionFailed, conditionHolds, esrFor } from "./esr.js";

describe("ESR_EL2 of trapped calls (Arm ARM D24.2.45)", () => {
  it("matches the values measured under QEMU", () => {
    expect(esrFor("hvc", false)).toBe(0x5a00_0000);
    expect(esrFor("smc", false)).toBe(0x5e00_0000);
  });

  it("encodes the AArch32 classes and the immediate", () => {
    expect(esrFor("hvc", true) >>> 26).toBe(0x12);
    expect(esrFor("smc", true) >>> 26).toBe(0x13);
    expect(esrFor("hvc", false, 0xea1) & 0xffff).toBe(0xea1);
    // AArch32 SMC carries no immediate.
    expect(esrFor("smc", true, 5) & 0xffff).toBe(0);
  });
});

describe("AArch32 conditional SMC", () => {
  const Z = 0b0100, N = 0b1000, C = 0b0010, Vf = 0b0001;
  it.each([
    [0x0, Z, true], [0x0, 0, false], [0x1, Z, false], [0x1, 0, true],
    [0x2, C, true], [0x3, C, false], [0x4, N, true], [0x5, N, false], [0x6, Vf, true], [0x7, Vf, false],
    [0x8, C, true], [0x8, C | Z, false], [0x9, C | Z, true], [0xa, N | Vf, true], [0xa, N, false], [0xb, N, true],
    [0xc, 0, true], [0xc, Z, false], [0xd, Z, true], [0xe, 0, true], [0xf, 0, true],
  ])("cond %i with NZCV %i holds: %s", (cond, nzcv, holds) => {
    expect(conditionHolds(cond, nzcv)).toBe(holds);
  });

  it("skips only when CV is set, CCKNOWNPASS is clear and the condition fails", () => {
    const esr = esrFor("smc", true);
    const eqFailing = (esr | (1 << 24) | (0x0 << 20)) >>> 0;
    expect(aarch32ConditionFailed(eqFailing, 0)).toBe(true);
    expect(aarch32ConditionFailed(eqFailing, Z << 28)).toBe(false);
    expect(aarch32ConditionFailed((eqFailing | (1 << 19)) >>> 0, 0)).toBe(false);
    expect(aarch32ConditionFailed(esr, 0)).toBe(false);
  });
});
