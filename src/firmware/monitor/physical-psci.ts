/**
 * Physical PSCI of the modelled EL3 firmware: the target of the hypervisor's own power calls (R9). Each
 * VM's vCPUs run on their own physical CPUs, as under QEMU where every VM is a machine: CPU i of machine
 * "dom0" is what the hypervisor powers on when dom0's vCPU i starts. CPU 0 of each machine is on at boot.
 * SYSTEM_RESET on behalf of a VM resets that VM's machine only (as the shim's physical SYSTEM_RESET resets
 * that VM's QEMU): CPU 0 on, every other CPU off, as at boot.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin } from "../../router/ports.js";
import { PSCI_FUNCTIONS as F } from "../../smccc/functions/psci.js";

const OFF = 0, ON = 1;
const RET = { SUCCESS: 0, NOT_SUPPORTED: -1, INVALID_PARAMETERS: -2, DENIED: -3, ALREADY_ON: -4 } as const;
const MAX_CPUS = 256;

export class PhysicalPsci {
  private readonly machines = new Map<string, Uint8Array>();

  cpus(machine: string): Uint8Array {
    let m = this.machines.get(machine);
    if (!m) {
      m = new Uint8Array(MAX_CPUS);
      m[0] = ON;
      this.machines.set(machine, m);
    }
    return m;
  }

  /** A machine's CPUs as at boot: CPU 0 on, the others off. */
  private reset(machine: string): void {
    const m = this.cpus(machine);
    m.fill(OFF);
    m[0] = ON;
  }

  /** Whether this model answers the FID. */
  claims(fid: number): boolean {
    return fid === F.PSCI_VERSION.smc32 || fid === F.PSCI_CPU_ON.smc32 || fid === F.PSCI_CPU_ON.smc64 || fid === F.PSCI_CPU_OFF.smc32 || fid === F.PSCI_AFFINITY_INFO.smc32 || fid === F.PSCI_AFFINITY_INFO.smc64 || fid === F.PSCI_SYSTEM_RESET.smc32;
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    // Only the hypervisor reaches physical PSCI; a VM's PSCI is virtual (services/psci).
    if (origin.vmId !== 0) return res.ret(RET.DENIED);
    const machine = origin.onBehalfOf?.vmName ?? "host";
    const cpus = this.cpus(machine);
    switch (call.fid) {
      case F.PSCI_VERSION.smc32:
        return res.ret(0x1_0001);
      case F.PSCI_CPU_ON.smc32:
      case F.PSCI_CPU_ON.smc64: {
        const target = cpuIndex(call.x(1));
        if (target < 0) return res.ret(RET.INVALID_PARAMETERS);
        if (cpus[target] === ON) return res.ret(RET.ALREADY_ON);
        cpus[target] = ON;
        return res.ret(RET.SUCCESS);
      }
      case F.PSCI_CPU_OFF.smc32:
        cpus[origin.onBehalfOf?.vcpu ?? 0] = OFF;
        return res.ret(RET.SUCCESS);
      case F.PSCI_AFFINITY_INFO.smc32:
      case F.PSCI_AFFINITY_INFO.smc64: {
        const target = cpuIndex(call.x(1));
        return res.ret(target < 0 ? RET.INVALID_PARAMETERS : cpus[target] === ON ? 0 : 1);
      }
      case F.PSCI_SYSTEM_RESET.smc32:
        // The machine restarts; the hypervisor, whose call this is, runs on: SUCCESS comes back to it.
        this.reset(machine);
        return res.ret(RET.SUCCESS);
    }
    res.ret(RET.NOT_SUPPORTED);
  }
}

/** CPU index from an MPIDR in QEMU virt's layout (clusters of 8), or -1. */
function cpuIndex(mpidr: bigint): number {
  if ((mpidr & ~0xffffn) !== 0n || (mpidr & 0xffn) >= 8n) return -1;
  const i = Number((mpidr >> 8n) * 8n + (mpidr & 0xffn));
  return i < MAX_CPUS ? i : -1;
}
