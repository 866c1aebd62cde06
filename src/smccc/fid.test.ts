import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFid, encodeFid, hex32 } from "./fid.js";
import { allNamedFids, fidName } from "./names.js";

describe("function ID decode (SMCCC §2.5)", () => {
  it("decodes PSCI CPU_ON SMC64 field by field", () => {
    const d = decodeFid(0xc400_0003);
    expect(d).toMatchObject({ fid: 0xc400_0003, fast: true, smc64: true, callType: "fast64", owner: 4, ownerName: "Standard Secure", mbz: 0, sveHint: false, function: 3, name: "PSCI_CPU_ON" });
  });

  it("decodes a yielding OP-TEE call as Trusted OS", () => {
    expect(decodeFid(0x3200_0004)).toMatchObject({ fast: false, smc64: false, callType: "yield32", owner: 50, ownerName: "Trusted OS (yielding)", function: 4, name: "OPTEE_SMC_CALL_WITH_ARG" });
  });

  it("reports must-be-zero bits 23:17 and the SVE hint separately", () => {
    const d = decodeFid(0x8003_0000 | 0x0000_0001);
    expect(d.mbz).toBe(1);
    expect(d.sveHint).toBe(true);
    expect(d.function).toBe(1);
    expect(d.dispatchFid).toBe(0x8002_0001);
  });

  it("names the SVE-hinted ID by the function it dispatches to", () => {
    expect(decodeFid(0xc401_0003).name).toBe("PSCI_CPU_ON");
    expect(decodeFid(0xc401_0003).sveHint).toBe(true);
  });

  it.each([
    [0, "Arm Architecture"], [1, "CPU"], [2, "SiP"], [3, "OEM"], [4, "Standard Secure"], [5, "Standard Hypervisor"],
    [6, "Vendor-specific Hypervisor"], [7, "Vendor-specific EL3 Monitor"], [8, "Reserved"], [47, "Reserved"],
    [48, "Trusted Application"], [49, "Trusted Application"], [50, "Trusted OS"], [63, "Trusted OS"],
  ])("owner %i of a fast call is %s", (owner, name) => {
    expect(decodeFid(encodeFid({ fast: true, smc64: false, owner, function: 0 })).ownerName).toBe(name);
  });

  it("names legacy yielding owners", () => {
    expect(decodeFid(0x0000_0001).ownerName).toBe("Arm Architecture (legacy yielding)");
    expect(decodeFid(0x0100_0001).ownerName).toBe("CPU (legacy yielding)");
  });

  it("round-trips every field through encode and decode", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 0xffff }), fc.boolean(), fc.integer({ min: 0, max: 0x7f }), (fast, smc64, owner, fn, sve, mbz) => {
        const fid = encodeFid({ fast, smc64, owner, function: fn, sveHint: sve, mbz });
        const d = decodeFid(fid);
        expect([d.fast, d.smc64, d.owner, d.function, d.sveHint, d.mbz]).toEqual([fast, smc64, owner, fn, sve, mbz]);
        expect(encodeFid({ fast: d.fast, smc64: d.smc64, owner: d.owner, function: d.function, sveHint: d.sveHint, mbz: d.mbz })).toBe(fid);
      }),
    );
  });

  it("round-trips every 32-bit value", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (fid) => {
      const d = decodeFid(fid);
      expect(encodeFid({ fast: d.fast, smc64: d.smc64, owner: d.owner, function: d.function, sveHint: d.sveHint, mbz: d.mbz })).toBe(fid);
    }));
  });

  it("rejects out-of-range fields when encoding", () => {
    expect(() => encodeFid({ fast: true, smc64: false, owner: 64, function: 0 })).toThrow(/owner/);
    expect(() => encodeFid({ fast: true, smc64: false, owner: 0, function: 0x10000 })).toThrow(/function/);
  });

  it("formats IDs as eight hex digits", () => {
    expect(hex32(0x8400_0000)).toBe("0x84000000");
    expect(hex32(-1)).toBe("0xFFFFFFFF");
  });
});

describe("function names from the ABI reference", () => {
  it.each([
    [0x8000_0000, "SMCCC_VERSION"], [0x8000_0001, "SMCCC_ARCH_FEATURES"], [0x8000_0002, "SMCCC_ARCH_SOC_ID"], [0xc000_0002, "SMCCC_ARCH_SOC_ID"],
    [0xc000_0003, "SMCCC_ARCH_FEATURE_AVAILABILITY"], [0x8000_8000, "SMCCC_ARCH_WORKAROUND_1"], [0x8000_7fff, "SMCCC_ARCH_WORKAROUND_2"],
    [0x8000_3fff, "SMCCC_ARCH_WORKAROUND_3"], [0x8000_0004, "SMCCC_ARCH_WORKAROUND_4"],
    [0x8400_0000, "PSCI_VERSION"], [0x8400_0002, "PSCI_CPU_OFF"], [0x8400_000a, "PSCI_FEATURES"], [0xc400_0012, "PSCI_SYSTEM_RESET2"], [0x8400_0015, "PSCI_SYSTEM_OFF2"],
    [0x95c1_ba60, "PSCI_0_1_CPU_ON"],
    [0x8400_0050, "TRNG_VERSION"], [0x8400_0053, "TRNG_RND32"], [0xc400_0053, "TRNG_RND64"],
    [0xc500_0020, "PV_TIME_FEATURES"], [0xc500_0021, "PV_TIME_ST"],
    [0x8600_0000, "ARM_SMCCC_VENDOR_HYP_KVM_FEATURES"], [0x8600_0001, "ARM_SMCCC_VENDOR_HYP_KVM_PTP"],
    [0x8500_ff01, "STD_HYP_SERVICE_CALL_UID"], [0x8600_ff01, "VENDOR_HYP_SERVICE_CALL_UID"], [0x8400_ff00, "STD_SECURE_SERVICE_CALL_COUNT"],
    [0x8200_ff03, "SIP_SERVICE_REVISION"],
    [0xbf00_ff01, "OPTEE_SMC_CALLS_UID"], [0xb200_0009, "OPTEE_SMC_EXCHANGE_CAPABILITIES"], [0xb200_000d, "OPTEE_SMC_VM_CREATED"], [0x3200_0003, "OPTEE_SMC_RETURN_FROM_RPC"],
    [0x8400_0063, "FFA_VERSION"], [0xc400_0066, "FFA_RXTX_MAP"], [0x8400_0073, "FFA_MEM_SHARE"], [0xc400_008d, "FFA_MSG_SEND_DIRECT_REQ2"],
  ])("%s is named", (fid, name) => {
    expect(fidName(fid)).toBe(name);
  });

  it("has no name for IDs no interface defines", () => {
    expect(fidName(0x8200_0001)).toBeNull();
    expect(fidName(0x8000_ff01)).toBeNull(); // OEN 0 has no general queries
    expect(fidName(0x8800_ff01)).toBeNull(); // reserved owner
  });

  it("names no ID twice across interfaces", () => {
    const seen = new Set<number>();
    for (const fid of allNamedFids().keys()) {
      expect(seen.has(fid)).toBe(false);
      seen.add(fid);
    }
    expect(seen.size).toBeGreaterThan(100);
  });
});
