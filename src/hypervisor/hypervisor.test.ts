// The toolstack's reset of a domain (issue 10): every layer's per-VM state back to boot, nothing of another VM.
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import type { SmcCall, SmcResult } from "../router/call.js";
import type { CallOrigin, CallTarget, HandlerReturn } from "../router/ports.js";
import type { ArchService } from "../services/arch/arch.js";
import type { PsciService } from "../services/psci/psci.js";
import { recordAddress, writeStolenTime } from "../services/pvtime/pvtime.js";
import { ARCH_FUNCTIONS as A } from "../smccc/functions/arch.js";
import { PSCI_FUNCTIONS as F } from "../smccc/functions/psci.js";

const ENTRY = 0x4008_0000n;
const PVTIME = 0x403f_0000n;
const TWO_VMS = `vms:\n  a: { vcpus: 4, memory: { size: 4MiB }, services: { pvtime: { base: ${PVTIME} } } }\n  b: { vcpus: 2, memory: { size: 4MiB }, services: { pvtime: { base: ${PVTIME} } } }\n`;

const service = <T>(m: ScriptedMachine, vm: string, name: string) => m.hypervisor.domain(vm).routed.services.get(name) as unknown as T;

/** Puts state in every layer of a VM: its secondaries on, WORKAROUND_2 off on its last vCPU, stolen time in its records. */
function dirty(m: ScriptedMachine, vm: string): void {
  const v = m.vm(vm);
  const n = v.vcpus.length;
  for (let t = 1; t < n; t++) expect(v.vcpu(0).smc(F.PSCI_CPU_ON.smc64, t, ENTRY, 0).sw(0)).toBe(0);
  expect(v.vcpu(n - 1).hvc(A.SMCCC_ARCH_WORKAROUND_2.smc32, 0).sw(0)).toBe(0);
  for (let t = 0; t < n; t++) writeStolenTime(v.memory, PVTIME, t, 1000n + BigInt(t));
}

/**
 * A machine whose secure monitor is `front`, in front of the machine's own model (which it may call once
 * the machine exists: the mediators' start-up probe comes first and gets -1).
 */
function fronted(yaml: string, front: (model: CallTarget, call: SmcCall, res: SmcResult, origin: CallOrigin) => HandlerReturn): ScriptedMachine {
  let m: ScriptedMachine | null = null;
  const monitor: CallTarget = { handle: (call, res, origin) => (m === null ? res.ret(-1) : front(m.hypervisor.model, call, res, origin)) };
  m = ScriptedMachine.fromText(yaml, "yaml", { monitor });
  return m;
}

function snapshot(m: ScriptedMachine, vm: string) {
  const n = m.vm(vm).vcpus.length;
  return {
    psci: [...service<PsciService>(m, vm, "psci").state],
    ssbd: [...service<ArchService>(m, vm, "arch").ssbdEnabled],
    physical: [...m.hypervisor.model.psci.cpus(vm).subarray(0, n)],
    records: Array.from({ length: n }, (_, t) => [...m.vm(vm).memory.read(recordAddress(PVTIME, t), 16)!]),
  };
}

describe("Hypervisor.resetDomain", () => {
  it("puts every service of the VM and its machine's physical CPUs back to boot, and touches no other VM", () => {
    const m = ScriptedMachine.fromText(TWO_VMS);
    const fresh = snapshot(m, "a");
    dirty(m, "a");
    dirty(m, "b");
    const b = snapshot(m, "b");
    expect(snapshot(m, "a")).not.toEqual(fresh);
    expect(m.hypervisor.resetDomain("a")).toEqual({ ok: true });
    expect(snapshot(m, "a")).toEqual(fresh);
    expect(fresh).toMatchObject({ psci: [1, 0, 0, 0], ssbd: [1, 1, 1, 1], physical: [1, 0, 0, 0] });
    expect(fresh.records.every((r) => r.every((x) => x === 0))).toBe(true);
    expect(snapshot(m, "b")).toEqual(b);
    // The physical reset is the hypervisor's own call, traced with its origin (R9).
    expect(m.trace.latest()).toMatchObject({ vm: "hypervisor", fid: F.PSCI_SYSTEM_RESET.smc32, origin: "reset a: SYSTEM_RESET of its machine", x0: 0n });
  });

  it("keeps the domain running with its policy sealed; Domain.reset() is the same operation", () => {
    const m = ScriptedMachine.fromText(TWO_VMS);
    const d = m.hypervisor.domain("a");
    dirty(m, "a");
    expect(d.state).toBe("running");
    expect(d.reset()).toEqual({ ok: true });
    expect(d.state).toBe("running");
    expect(d.routed.table.sealed).toBe(true);
    expect(snapshot(m, "a").psci).toEqual([1, 0, 0, 0]);
  });

  it("reports what it could not restore: a secure world that does not reset the machine's CPUs", () => {
    const m = fronted(TWO_VMS, (model, call, res, origin) => (call.fid === F.PSCI_SYSTEM_RESET.smc32 ? res.ret(-1) : model.handle(call, res, origin)));
    expect(m.hypervisor.resetDomain("a")).toEqual({ ok: false, errors: [{ path: "vms.a", message: "the secure world did not reset the VM's physical CPUs (SYSTEM_RESET answered -1)" }] });
  });

  it("waits for a secure world that answers later: the guest's SYSTEM_RESET boots vCPU 0 again only when the reset is done", async () => {
    let release = (): void => {};
    const m = fronted(TWO_VMS, (model, call, res, origin) => {
      model.handle(call, res, origin);
      return call.fid === F.PSCI_SYSTEM_RESET.smc32 && origin.vmId === 0 ? new Promise<void>((r) => (release = r)) : undefined;
    });
    const vm = m.vm("a");
    const r = vm.vcpu(0).hvc(F.PSCI_SYSTEM_RESET.smc32);
    expect(r.outcome).toBe("halt");
    expect(vm.vcpus.map((v) => v.power)).toEqual(["off", "off", "off", "off"]);
    expect(vm.power.lastReset).toBeNull();
    release();
    await vm.power.booted;
    expect(vm.power.lastReset).toEqual({ ok: true });
    expect(vm.vcpu(0).power).toBe("on");
    expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0).sw(0)).toBe(0);
  });

  it("names the domain it does not know", () => {
    const m = ScriptedMachine.fromText(TWO_VMS);
    expect(() => m.hypervisor.resetDomain("c")).toThrow(/no VM named "c"/);
  });
});
