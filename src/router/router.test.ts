import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import type { ServiceDefinition } from "./service.js";
import type { SmcCall, SmcResult } from "./call.js";
import type { CallOrigin, CallTarget } from "./ports.js";
import { STANDARD_SERVICES } from "../services/standard.js";

/** A service on the OEM owner (3) that records what it saw and answers from a script. */
function probe() {
  const seen: { fid: number; rawFid: number; args: bigint[]; smc64: boolean; conduit: string }[] = [];
  let answer: (call: SmcCall, res: SmcResult) => void | Promise<void> = (_c, res) => res.ret(0);
  const def: ServiceDefinition = {
    name: "probe",
    enabled: () => true,
    claims: () => [{ service: "probe", owner: 3, types: [0, 1, 2, 3], first: 0, last: 0xffff }],
    create: () => ({
      handle(call, res) {
        seen.push({ fid: call.fid, rawFid: call.rawFid, args: call.snapshot(), smc64: call.smc64, conduit: call.conduit });
        return answer(call, res);
      },
      features: () => 0,
    }),
  };
  return { def, seen, setAnswer: (f: typeof answer) => (answer = f) };
}

function machine(yaml: string, extra: { monitor?: CallTarget; log?: (l: string) => void } = {}) {
  const p = probe();
  const m = ScriptedMachine.fromText(yaml, "yaml", { services: [...STANDARD_SERVICES, p.def], ...extra });
  return { m, p };
}

const V12 = 'vms:\n  a: { vcpus: 2, smccc: "1.2" }\n  b: { smccc: "1.1" }\n  c: { smccc: "1.3" }\n  d: { smccc: "1.0" }\n  u: { immediate: undef }\n';
const ONES = 0xffff_ffff_ffff_ffffn;

describe("conduits and the PC (R0, R10)", () => {
  it("SMC and HVC with the same ID give the same result", () => {
    const { m } = machine(V12);
    const v = m.vm("a").vcpu(0);
    const s = v.smc(0x8000_0000), h = v.hvc(0x8000_0000);
    expect(s.regs.slice(0, 4)).toEqual(h.regs.slice(0, 4));
    expect(s.x0).toBe(0x1_0002n);
  });

  it("moves the PC past a trapped SMC and not after an HVC", () => {
    const { m } = machine(V12);
    const v = m.vm("a").vcpu(0);
    const pc = v.pc;
    expect(v.smc(0x8000_0000).pcAdvance).toBe(4);
    expect(v.pc).toBe(pc + 4n);
    expect(v.hvc(0x8000_0000).pcAdvance).toBe(0);
    expect(v.pc).toBe(pc + 4n);
  });
});

describe("SMC32 and SMC64 registers", () => {
  it("an SMC32 handler sees W registers only and the caller reads W results", () => {
    const { m, p } = machine(V12);
    p.setAnswer((_c, res) => {
      res.ret(-1);
      res.setWords(1, 0x1234_5678, 0xdead_beef);
    });
    const r = m.vm("a").vcpu(0).smc(0xaaaa_aaaa_8300_0001n, 0xaaaa_aaaa_1234_5678n);
    expect(p.seen[0]!.fid).toBe(0x8300_0001);
    expect(p.seen[0]!.args[1]).toBe(0x1234_5678n);
    expect(r.x0).toBe(0xffff_ffffn);
    expect(r.x(1)).toBe(0x1234_5678n);
  });

  it("an SMC64 handler sees and returns whole X registers", () => {
    const { m, p } = machine(V12);
    p.setAnswer((_c, res) => res.setBig(1, 0xdead_beef_0000_0001n));
    const r = m.vm("a").vcpu(0).smc(0xc300_0001, 0xaaaa_aaaa_1234_5678n);
    expect(p.seen[0]!.args[1]).toBe(0xaaaa_aaaa_1234_5678n);
    expect(r.x(1)).toBe(0xdead_beef_0000_0001n);
  });

  it("answers -1 as 0xFFFFFFFF to SMC32 and as all ones to SMC64", () => {
    const { m } = machine(V12);
    const v = m.vm("a").vcpu(0);
    expect(v.smc(0x8400_0020).x0).toBe(0xffff_ffffn); // OEN 4, unclaimed function: deny
    expect(v.smc(0xc700_0001).x0).toBe(ONES);
  });

  it("gives an SMC64 ID from an AArch32 caller -1 without reaching a service", () => {
    const { m, p } = machine(V12);
    const r = m.vm("a").vcpu(0).aarch32.smc(0xc300_0001);
    expect(r.x0).toBe(0xffff_ffffn);
    expect(r.decision).toEqual({ action: "convention", rule: "smccc:smc64-from-aarch32" });
    expect(p.seen).toHaveLength(0);
  });

  it("gives -1 to a fast call with bits 23:17 set, without reaching a service", () => {
    const { m, p } = machine(V12);
    const r = m.vm("a").vcpu(0).hvc(0x8302_0001);
    expect(r.x0).toBe(0xffff_ffffn);
    expect(r.decision.rule).toBe("smccc:mbz-bits-23-17");
    expect(p.seen).toHaveLength(0);
  });

  it("strips the SVE hint before dispatch from SMCCC 1.3 and keeps it in the trace", () => {
    const { m, p } = machine(V12);
    const r = m.vm("c").vcpu(0).hvc(0x8301_0005);
    expect(p.seen[0]).toMatchObject({ fid: 0x8300_0005, rawFid: 0x8301_0005 });
    expect(r.event.fid).toBe(0x8301_0005);
  });

  it("rejects the SVE hint bit before SMCCC 1.3", () => {
    const { m, p } = machine(V12);
    expect(m.vm("a").vcpu(0).hvc(0x8301_0005).x0).toBe(0xffff_ffffn);
    expect(p.seen).toHaveLength(0);
  });
});

describe("argument and result registers per SMCCC version", () => {
  const args = Array.from({ length: 17 }, (_, i) => 0x1_0000_0000n * BigInt(i + 1) + BigInt(i + 1));

  it("1.1: the callee sees x1-x6 only", () => {
    const { m, p } = machine(V12);
    m.vm("b").vcpu(0).smc(0xc300_0001, ...args);
    expect(p.seen[0]!.args.slice(1, 8)).toEqual([...args.slice(0, 6), 0n]);
  });

  it("1.2: SMC64 sees x1-x17, SMC32 sees w1-w7", () => {
    const { m, p } = machine(V12);
    m.vm("a").vcpu(0).smc(0xc300_0001, ...args);
    m.vm("a").vcpu(0).smc(0x8300_0001, ...args);
    expect(p.seen[0]!.args.slice(1)).toEqual(args);
    expect(p.seen[1]!.args.slice(1, 9)).toEqual([...args.slice(0, 7).map((a) => a & 0xffff_ffffn), 0n]);
  });

  it("1.2: an SMC64 call may return up to x17", () => {
    const { m, p } = machine(V12);
    p.setAnswer((_c, res) => res.set(17, 42));
    expect(m.vm("a").vcpu(0).smc(0xc300_0001).x(17)).toBe(42n);
  });

  it("a handler that writes beyond the convention's results fails visibly instead of leaking", () => {
    const log: string[] = [];
    const { m, p } = machine(V12, { log: (l) => log.push(l) });
    p.setAnswer((_c, res) => res.set(4, 42));
    const r = m.vm("b").vcpu(0).smc(0xc300_0001, 1, 2, 3, 4);
    expect(r.outcome).toBe("error");
    expect(r.x0).toBe(ONES);
    expect(r.x(4)).toBe(4n);
    expect(log[0]).toMatch(/beyond x3/);
  });

  it.each(["a", "b", "d"])("preserves every register that is not a result (VM %s)", (vmName) => {
    const { m, p } = machine(V12);
    p.setAnswer((_c, res) => res.ret(7));
    const v = m.vm(vmName).vcpu(0);
    for (let n = 4; n <= 30; n++) v.setX(n, 0x1111_0000_0000_0000n + BigInt(n));
    const r = v.smc(0xc300_0001, 1, 2, 3);
    expect(r.regs.slice(0, 4)).toEqual([7n, 0n, 0n, 0n]);
    for (let n = 4; n <= 30; n++) expect(r.x(n)).toBe(0x1111_0000_0000_0000n + BigInt(n));
  });
});

describe("immediates and conditions", () => {
  it("answers a non-zero immediate like KVM by default: x0 = ~0, instruction skipped", () => {
    const { m, p } = machine(V12);
    const v = m.vm("a").vcpu(0);
    v.setX(1, 5);
    const r = v.call("smc", 0x8300_0001, [], { imm: 1 });
    expect(r.x0).toBe(ONES);
    expect(r.x(1)).toBe(5n);
    expect(r.pcAdvance).toBe(4);
    expect(r.decision.rule).toBe("smccc:immediate");
    expect(p.seen).toHaveLength(0);
  });

  it("injects UNDEF for a non-zero immediate like Xen when configured", () => {
    const { m } = machine(V12);
    const v = m.vm("u").vcpu(0);
    const pc = v.pc;
    const r = v.call("hvc", 0x8000_0000, [], { imm: 0xea1 });
    expect(r.outcome).toBe("undef");
    expect(r.x0).toBe(0x8000_0000n);
    expect(v.undefs).toBe(1);
    expect(v.pc).toBe(pc);
  });

  it("skips an AArch32 SMC whose condition failed, without a call", () => {
    const { m, p } = machine(V12);
    const v = m.vm("a").vcpu(0).aarch32;
    const r = v.call("smc", 0x8300_0001, [], { cond: 0x0 /* EQ */, nzcv: 0 });
    expect(r.outcome).toBe("skip");
    expect(r.x0).toBe(0x8300_0001n);
    expect(r.pcAdvance).toBe(4);
    expect(p.seen).toHaveLength(0);
    expect(v.call("smc", 0x8300_0001, [], { cond: 0x0, nzcv: 0b0100 }).outcome).toBe("return");
    expect(p.seen).toHaveLength(1);
  });
});

describe("failures stay with the call that caused them", () => {
  it("a throwing handler gives -1 and the hypervisor keeps serving every VM", () => {
    const log: string[] = [];
    const { m, p } = machine(V12, { log: (l) => log.push(l) });
    p.setAnswer(() => {
      throw new Error("boom");
    });
    const r = m.vm("a").vcpu(0).smc(0x8300_0001);
    expect(r.outcome).toBe("error");
    expect(r.x0).toBe(0xffff_ffffn);
    expect(m.vm("b").vcpu(0).smc(0x8000_0000).x0).toBe(0x1_0001n);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/boom/);
  });

  it("rate-limits the reports of a handler failing in a loop", () => {
    const log: string[] = [];
    const { m, p } = machine(V12, { log: (l) => log.push(l) });
    p.setAnswer(() => {
      throw new Error("boom");
    });
    for (let i = 0; i < 1000; i++) m.vm("a").vcpu(0).smc(0x8300_0001);
    expect(log.length).toBeLessThan(20);
  });

  it("completes asynchronous handlers, and refuses a second trap from a waiting vCPU", async () => {
    const { m, p } = machine(V12);
    let release!: () => void;
    p.setAnswer((_c, res) => new Promise<void>((resolve) => (release = () => { res.ret(99); resolve(); })));
    const v = m.vm("a").vcpu(0);
    expect(() => v.smc(0x8300_0001)).toThrow(/asynchronous/);
    release();
    const pending = v.callAsync("smc", 0x8300_0001);
    expect(m.hypervisor.router.handleTrap(m.hypervisor.domain("a").routed, 0, new Uint32Array(36), 0x5e00_0000, 0)).toBe(4 /* bad trap */);
    release();
    expect((await pending).x0).toBe(99n);
    expect(m.vm("c").vcpu(0).smc(0x8000_0000).x0).toBe(0x1_0003n);
  });

  it("an asynchronous handler that rejects gives -1", async () => {
    const { m, p } = machine(V12);
    p.setAnswer(() => Promise.reject(new Error("gone")));
    const r = await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001);
    expect(r.outcome).toBe("error");
    expect(r.x0).toBe(ONES);
  });

  it("refuses traps for a destroyed VM", () => {
    const { m } = machine(V12);
    const routed = m.hypervisor.domain("b").routed;
    m.hypervisor.destroyDomain("b");
    expect(m.hypervisor.router.handleTrap(routed, 0, new Uint32Array(36), 0x5e00_0000, 0)).toBe(4);
  });
});

describe("forwarding and the hypervisor's own calls", () => {
  it("forwards with the caller's identity and returns the monitor's results", () => {
    const origins: CallOrigin[] = [];
    const monitor: CallTarget = {
      handle(call, res, origin) {
        origins.push(origin);
        res.ret(0);
        res.set(1, call.w(1) + 1);
      },
    };
    const { m } = machine("vms:\n  dom0:\n    grants:\n      - { owner: sip, action: forward }\n", { monitor });
    const r = m.vm("dom0").vcpu(0).smc(0x8200_0001, 41);
    expect(r.regs.slice(0, 2)).toEqual([0n, 42n]);
    // The OP-TEE mediator's start-up probe is the hypervisor's own call (VM ID 0); the guest's comes with its identity.
    expect(origins.filter((o) => o.vmId !== 0)).toEqual([{ vmId: 1, vmName: "dom0", vcpu: 0 }]);
  });

  it("traces the hypervisor's own calls with their origin (R9)", () => {
    const seen: CallOrigin[] = [];
    const { m } = machine(V12, { monitor: { handle: (_c, res, o) => { seen.push(o); res.ret(0); } } });
    const r = m.hypervisor.router.hypervisorCall("vCPU power-on", 0xc400_0003, [0n, 1n, 0x4008_0000n, 0n]);
    expect("regs" in r && r.regs[0]).toBe(0n);
    expect(seen[0]!.vmId).toBe(0);
    const e = m.trace.latest()!;
    expect(e).toMatchObject({ vm: "hypervisor", conduit: "hypervisor", origin: "vCPU power-on", fid: 0xc400_0003, action: "forward" });
  });

  it("a standing channel makes the same calls as hypervisorCall: origin, on whose behalf, trace event, registers in and out", () => {
    const seen: { origin: CallOrigin; args: number[] }[] = [];
    const monitor: CallTarget = {
      handle(call, res, origin) {
        seen.push({ origin, args: [call.fid, call.w(1), call.w(7), call.hi(1)] });
        res.ret(7);
        res.set(1, call.w(1) + 1);
      },
    };
    const { m } = machine(V12, { monitor });
    const ch = m.hypervisor.router.hypervisorChannel("optee mediator for dom0", { vmName: "dom0", vcpu: 0 });
    for (const a1 of [41, 99]) {
      ch.regs[0] = 0x3200_0004;
      ch.regs[2] = a1;
      ch.regs[14] = 5;
      expect(ch.call()).toBeUndefined();
      // Results in x0-x3 (x2, x3 zero: written), the other registers as the caller left them; W results.
      expect([ch.regs[0], ch.regs[2], ch.regs[4], ch.regs[14], ch.regs[1], ch.regs[3]]).toEqual([7, a1 + 1, 0, 5, 0, 0]);
      expect(m.trace.latest()).toMatchObject({ vm: "hypervisor", conduit: "hypervisor", origin: "optee mediator for dom0", fid: 0x3200_0004, action: "forward", x0: 7n });
    }
    const ours = seen.filter((c) => c.args[0] === 0x3200_0004);
    expect(ours.map((c) => c.args)).toEqual([[0x3200_0004, 41, 5, 0], [0x3200_0004, 99, 5, 0]]);
    expect(ours[0]!.origin).toEqual({ vmId: 0, vmName: "hypervisor", vcpu: 0, onBehalfOf: { vmName: "dom0", vcpu: 0 } });
  });

  it("a channel whose secure world answers later settles its promise with the results, and carries one call at a time", async () => {
    let answer: (() => void) | null = null;
    const monitor: CallTarget = {
      handle(call, res) {
        // The OP-TEE mediator's probe at start-up is answered at once.
        if (call.fid !== 0x8400_0000) return res.ret(-1);
        return new Promise<void>((resolve) => {
          answer = () => {
            res.ret(call.w(1) * 2);
            resolve();
          };
        });
      },
    };
    const { m } = machine(V12, { monitor });
    const ch = m.hypervisor.router.hypervisorChannel("later");
    ch.regs[0] = 0x8400_0000;
    ch.regs[2] = 21;
    const p = ch.call();
    expect(p).toBeInstanceOf(Promise);
    expect(() => ch.call()).toThrow("one call at a time");
    answer!();
    await p;
    expect(ch.regs[0]).toBe(42);
    expect(m.trace.latest()).toMatchObject({ origin: "later", fid: 0x8400_0000, x0: 42n });
    // x0 holds the last result: the next call's function ID is written again.
    ch.regs[0] = 0x8400_0000;
    ch.regs[2] = 5;
    const q = ch.call();
    answer!();
    await q;
    expect(ch.regs[0]).toBe(10);
  });

  it("matches a W-register constraint on the low half of an SMC64 argument", () => {
    const monitor: CallTarget = { handle: (_c, res) => res.ret(0) };
    const { m } = machine('vms:\n  dom0:\n    grants:\n      - { id: 0xc200000d, args: { w1: [33] }, action: forward }\n', { monitor });
    const v = m.vm("dom0").vcpu(0);
    expect(v.smc(0xc200_000d, 0x1_0000_0021n).decision.action).toBe("forward");
    expect(v.smc(0xc200_000d, 0x1_0000_0022n).decision.action).toBe("deny");
  });

  it("refuses a VM whose policy names a mediator or delegate nobody registered", () => {
    expect(() => machine('vms:\n  a:\n    grants:\n      - { owner: trusted-os, action: "mediate:nosuch" }\n')).toThrow(/vms\.a\.grants\[0\]\.action: no mediator named "nosuch"/);
  });
});

describe("properties over any registers", () => {
  const reg = fc.bigInt({ min: 0n, max: ONES });
  const fidArb = fc.oneof(
    fc.integer({ min: 0, max: 0xffff_ffff }),
    fc.constantFrom(0x8000_0000, 0x8000_0001, 0x8000_0002, 0xc000_0002, 0x8000_8000, 0x8000_7fff, 0x8400_0000, 0x8500_ff01, 0x8600_ff00, 0x8300_0001, 0xc300_0001),
  );

  it("the router never throws, answers within the convention and traces every call once", () => {
    const { m, p } = machine(V12);
    p.setAnswer((call, res) => {
      res.ret(call.w(1) & 1 ? -1 : 0);
      if (call.smc64 && call.lastArg === 17) res.set(17, 1);
    });
    fc.assert(
      fc.property(fc.constantFrom("a", "b", "c", "d", "u"), fc.boolean(), fc.constantFrom("smc" as const, "hvc" as const), fidArb, fc.array(reg, { minLength: 30, maxLength: 30 }), fc.integer({ min: 0, max: 3 }), (vmName, a32, conduit, fid, regs, imm) => {
        const base = m.vm(vmName).vcpu(0);
        const v = a32 ? base.aarch32 : base;
        for (let n = 1; n <= 30; n++) v.setX(n, regs[n - 1]!);
        const before = Array.from({ length: 31 }, (_, n) => v.getX(n));
        const total = m.trace.total;
        const r = v.call(conduit, fid, [], { imm: imm === 3 ? 1 : 0 });
        expect(m.trace.total).toBe(total + 1);
        expect(["return", "undef", "error"]).toContain(r.outcome);
        const smc64 = (fid & 0x4000_0000) !== 0;
        // SMC32 results are W registers; AArch32 registers have no upper half at all.
        if (r.outcome !== "undef" && (a32 || (!smc64 && r.event.rule !== "smccc:immediate"))) {
          for (let n = 0; n < 4; n++) expect(r.x(n) >> 32n).toBe(0n);
        }
        // x18 and up are never touched. Results are a prefix x0..x(n-1): the probe's wide calls return
        // up to x17, so x4-x17 are results there; every other call here returns x0-x3 only.
        for (let n = 18; n <= 30; n++) expect(r.x(n)).toBe(before[n]);
        const probeWide = r.event.rule === "default:probe" && smc64 && !a32 && (vmName === "a" || vmName === "c" || vmName === "u");
        if (!probeWide) for (let n = 4; n <= 17; n++) expect(r.x(n)).toBe(before[n]);
        else expect(r.x(17)).toBe(1n);
      }),
      { numRuns: 1500 },
    );
  });

  it("a denied call never reaches a service", () => {
    const { m, p } = machine('vms:\n  a:\n    services: { arch: false }\n    grants:\n      - { owner: oem, action: deny }\n      - { id: 0x83000007, action: emulate }\n');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(0x8300_0000, 0xc300_0000, 0x0300_0000, 0x8000_0000), (fn, base) => {
        const count = p.seen.length;
        const fid = (base | fn) >>> 0;
        const r = m.vm("a").vcpu(0).hvc(fid);
        if (r.event.action === "deny" || r.event.action === "convention") expect(p.seen.length).toBe(count);
        else expect(fid).toBe(0x8300_0007);
      }),
      { numRuns: 500 },
    );
  });
});
