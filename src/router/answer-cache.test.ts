/**
 * The router's answer cache (Router.remember and the fast path in handleTrap): a fixed answer is given
 * again without the service, with the same registers and the same trace event, and nothing else is.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import type { HypervisorOptions } from "../hypervisor/hypervisor.js";
import type { BoardFirmware } from "./ports.js";
import type { ServiceDefinition } from "./service.js";
import { STANDARD_SERVICES } from "../services/standard.js";

/** A service on the OEM owner whose IDs below 0x100 are fixed (answer: the ID's low byte); it counts handle(). */
function counted() {
  const handled = new Map<number, number>();
  const gate = { release: () => {} };
  const def: ServiceDefinition = {
    name: "counted",
    enabled: () => true,
    claims: () => [{ service: "counted", owner: 3, types: [0, 1, 2, 3], first: 0, last: 0xffff }],
    create: () => ({
      handle(call, res) {
        handled.set(call.fid, (handled.get(call.fid) ?? 0) + 1);
        const fn = call.fid & 0xffff;
        if (fn === 0x400) return new Promise<void>((resolve) => (gate.release = () => { res.ret(7); resolve(); }));
        if (fn === 0x10) {
          // Wide: x0-x3 all carry something.
          res.ret(1);
          res.set(1, 2);
          res.set(2, 3);
          res.set(3, 0xffff_ffff);
        } else res.ret(fn < 0x100 ? fn : call.w(1));
        return undefined;
      },
      features: () => 0,
      fixed: (fid) => (fid & 0xffff) < 0x100,
    }),
  };
  return { def, handled, gate };
}

function machine(yaml: string, opts: HypervisorOptions = {}) {
  const c = counted();
  const m = ScriptedMachine.fromText(yaml, "yaml", { services: [...STANDARD_SERVICES, c.def], ...opts });
  return { m, handled: c.handled, gate: c.gate };
}

/** Powers vCPU 1 of VM `vm` on through PSCI CPU_ON, as a guest would. */
function cpuOn(m: ScriptedMachine, vm: string): void {
  const entry = BigInt(m.hypervisor.domain(vm).config.memory.base) + 0x1000n;
  expect(m.vm(vm).vcpu(0).smc(0xc400_0003, 1, entry, 0).x0).toBe(0n);
}

const TWO = 'vms:\n  a: { vcpus: 2, smccc: "1.2" }\n  b: { smccc: "1.1" }\n';

describe("the answer cache", () => {
  it("asks a service once for a fixed answer; every call still gets the registers and its own trace event", () => {
    const { m, handled } = machine(TWO);
    cpuOn(m, "a");
    const v = m.vm("a").vcpu(1);
    const first = v.hvc(0x8300_0005);
    for (let i = 0; i < 5; i++) {
      const r = v.hvc(0x8300_0005, 0xdead);
      expect(r.x0).toBe(5n);
      expect(r.event).toMatchObject({ vm: "a", vcpu: 1, conduit: "hvc", fid: 0x8300_0005, action: "emulate", rule: "default:counted", x0: 5n });
      expect(r.event.seq).toBe(first.event.seq + i + 1);
    }
    expect(handled.get(0x8300_0005)).toBe(1);
    expect(m.trace.counters().find((c) => c.key === "a|default:counted")?.calls).toBe(6);
  });

  it("writes a wide answer's x1-x3 again, and clears the upper halves of an SMC32 answer", () => {
    const { m, handled } = machine(TWO);
    const v = m.vm("a").vcpu(0);
    for (let n = 0; n <= 3; n++) v.setX(n, 0xaaaa_aaaa_aaaa_aaaan);
    const a = v.hvc(0x8300_0010);
    for (let n = 0; n <= 3; n++) v.setX(n, 0xaaaa_aaaa_aaaa_aaaan);
    const b = v.hvc(0x8300_0010);
    expect([b.x(0), b.x(1), b.x(2), b.x(3)]).toEqual([1n, 2n, 3n, 0xffff_ffffn]);
    expect(b.regs.slice(0, 4)).toEqual(a.regs.slice(0, 4));
    expect(handled.get(0x8300_0010)).toBe(1);
  });

  it("asks the service every time for an answer that is not fixed", () => {
    const { m, handled } = machine(TWO);
    const v = m.vm("a").vcpu(0);
    for (let i = 0; i < 4; i++) expect(v.hvc(0x8300_0200, i).x0).toBe(BigInt(i));
    expect(handled.get(0x8300_0200)).toBe(4);
  });

  it("keeps no answer where policy decides by the arguments", () => {
    const { m, handled } = machine('vms:\n  a:\n    grants:\n      - { id: 0x83000005, args: { x1: [1] }, action: deny }\n      - { owner: oem, action: emulate }\n');
    const v = m.vm("a").vcpu(0);
    for (let i = 0; i < 3; i++) {
      expect(v.hvc(0x8300_0005, 0).x0).toBe(5n);
      expect(v.hvc(0x8300_0005, 1).sw(0)).toBe(-1);
    }
    expect(handled.get(0x8300_0005)).toBe(3);
  });

  it("repeats a denial from the cache, traced as the denial it is", () => {
    const { m, handled } = machine('vms:\n  a:\n    grants:\n      - { owner: oem, action: deny }\n');
    const v = m.vm("a").vcpu(0);
    for (let i = 0; i < 3; i++) {
      const r = v.smc(0x8300_0005);
      expect(r.sw(0)).toBe(-1);
      expect(r.decision).toEqual({ action: "deny", rule: "vms.a.grants[0]" });
      expect(r.pcAdvance).toBe(4);
    }
    expect(handled.size).toBe(0);
  });

  it("is per VM: the same ID in another VM gets that VM's answer", () => {
    const { m } = machine(TWO);
    for (let i = 0; i < 3; i++) {
      expect(m.vm("a").vcpu(0).hvc(0x8000_0000).x0).toBe(0x1_0002n);
      expect(m.vm("b").vcpu(0).hvc(0x8000_0000).x0).toBe(0x1_0001n);
    }
  });

  it("never answers an SMC a board may claim: the board sees every SMC of its VM", () => {
    let served = 0;
    const board = (): BoardFirmware => ({
      name: "x12",
      claims: (call) => call.w(12) === 7,
      handle: (_call, res) => {
        served++;
        res.ret(42);
      },
    });
    const { m } = machine("vms:\n  a: { board: x12 }\n", { boards: new Map([["x12", board]]) });
    const v = m.vm("a").vcpu(0);
    v.setX(12, 0);
    expect(v.smc(0x8300_0005).x0).toBe(5n);
    expect(v.smc(0x8300_0005).x0).toBe(5n);
    v.setX(12, 7);
    expect(v.smc(0x8300_0005).x0).toBe(42n);
    expect(served).toBe(1);
    // An HVC is not the board's: that one may come from the cache.
    expect(v.hvc(0x8300_0005).x0).toBe(5n);
  });

  it("refuses the second trap of a waiting vCPU even for an ID with a cached answer", async () => {
    const { m, gate } = machine(TWO);
    const v = m.vm("a").vcpu(0);
    v.hvc(0x8000_0000);
    v.hvc(0x8000_0000);
    const pending = v.callAsync("hvc", 0x8300_0400);
    const regs = new Uint32Array(36);
    regs[0] = 0x8000_0000;
    expect(m.hypervisor.router.handleTrap(m.hypervisor.domain("a").routed, 0, regs, 0x5a00_0000, 0)).toBe(4 /* bad trap */);
    gate.release();
    expect((await pending).x0).toBe(7n);
    expect(v.hvc(0x8000_0000).x0).toBe(0x1_0002n);
  });

  it("forgets a removed VM's answers: a VM created in its place asks its services again", () => {
    const { m, handled } = machine(TWO);
    m.vm("b").vcpu(0).hvc(0x8300_0005);
    m.vm("b").vcpu(0).hvc(0x8300_0005);
    expect(handled.get(0x8300_0005)).toBe(1);
    const config = m.hypervisor.domain("b").config;
    m.hypervisor.destroyDomain("b");
    const again = m.hypervisor.createDomain(config);
    expect(again.ok).toBe(true);
    if (!again.ok) return;
    const regs = new Uint32Array(36);
    regs[0] = 0x8300_0005;
    again.domain.trap(0, regs, 0x5a00_0000, 0);
    expect(regs[0]).toBe(5);
    expect(handled.get(0x8300_0005)).toBe(2);
  });

  it("counts calls answered from the cache exactly: past 2^32 hits, when an entry is replaced and when its VM is removed", () => {
    const { m } = machine(TWO);
    const v = m.vm("b").vcpu(0);
    const count = () => m.trace.counters().find((c) => c.key === "b|default:counted")?.calls ?? 0;
    v.hvc(0x8300_0005);
    v.hvc(0x8300_0005);
    expect(count()).toBe(2);
    // White box: the entry's hit counter one short of wrapping, so the next hit carries into the high word.
    const answers = (m.hypervisor.router as unknown as { answers: Int32Array }).answers;
    let e = -1;
    for (let i = 0; i < answers.length; i += 16) if (answers[i] === (0x8300_0005 | 0) && (answers[i + 1]! & 0xf) !== 0) e = i;
    expect(e).toBeGreaterThanOrEqual(0);
    answers[e + 3] = -1;
    v.hvc(0x8300_0005);
    expect(count()).toBe(1 + 2 ** 32);
    // Enough other fixed IDs to take every slot, so the entry is replaced: its count stays.
    for (let fn = 0x20; fn < 0x60; fn++) v.hvc(0x8300_0000 + fn);
    expect(count()).toBe(1 + 2 ** 32 + 0x40);
    m.hypervisor.destroyDomain("b");
    expect(count()).toBe(1 + 2 ** 32 + 0x40);
  });

  it("changes nothing a guest or the trace can see: any calls give the same results with the cache on and off", () => {
    const yaml = 'vms:\n  a: { vcpus: 2, smccc: "1.2" }\n  b: { smccc: "1.1", immediate: undef }\n  c: { aarch32: true, smccc: "1.3" }\n  d:\n    grants:\n      - { owner: oem, action: deny }\n      - { id: 0x83000002, args: { x1: [3] }, action: emulate }\n';
    const on = machine(yaml).m;
    const off = machine(yaml, { answerCache: false }).m;
    cpuOn(on, "a");
    cpuOn(off, "a");
    // Arch (VERSION, FEATURES, WA1, WA3, WA4, WA2, SVE-hinted VERSION), PSCI (VERSION, CPU_ON, MIGRATE_INFO_TYPE), TRNG (all four), hyp-info, OEM, SiP, yielding, malformed.
    const fids = [0x8000_0000, 0x8000_0001, 0x8000_8000, 0x8000_3fff, 0x8000_0004, 0x8000_7fff, 0x8001_0000, 0x8400_0000, 0xc400_0003, 0x8400_0006, 0x8400_0050, 0x8400_0051, 0x8400_0052, 0x8400_0053, 0x8500_ff01, 0x8600_ff01, 0x8300_0002, 0x8300_0010, 0xc300_0005, 0x8300_0300, 0x8200_0001, 0x0300_0001, 0xffff_ffff, 0];
    const call = fc.record({
      vm: fc.constantFrom("a", "b", "c", "d"),
      vcpu: fc.integer({ min: 0, max: 1 }),
      a32: fc.boolean(),
      conduit: fc.constantFrom("smc" as const, "hvc" as const),
      fid: fc.oneof(fc.constantFrom(...fids), fc.integer({ min: 0, max: 0xffff_ffff })),
      x1: fc.constantFrom(0n, 3n, 0xffff_ffff_0000_0003n),
      imm: fc.constantFrom(0, 0, 0, 1),
    });
    fc.assert(
      fc.property(fc.array(call, { minLength: 1, maxLength: 60 }), (calls) => {
        for (const c of calls) {
          const vcpu = c.vm === "a" ? c.vcpu : 0;
          const pick = (m: ScriptedMachine) => {
            const v = m.vm(c.vm).vcpu(vcpu);
            const w = c.a32 || c.vm === "c" ? v.aarch32 : v;
            for (let n = 1; n <= 7; n++) w.setX(n, n === 1 ? c.x1 : 0x1111_1111_1111_1111n * BigInt(n));
            return w.call(c.conduit, c.fid, [], { imm: c.imm });
          };
          const a = pick(on);
          const b = pick(off);
          expect(a.outcome).toBe(b.outcome);
          expect(a.regs).toEqual(b.regs);
          expect(a.pcAdvance).toBe(b.pcAdvance);
          expect(a.event).toEqual(b.event);
        }
        expect(on.trace.counters()).toEqual(off.trace.counters());
      }),
      { numRuns: 300 },
    );
  });
});
