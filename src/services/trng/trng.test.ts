import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import { TRNG_FUNCTIONS as T } from "../../smccc/functions/trng.js";

const m = ScriptedMachine.fromText("vms:\n  vm0: {}\n  off: { services: { trng: false } }\n");
const v = m.vm("vm0").vcpu(0);

/** The N-bit value a TRNG_RND call returned: x1:x2:x3 (w1:w2:w3), x3 lowest. */
function value(r: { x(n: number): bigint }, width: 32 | 64): bigint {
  const w = BigInt(width);
  return (r.x(1) << (2n * w)) | (r.x(2) << w) | r.x(3);
}

describe("TRNG bit placement (DEN0098 TRNG_RND)", () => {
  it("RND64: for every N, the value fits in N bits and fills them", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 192 }), (n) => {
        const r = v.smc(T.TRNG_RND64.smc64, n);
        expect(r.x0).toBe(0n);
        const bits = value(r, 64);
        expect(bits >> BigInt(n)).toBe(0n);
        // 64 random bits in the top word are all zero with probability 2^-64; the top bit of N is set with 1/2.
        if (n >= 64) expect(bits >> BigInt(n - 64)).not.toBe(0n);
      }),
      { numRuns: 400 },
    );
  });

  it("RND32: W registers only, upper halves zero, value within N bits", () => {
    for (let n = 1; n <= 96; n++) {
      const r = v.smc(T.TRNG_RND32.smc32, n);
      expect(r.x0).toBe(0n);
      for (const reg of [1, 2, 3]) expect(r.x(reg) >> 32n).toBe(0n);
      expect(value(r, 32) >> BigInt(n)).toBe(0n);
    }
  });

  it("is deterministic with the default seeded source, so tests can replay it", () => {
    const a = ScriptedMachine.fromText("vms:\n  vm0: {}\n").vm("vm0").vcpu(0).smc(T.TRNG_RND64.smc64, 192);
    const b = ScriptedMachine.fromText("vms:\n  vm0: {}\n").vm("vm0").vcpu(0).smc(T.TRNG_RND64.smc64, 192);
    expect(a.regs.slice(0, 4)).toEqual(b.regs.slice(0, 4));
  });

  it("draws from the injected source (the host's CSPRNG in real runs)", () => {
    const hv = ScriptedMachine.fromText("vms:\n  vm0: {}\n", "yaml", { entropy: (out) => out.fill(0xa5) });
    const r = hv.vm("vm0").vcpu(0).smc(T.TRNG_RND64.smc64, 192);
    expect([r.x(1), r.x(2), r.x(3)]).toEqual([0xa5a5a5a5a5a5a5a5n, 0xa5a5a5a5a5a5a5a5n, 0xa5a5a5a5a5a5a5a5n]);
  });

  it("is absent for a VM without it", () => {
    expect(m.vm("off").vcpu(0).smc(T.TRNG_VERSION.smc32).sw(0)).toBe(-1);
  });
});
