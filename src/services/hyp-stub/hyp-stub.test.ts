// The hyp stub smcvisor serves a handed-over kernel: the stub's numbers and return values
// (arch/arm64/include/asm/virt.h), and every way back to EL2 refused.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HVC_FINALISE_EL2, HVC_RESET_VECTORS, HVC_SET_VECTORS, HVC_SOFT_RESTART, HVC_STUB_ERR, HypStub, STUB_CALL_LIMIT } from "./hyp-stub.js";

const SHIM_VECTORS = 0x4000_1800n;
const RAM = { base: 0x4020_0000n, size: 256n << 20n };
const stub = () => new HypStub({ shimVectors: SHIM_VECTORS, ram: RAM });

describe("the hyp stub after the handover", () => {
  it("uses virt.h's numbers", () => {
    expect([HVC_SET_VECTORS, HVC_SOFT_RESTART, HVC_RESET_VECTORS, HVC_FINALISE_EL2, HVC_STUB_ERR]).toEqual([0n, 1n, 2n, 3n, 0xbadca11n]);
  });

  it("takes x0 below 0x1000 as a stub call and leaves every SMCCC function ID to the router", () => {
    expect([0n, 3n, 0xfffn].every(HypStub.isStubCall)).toBe(true);
    expect([STUB_CALL_LIMIT, 0x8400_0000n, 0xc400_0003n, 0x0100_0000n].some(HypStub.isStubCall)).toBe(false);
  });

  it("answers HVC_SET_VECTORS naming the shim's vectors 0, and RESET_VECTORS 0, as the stub does", () => {
    const s = stub();
    expect(s.call([HVC_RESET_VECTORS])).toMatchObject({ kind: "return", x0: 0n });
    expect(s.vectors).toBe("stub");
    expect(s.call([HVC_SET_VECTORS, SHIM_VECTORS])).toMatchObject({ kind: "return", x0: 0n });
    expect(s.vectors).toBe("smcvisor");
  });

  it("refuses every other vector table: in the kernel's RAM, in the shim's region, anywhere (HVC_STUB_ERR, nothing changes)", () => {
    const s = stub();
    for (const x1 of [0x4010_0000n, 0x4000_0000n, 0x4000_1000n, SHIM_VECTORS + 0x800n, RAM.base, RAM.base + 0x80_0000n, 0n, (1n << 64n) - 1n]) {
      expect(s.call([HVC_SET_VECTORS, x1]), `0x${x1.toString(16)}`).toMatchObject({ kind: "return", x0: HVC_STUB_ERR });
      expect(s.vectors).toBe("smcvisor");
    }
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (x1) => {
        const a = s.call([HVC_SET_VECTORS, x1]);
        return a.kind === "return" && a.x0 === (x1 === SHIM_VECTORS ? 0n : HVC_STUB_ERR);
      }),
    );
  });

  it("refuses HVC_FINALISE_EL2 (no VHE to give) and every unknown stub call with HVC_STUB_ERR", () => {
    const s = stub();
    for (const x0 of [HVC_FINALISE_EL2, 4n, 5n, 0x7ffn, 0xfffn]) expect(s.call([x0, 1n, 2n, 3n, 4n])).toMatchObject({ kind: "return", x0: HVC_STUB_ERR });
  });

  it("restarts at EL1 only at an instruction in the VM's RAM, with the stub's argument shuffle (x0..x2 = x2..x4)", () => {
    const s = stub();
    expect(s.call([HVC_SOFT_RESTART, RAM.base + 0x1000n, 7n, 8n, 9n])).toEqual({ kind: "restart", entry: RAM.base + 0x1000n, args: [7n, 8n, 9n], rule: "hyp-stub:HVC_SOFT_RESTART", note: expect.any(String) });
    for (const entry of [SHIM_VECTORS, 0x4010_0000n, RAM.base - 4n, RAM.base + RAM.size, RAM.base + 2n, 0n, 0x0900_0000n]) {
      expect(s.call([HVC_SOFT_RESTART, entry]), `0x${entry.toString(16)}`).toMatchObject({ kind: "return", x0: HVC_STUB_ERR });
    }
  });
});
