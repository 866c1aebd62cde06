import { describe, expect, it } from "vitest";
import { checkFid, dispatchFid, FID_MBZ_SET, FID_OK, FID_SMC64_FROM_AARCH32, FID_SVE_HINT_BEFORE_1_3, registerRules } from "./convention.js";
import { SMCCC_VERSIONS } from "./version.js";

const V = SMCCC_VERSIONS;

describe("register rules per SMCCC version (DEN0028 §2.6-2.8)", () => {
  it("uses x1-x6 in and x0-x3 out before 1.2, for both widths", () => {
    for (const v of [V["1.0"], V["1.1"]]) {
      expect(registerRules(v, false)).toEqual({ lastArg: 6, lastResult: 3 });
      expect(registerRules(v, true)).toEqual({ lastArg: 6, lastResult: 3 });
    }
  });

  it("uses x1-x17 / x0-x17 for SMC64 and w1-w7 / w0-w7 for SMC32 from 1.2", () => {
    for (const v of [V["1.2"], V["1.3"], V["1.4"], V["1.5"], V["1.6"]]) {
      expect(registerRules(v, true)).toEqual({ lastArg: 17, lastResult: 17 });
      expect(registerRules(v, false)).toEqual({ lastArg: 7, lastResult: 7 });
    }
  });
});

describe("function-ID checks before dispatch", () => {
  it("rejects SMC64 IDs from AArch32 callers", () => {
    expect(checkFid(0xc400_0003, true, V["1.2"])).toBe(FID_SMC64_FROM_AARCH32);
    expect(checkFid(0xc400_0003, false, V["1.2"])).toBe(FID_OK);
    expect(checkFid(0x8400_0003, true, V["1.2"])).toBe(FID_OK);
  });

  it("rejects fast calls with any of bits 23:17 set", () => {
    for (let bit = 17; bit <= 23; bit++) expect(checkFid((0x8400_0000 | (1 << bit)) >>> 0, false, V["1.6"])).toBe(FID_MBZ_SET);
  });

  it("leaves bits 23:16 of yielding calls alone", () => {
    expect(checkFid(0x32fe_0004, false, V["1.2"])).toBe(FID_OK);
  });

  it("accepts the SVE hint from 1.3 and rejects it before", () => {
    expect(checkFid(0x8401_0000, false, V["1.3"])).toBe(FID_OK);
    expect(checkFid(0x8401_0000, false, V["1.2"])).toBe(FID_SVE_HINT_BEFORE_1_3);
  });

  it("strips the SVE hint of fast calls only", () => {
    expect(dispatchFid(0xc401_0003)).toBe(0xc400_0003);
    expect(dispatchFid(0x3201_0004)).toBe(0x3201_0004);
  });
});
