/**
 * The mediator conformance suite (R4, R5, R11): what every TEE mediator must do, whatever its TEE's ABI.
 * A mediator is described by a fixture (its config, a probe call, calls in its ranges, how to leave state
 * behind for a VM); OP-TEE's is in optee.test.ts, and the FF-A mediator will bring its own.
 */
import { describe, expect, it } from "vitest";
import { ScriptedMachine, type ScriptedVm } from "../../src/machine/scripted/machine.js";
import type { Mediator, MediatorFactory } from "../../src/mediators/mediator.js";
import type { HypervisorOptions } from "../../src/hypervisor/hypervisor.js";
import { parseConfigText } from "../../src/policy/load.js";
import type { Rule } from "../../src/policy/rules.js";
import { CALL_TYPES } from "../../src/smccc/fid.js";

export interface MediatorFixture {
  /** The mediator's name, as `vms.X.tee.mediator` and `mediate:<name>` give it. */
  readonly name: string;
  /** `platform:` entries that put its TEE in the secure world with room for exactly two guests. */
  readonly platformWithTee: string;
  /** The YAML value of `vms.X.tee` for a VM that uses it. */
  readonly vmTee: (vm: string) => string;
  /** A fast call any enabled VM may make (an identification call), and a check of its result. */
  readonly probe: { readonly fid: number; readonly check: (x: readonly bigint[]) => void };
  /** Function IDs in the ranges the mediator claims, fast and yielding, SMC32 and SMC64. */
  readonly claimed: readonly number[];
  /** Leaves state held for the VM in the mediator and the TEE (sessions, registrations, threads...). */
  readonly hold: (vm: ScriptedVm) => void;
  /** What the TEE itself holds for a VM (by VM ID): all zero after the VM is destroyed. */
  readonly teeHeld: (m: ScriptedMachine, vmId: number) => Readonly<Record<string, number>>;
}

const NOT_SUPPORTED_32 = 0xffff_ffffn;
const NOT_SUPPORTED_64 = 0xffff_ffff_ffff_ffffn;
const sum = (r: Readonly<Record<string, number>>) => Object.values(r).reduce((a, b) => a + b, 0);

function machine(f: MediatorFixture, vms: string, opts: HypervisorOptions = {}) {
  const log: string[] = [];
  const m = ScriptedMachine.fromText(`platform:\n${f.platformWithTee}\nvms:\n${vms}`, "yaml", { log: (l) => log.push(l), ...opts });
  return { m, log };
}

/** A stand-in second mediator on the Trusted Application range: answers x0 = its name's length, x1 = the caller's VM ID. */
const echoMediator: MediatorFactory = (): Mediator => ({
  name: "echo",
  claims: () => [],
  probe: () => true,
  enable: () => ({ ok: true }),
  destroy: () => {},
  reset: () => ({ ok: true }),
  counters: () => ({}),
  handle(_call, res, origin) {
    res.ret(4);
    res.set(1, origin.vmId);
  },
});

export function mediatorConformance(f: MediatorFixture): void {
  describe(`mediator conformance: ${f.name}`, () => {
    it("a platform without its TEE is valid: the probe is silent and a VM asking for the TEE fails to start at vms.X.tee", () => {
      const log: string[] = [];
      const quiet = ScriptedMachine.fromText(`vms:\n  a: {}\n`, "yaml", { log: (l) => log.push(l) });
      expect(quiet.vm("a").vcpu(0).smc(f.probe.fid).x0).toBe(NOT_SUPPORTED_32);
      expect(log).toEqual([]);
      expect(() => ScriptedMachine.fromText(`vms:\n  a: { tee: ${f.vmTee("a")} }\n`)).toThrow(/vms\.a\.tee/);
    });

    it("a VM without the TEE enabled gets NOT_SUPPORTED for every call in the mediator's ranges, by SMC and HVC", () => {
      const { m } = machine(f, `  a: { tee: ${f.vmTee("a")} }\n  b: {}\n`);
      const v = m.vm("b").vcpu(0);
      for (const fid of f.claimed) {
        for (const conduit of ["smc", "hvc"] as const) {
          const r = v.call(conduit, fid, [1, 2, 3, 4, 5, 6, 7]);
          expect(r.x0, `0x${fid.toString(16)} by ${conduit}`).toBe(fid & 0x4000_0000 ? NOT_SUPPORTED_64 : NOT_SUPPORTED_32);
        }
      }
    });

    it("calls in its ranges reach the mediator by SMC and by HVC alike, with the same answer", () => {
      const { m } = machine(f, `  a: { tee: ${f.vmTee("a")} }\n`);
      const v = m.vm("a").vcpu(0);
      const bySmc = v.smc(f.probe.fid), byHvc = v.hvc(f.probe.fid);
      f.probe.check(bySmc.regs);
      expect(byHvc.regs.slice(0, 4)).toEqual(bySmc.regs.slice(0, 4));
      expect([bySmc.decision.action, byHvc.decision.action]).toEqual(["mediate", "mediate"]);
    });

    it("enabling the TEE beyond its guest limit fails at enable time with the reason; the VMs already enabled keep working", () => {
      expect(() => machine(f, `  a: { tee: ${f.vmTee("a")} }\n  b: { tee: ${f.vmTee("b")} }\n  c: { tee: ${f.vmTee("c")} }\n`)).toThrow(/vms\.c\.tee: cannot enable/);
      const { m } = machine(f, `  a: { tee: ${f.vmTee("a")} }\n  b: { tee: ${f.vmTee("b")} }\n`);
      const r = m.hypervisor.createDomain({ ...m.config.vms[0]!, name: "c", id: 9 });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.errors[0]).toMatchObject({ path: "vms.c.tee", message: expect.stringContaining("cannot enable") });
      for (const vm of ["a", "b"]) f.probe.check(m.vm(vm).vcpu(0).smc(f.probe.fid).regs);
    });

    it("destroying a VM that holds state leaves nothing behind in the mediator, the TEE or the hypervisor's pages; the other VM goes on", () => {
      const { m } = machine(f, `  a: { tee: ${f.vmTee("a")} }\n  b: { tee: ${f.vmTee("b")} }\n`);
      const mediator = m.hypervisor.mediators.get(f.name)!;
      f.hold(m.vm("a"));
      f.hold(m.vm("b"));
      const idA = m.vm("a").domain.config.id, idB = m.vm("b").domain.config.id;
      expect(sum(mediator.counters("a")) + sum(f.teeHeld(m, idA))).toBeGreaterThan(0);
      const heldByB = m.hypervisor.heap.inUse;
      expect(m.hypervisor.destroyDomain("a")).toBe(true);
      expect(sum(mediator.counters("a"))).toBe(0);
      expect(sum(f.teeHeld(m, idA))).toBe(0);
      expect(m.hypervisor.heap.inUse).toBeLessThanOrEqual(heldByB);
      expect(sum(f.teeHeld(m, idB))).toBeGreaterThan(0);
      f.probe.check(m.vm("b").vcpu(0).smc(f.probe.fid).regs);
      // Its slot in the TEE is free again: a new VM can have the TEE.
      const again = m.hypervisor.createDomain({ ...m.config.vms[0]!, name: "a2", id: 7 });
      expect(again.ok).toBe(true);
    });

    it("resetting a VM that holds state leaves nothing held for it, gives it the TEE again, and leaves the other VM's state alone", () => {
      const { m } = machine(f, `  a: { tee: ${f.vmTee("a")} }\n  b: { tee: ${f.vmTee("b")} }\n`);
      const mediator = m.hypervisor.mediators.get(f.name)!;
      f.hold(m.vm("a"));
      f.hold(m.vm("b"));
      const idA = m.vm("a").domain.config.id, idB = m.vm("b").domain.config.id;
      const heldByB = { mediator: mediator.counters("b"), tee: f.teeHeld(m, idB) };
      expect(sum(mediator.counters("a")) + sum(f.teeHeld(m, idA))).toBeGreaterThan(0);
      expect(m.hypervisor.resetDomain("a")).toEqual({ ok: true });
      expect(sum(mediator.counters("a"))).toBe(0);
      expect(sum(f.teeHeld(m, idA))).toBe(0);
      expect({ mediator: mediator.counters("b"), tee: f.teeHeld(m, idB) }).toEqual(heldByB);
      // The reset VM has its TEE again, and can hold state in it as before.
      f.probe.check(m.vm("a").vcpu(0).smc(f.probe.fid).regs);
      f.hold(m.vm("a"));
      expect(sum(mediator.counters("a")) + sum(f.teeHeld(m, idA))).toBeGreaterThan(0);
    });

    it("its calls never reach the TEE past it: a VM whose policy forwards them (a config validation refuses, built past it) gets nothing from the TEE", () => {
      const parsed = parseConfigText(`platform:\n${f.platformWithTee}\nvms:\n  a: { tee: ${f.vmTee("a")} }\n  b: {}\n`, "yaml");
      if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
      const owners = [...new Set(f.claimed.map((fid) => (fid >>> 24) & 0x3f))];
      const vms = parsed.value.vms.map((vm) => {
        if (vm.name !== "b") return vm;
        const rules: Rule[] = owners.map((owner, i) => ({ index: i, path: `vms.b.grants[${i}]`, label: `forward-${owner}`, selector: { kind: "owner", first: owner, last: owner, calls: CALL_TYPES }, constraints: [], action: { kind: "forward" }, exclusive: false }));
        return { ...vm, rules };
      });
      const m = ScriptedMachine.fromConfig({ ...parsed.value, vms });
      const before = f.teeHeld(m, m.vm("a").domain.config.id);
      const r = m.vm("b").vcpu(0).smc(f.probe.fid);
      expect(r.decision.action).toBe("forward");
      expect(r.x0).toBe(NOT_SUPPORTED_32);
      for (const fid of f.claimed) m.vm("b").vcpu(0).smc(fid, 1, 2, 3, 4, 5, 6, m.vm("a").domain.config.id);
      expect(f.teeHeld(m, m.vm("a").domain.config.id)).toEqual(before);
      f.probe.check(m.vm("a").vcpu(0).smc(f.probe.fid).regs);
    });

    it("works beside another mediator serving other owner ranges", () => {
      const { m } = machine(f, `  a: { tee: ${f.vmTee("a")} }\n  b: { grants: [{ owner: trusted-app, action: "mediate:echo" }] }\n`, { mediators: [echoMediator] });
      f.probe.check(m.vm("a").vcpu(0).smc(f.probe.fid).regs);
      const r = m.vm("b").vcpu(0).smc(0xb000_0001);
      expect([r.x0, r.x(1), r.decision.action]).toEqual([4n, BigInt(m.vm("b").domain.config.id), "mediate"]);
      expect(m.vm("b").vcpu(0).smc(f.probe.fid).x0).toBe(NOT_SUPPORTED_32);
    });
  });
}
