/**
 * The answer cache (answer-cache.ts): the module on its own (blocks, entries, caller kinds, "not fixed",
 * hit counts), then through the router: a fixed answer is given again without the service, with the same
 * registers and the same trace event, and nothing else is.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import type { HypervisorOptions } from "../hypervisor/hypervisor.js";
import { FLAG_AARCH32, FLAG_SMC, TraceRing } from "../trace/ring.js";
import { AnswerCache, answerFromCache, BLOCK_WORDS, SLOTS } from "./answer-cache.js";
import type { BoardFirmware } from "./ports.js";
import { BoundStep, STEP_DENY, STEP_MONITOR, STEP_SERVICE } from "./routed-vm.js";
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

/** A cache with its trace, as the router sets them up; `rule` interns a label for VM "a". */
function cache() {
  const trace = new TraceRing(64);
  const c = new AnswerCache(trace);
  trace.addCountSource((into) => c.countInto(into));
  const calls = (label: string) => trace.counters().find((k) => k.key === `a|${label}`)?.calls ?? 0;
  return { trace, c, calls, rule: (label: string) => trace.intern(`a|${label}`) };
}

/** A bound step: deny, or a service whose fixed() says `fixed` (and counts how often it was asked). */
function step(kind: number, label: number, fixed = true, action = kind === STEP_DENY ? 2 : 0) {
  const asked = { n: 0 };
  const service = { handle: () => undefined, features: () => 0, fixed: () => (asked.n++, fixed) };
  return { step: new BoundStep(kind, kind === STEP_SERVICE ? service : null, null, action, label, "rule", [], []), asked };
}

/** A register file with x0 = fid and every other word `fill`. */
function regsOf(fid: number, fill = 0x5555_5555): Uint32Array {
  const r = new Uint32Array(36).fill(fill);
  r[0] = fid;
  r[1] = 0;
  return r;
}

/** Two raw IDs that map to the same entry of a block (direct mapped: the second replaces the first). */
function collidingIds(c: AnswerCache, base: number): [number, number] {
  const t = new TraceRing(8);
  const probe = new BoundStep(STEP_DENY, null, null, 2, t.intern("x|p"), "p", [], []);
  const first = 0x8200_0001;
  c.remember(base, first | 0, first, 0, probe, regsOf(first));
  for (let fid = 0x8200_0002; ; fid++) {
    if (answerFromCache(c.words, base, regsOf(fid), 0, 0, t)) continue;
    c.remember(base, fid | 0, fid, 0, probe, regsOf(fid));
    if (c.entry(base, first) === null) {
      c.release(base);
      expect(c.allocate()).toBe(base);
      return [first, fid];
    }
  }
}

describe("the answer cache module", () => {
  it("answers nothing from a new block", () => {
    const { c, trace } = cache();
    const base = c.allocate();
    expect(answerFromCache(c.words, base, regsOf(0x8000_0000), 0, 0, trace)).toBe(false);
    expect(answerFromCache(c.words, base, regsOf(0), 0, 0, trace)).toBe(false);
    expect(trace.total).toBe(0);
  });

  it("gives a kept answer back: x0 as written, x1-x3 cleared, the rule's event and count", () => {
    const { c, trace, calls, rule } = cache();
    const base = c.allocate();
    const label = rule("deny-sip");
    const written = regsOf(0xffff_ffff, 0);
    written[1] = 0xffff_ffff;
    c.remember(base, 0x8200_0001 | 0, 0x8200_0001, 0, step(STEP_DENY, label).step, written);
    const r = regsOf(0x8200_0001);
    expect(answerFromCache(c.words, base, r, 0, 3 | (1 << 16), trace)).toBe(true);
    expect([...r.subarray(0, 10)]).toEqual([0xffff_ffff, 0xffff_ffff, 0, 0, 0, 0, 0, 0, 0x5555_5555, 0x5555_5555]);
    expect([...r.subarray(10)].every((w) => w === 0x5555_5555)).toBe(true);
    expect(trace.latest()).toMatchObject({ vm: "vm3", vcpu: 1, conduit: "hvc", fid: 0x8200_0001, action: "deny", rule: "deny-sip", x0: 0xffff_ffff_ffff_ffffn });
    expect(calls("deny-sip")).toBe(1);
    expect(c.entry(base, 0x8200_0001)).toMatchObject({ kinds: 1, wide: false, hits: 1 });
  });

  it("writes x1-x3 of a wide answer, and nothing beyond x3", () => {
    const { c, trace, rule } = cache();
    const base = c.allocate();
    const written = regsOf(0x8300_0010, 0);
    written.set([1, 0, 2, 0, 3, 0, 0xffff_ffff, 7], 0);
    c.remember(base, 0x8300_0010 | 0, 0x8300_0010, 0, step(STEP_SERVICE, rule("wide")).step, written);
    const r = regsOf(0x8300_0010, 0xaaaa_aaaa);
    expect(answerFromCache(c.words, base, r, 0, 0, trace)).toBe(true);
    expect([...r.subarray(0, 9)]).toEqual([1, 0, 2, 0, 3, 0, 0xffff_ffff, 7, 0xaaaa_aaaa]);
    expect(c.entry(base, 0x8300_0010)?.wide).toBe(true);
  });

  it("holds for a caller kind only once that kind has reached the step", () => {
    const { c, trace, rule } = cache();
    const base = c.allocate();
    const s = step(STEP_DENY, rule("d")).step;
    c.remember(base, 0x8200_0001 | 0, 0x8200_0001, 0, s, regsOf(0xffff_ffff, 0));
    for (const flags of [FLAG_SMC, FLAG_AARCH32, FLAG_SMC | FLAG_AARCH32]) expect(answerFromCache(c.words, base, regsOf(0x8200_0001), flags, 0, trace)).toBe(false);
    c.remember(base, 0x8200_0001 | 0, 0x8200_0001, FLAG_AARCH32, s, regsOf(0xffff_ffff, 0));
    expect(answerFromCache(c.words, base, regsOf(0x8200_0001), FLAG_AARCH32, 0, trace)).toBe(true);
    expect(answerFromCache(c.words, base, regsOf(0x8200_0001), FLAG_SMC, 0, trace)).toBe(false);
    expect(c.entry(base, 0x8200_0001)?.kinds).toBe(0b0101);
  });

  it("keeps no answer a service does not call fixed, and asks it once per ID", () => {
    const { c, trace, rule } = cache();
    const base = c.allocate();
    const { step: s, asked } = step(STEP_SERVICE, rule("affinity"), false);
    for (let i = 0; i < 5; i++) {
      c.remember(base, 0x8400_0004 | 0, 0x8400_0004, 0, s, regsOf(0, 0));
      expect(answerFromCache(c.words, base, regsOf(0x8400_0004), 0, 0, trace)).toBe(false);
    }
    expect(asked.n).toBe(1);
    expect(c.entry(base, 0x8400_0004)).toMatchObject({ kinds: 0, notFixed: true });
    // A step that only forwards (or mediates, or delegates) is never kept: the secure world answers.
    const fwd = new BoundStep(STEP_MONITOR, null, null, 1, rule("fwd"), "fwd", [], []);
    c.remember(base, 0xc200_0001 | 0, 0xc200_0001, 0, fwd, regsOf(0, 0));
    expect(answerFromCache(c.words, base, regsOf(0xc200_0001), 0, 0, trace)).toBe(false);
  });

  it("never puts 'not fixed' in place of an answer in the same slot", () => {
    const { c, trace, rule } = cache();
    const base = c.allocate();
    const [kept, other] = collidingIds(c, base);
    c.remember(base, kept | 0, kept, 0, step(STEP_DENY, rule("d")).step, regsOf(0xffff_ffff, 0));
    c.remember(base, other | 0, other, 0, step(STEP_SERVICE, rule("s"), false).step, regsOf(0, 0));
    expect(answerFromCache(c.words, base, regsOf(kept), 0, 0, trace)).toBe(true);
  });

  it("moves an entry's hits to the trace when a new answer replaces it, and counts past 2^32", () => {
    const { c, trace, calls, rule } = cache();
    const base = c.allocate();
    const [first, second] = collidingIds(c, base);
    c.remember(base, first | 0, first, 0, step(STEP_DENY, rule("first")).step, regsOf(0xffff_ffff, 0));
    answerFromCache(c.words, base, regsOf(first), 0, 0, trace);
    c.setHits(base, first, 2 ** 32 - 1);
    answerFromCache(c.words, base, regsOf(first), 0, 0, trace);
    expect(c.entry(base, first)?.hits).toBe(2 ** 32);
    expect(calls("first")).toBe(2 ** 32);
    c.remember(base, second | 0, second, 0, step(STEP_DENY, rule("second")).step, regsOf(0xffff_ffff, 0));
    expect(c.entry(base, first)).toBeNull();
    expect(calls("first")).toBe(2 ** 32);
    expect(answerFromCache(c.words, base, regsOf(first), 0, 0, trace)).toBe(false);
  });

  it("keeps blocks apart, zeroes a released block (its hits kept) and gives it to the next VM", () => {
    const { c, trace, calls, rule } = cache();
    const a = c.allocate(), b = c.allocate();
    expect(b - a).toBe(BLOCK_WORDS);
    c.remember(a, 0x8000_0000 | 0, 0x8000_0000, 0, step(STEP_SERVICE, rule("version")).step, regsOf(0x1_0002, 0));
    expect(answerFromCache(c.words, b, regsOf(0x8000_0000), 0, 0, trace)).toBe(false);
    expect(answerFromCache(c.words, a, regsOf(0x8000_0000), 0, 0, trace)).toBe(true);
    c.release(a);
    expect(calls("version")).toBe(1);
    expect([...c.words.subarray(a, a + BLOCK_WORDS)].every((w) => w === 0)).toBe(true);
    expect(c.allocate()).toBe(a);
    expect(answerFromCache(c.words, a, regsOf(0x8000_0000), 0, 0, trace)).toBe(false);
  });

  it("keeps every answer when it grows for more VMs (the words are then a new array)", () => {
    const { c, trace, rule } = cache();
    const label = rule("version");
    const bases = [c.allocate()];
    c.remember(bases[0]!, 0x8000_0000 | 0, 0x8000_0000, 0, step(STEP_SERVICE, label).step, regsOf(0x1_0002, 0));
    const before = c.words;
    for (let i = 0; i < 20; i++) bases.push(c.allocate());
    expect(c.words).not.toBe(before);
    const r = regsOf(0x8000_0000);
    expect(answerFromCache(c.words, bases[0]!, r, 0, 0, trace)).toBe(true);
    expect(r[0]).toBe(0x1_0002);
  });

  it("has SLOTS entries per VM: as many fixed IDs as slots can be answered at once at best", () => {
    const { c, trace, rule } = cache();
    const base = c.allocate();
    const s = step(STEP_DENY, rule("d")).step;
    for (let fn = 0; fn < 256; fn++) c.remember(base, (0x8200_0000 + fn) | 0, 0x8200_0000 + fn, 0, s, regsOf(0xffff_ffff, 0));
    let answered = 0;
    for (let fn = 0; fn < 256; fn++) if (answerFromCache(c.words, base, regsOf(0x8200_0000 + fn), 0, 0, trace)) answered++;
    expect(answered).toBe(SLOTS);
  });

  it("keeps nothing for a label beyond the entry's 24 bits", () => {
    const { c, trace } = cache();
    const base = c.allocate();
    c.remember(base, 0x8200_0001 | 0, 0x8200_0001, 0, step(STEP_DENY, 0x100_0000).step, regsOf(0xffff_ffff, 0));
    expect(answerFromCache(c.words, base, regsOf(0x8200_0001), 0, 0, trace)).toBe(false);
  });
});

describe("the answer cache in the router", () => {
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
    const cache = (m.hypervisor.router as unknown as { answers: AnswerCache }).answers;
    const base = m.hypervisor.domain("b").routed.answerBase;
    expect(cache.entry(base, 0x8300_0005)?.hits).toBe(1);
    expect(cache.setHits(base, 0x8300_0005, 2 ** 32 - 1)).toBe(true);
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
