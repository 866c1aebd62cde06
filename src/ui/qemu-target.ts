/**
 * The dashboard's view of a QEMU machine (machine/qemu): each VM's state from its QEMU process, and the
 * control API's actions on it. Power off ends the VM's QEMU (its exit reads "stopped"); destroy also
 * destroys its domain at once, so the TEE lets go of what it held; reset resets the machine at once, whatever
 * the guest is doing (QemuVm.reset, over QEMU's QMP).
 */
import type { QemuMachine } from "../machine/qemu/machine.js";
import type { VmExit } from "../machine/qemu/qemu-vm.js";
import type { VmActions } from "./control.js";
import type { LiveTarget } from "./live.js";

export function qemuTarget(m: QemuMachine): LiveTarget & VmActions {
  const exits = new Map<string, VmExit>();
  const destroyed = new Set<string>();
  for (const q of m.vms.values()) void q.exited.then((e) => exits.set(q.name, e));
  const names = m.config.vms.map((v) => v.name);
  const find = (name: string) => (names.includes(name) ? m.vms.get(name) : undefined);
  return {
    hypervisor: m.hypervisor,
    vmNames: () => names,
    vmState(name) {
      const q = find(name);
      const e = exits.get(name);
      const boots = q?.boots ?? 1;
      if (destroyed.has(name)) return { state: "destroyed", reason: e?.reason ?? "destroyed through the control API", boots };
      if (e) return { state: e.state, reason: e.reason, boots };
      if (q?.ended) return { state: "stopping", boots };
      return { state: "running", boots };
    },
    async reset(name) {
      const q = find(name);
      if (!q) return { ok: false, error: `no VM named "${name}"` };
      if (destroyed.has(name)) return { ok: false, error: `${name} is destroyed` };
      const r = await q.reset();
      return r.ok ? { ok: true, detail: `reset (boot ${q.boots} begins)` } : r;
    },
    powerOff(name) {
      const q = find(name);
      if (!q) return { ok: false, error: `no VM named "${name}"` };
      if (q.ended) return { ok: false, error: `${name} has ended` };
      q.stop("powered off through the control API");
      return { ok: true, detail: "powered off (its QEMU ended)" };
    },
    destroy(name) {
      const q = find(name);
      if (!q) return { ok: false, error: `no VM named "${name}"` };
      if (destroyed.has(name)) return { ok: false, error: `${name} is already destroyed` };
      destroyed.add(name);
      if (!q.ended) q.stop("destroyed through the control API");
      m.hypervisor.destroyDomain(name);
      return { ok: true, detail: "destroyed (its QEMU ended, its domain and TEE state freed)" };
    },
  };
}
