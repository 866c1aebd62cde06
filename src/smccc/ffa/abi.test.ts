import { describe, expect, it } from "vitest";
import {
  FFA_RET,
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  ffaEndpoints,
  ffaErrorName,
  ffaFunctionName,
  ffaHandle,
  ffaHandleHi,
  ffaHandleLo,
  ffaIdIsSecure,
  ffaReceiverOf,
  ffaSenderOf,
  ffaVersion,
  ffaVersionCompatible,
  ffaVersionValid,
  isFfaFunction,
} from "./abi.js";

describe("FF-A ABI constants", () => {
  it("error codes are DEN0077's (Linux FFA_RET_*, Xen, Hafnium agree)", () => {
    expect(Object.values(FFA_RET)).toEqual([-1, -2, -3, -4, -5, -6, -7, -8, -9, -10]);
    expect(ffaErrorName(-6)).toBe("FFA_DENIED");
    expect(ffaErrorName(-42)).toBe("FFA_ERROR(-42)");
  });

  it("versions: major in [30:16], minor in [15:0], bit 31 MBZ", () => {
    expect([FFA_VERSION_1_0, FFA_VERSION_1_1, FFA_VERSION_1_2]).toEqual([ffaVersion(1, 0), ffaVersion(1, 1), ffaVersion(1, 2)]);
    expect(ffaVersionValid(0x8001_0000)).toBe(false);
    expect(ffaVersionCompatible(FFA_VERSION_1_0, FFA_VERSION_1_2)).toBe(true);
    expect(ffaVersionCompatible(ffaVersion(1, 3), FFA_VERSION_1_2)).toBe(false);
    expect(ffaVersionCompatible(ffaVersion(2, 0), FFA_VERSION_1_2)).toBe(false);
  });

  it("endpoint IDs in w1 and the secure bit", () => {
    expect(ffaEndpoints(1, 0x8001)).toBe(0x0001_8001);
    expect(ffaSenderOf(0x0001_8001)).toBe(1);
    expect(ffaReceiverOf(0x0001_8001)).toBe(0x8001);
    expect(ffaEndpoints(0x8001, 2)).toBe(0x8001_0002);
    expect(ffaIdIsSecure(0x8000)).toBe(true);
    expect(ffaIdIsSecure(0x7fff)).toBe(false);
  });

  it("handles travel as two 32-bit halves, low first", () => {
    const h = ffaHandle(0xdead_beef, 0x8000_0001);
    expect(h).toBe(0x8000_0001_dead_beefn);
    expect([ffaHandleLo(h), ffaHandleHi(h)]).toEqual([0xdead_beef, 0x8000_0001]);
  });

  it("function names and the FF-A range come from the function table", () => {
    expect(ffaFunctionName(0xc400_0073)).toBe("FFA_MEM_SHARE_64");
    expect(ffaFunctionName(0x8400_0063)).toBe("FFA_VERSION");
    expect(ffaFunctionName(0xc400_008d)).toBe("FFA_MSG_SEND_DIRECT_REQ2");
    expect(isFfaFunction(0x8400_0060)).toBe(true);
    expect(isFfaFunction(0xc400_00ff)).toBe(true);
    expect(isFfaFunction(0x8400_0000)).toBe(false);
    expect(isFfaFunction(0x8600_0060)).toBe(false);
  });
});
