/**
 * What the QEMU backend can run: each VM in its own QEMU `virt` machine under the EL2 shim. Checked when a
 * scenario is read (`smcvisor run`, `smcvisor config check`), before any work is done: no initramfs is
 * built and no QEMU started for a VM the backend would refuse later.
 */
import type { ConfigError } from "../../policy/config.js";
import type { Config, VmConfig } from "../../policy/load.js";
import { HANDOVER_RAM_BASE, MACHINE_RAM_BASE, SHIM_SIZE } from "./layout.js";

/**
 * vCPUs per VM. The backend runs `virt` with a GICv2 (gic-version=2), which has at most eight CPU
 * interfaces (Arm IHI 0048B §1.1; QEMU's virt caps a GICv2 machine at 8 CPUs), and the shim gives a
 * mailbox to each of the eight CPUs of cluster 0 (docs/qemu-channel.md).
 */
export const MAX_QEMU_VCPUS = 8;

/** RAM that the guest's RAM is backed by a multiple of: stage 2 maps it in 2 MiB blocks (stage2.ts). */
export const QEMU_RAM_GRANULE = 2n << 20n;

/**
 * The most RAM a VM may have: the RAM file (the shim's 2 MiB, then the guest's RAM) is mapped into the
 * hypervisor in one piece of at most 4 GiB (shared-ram.ts, MAX_SHARED_RAM).
 */
export const MAX_QEMU_RAM = (4n << 30n) - SHIM_SIZE;

const MiB = 1n << 20n;

/** Why the QEMU backend cannot run a config's VMs as they are: one problem per line, with its path. */
export function qemuLimitProblems(config: Config): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const vm of config.vms) {
    if (vm.vcpus > MAX_QEMU_VCPUS) {
      errors.push({ path: `vms.${vm.name}.vcpus`, message: `the QEMU backend runs at most ${MAX_QEMU_VCPUS} vCPUs per VM (a GICv2 has eight CPU interfaces); this VM has ${vm.vcpus}` });
    }
    if (vm.handover) errors.push(...handoverProblems(vm));
    else if (vm.memory.base !== MACHINE_RAM_BASE) {
      errors.push({ path: `vms.${vm.name}.memory.base`, message: `QEMU's virt machine has its RAM at 0x${MACHINE_RAM_BASE.toString(16)}; memory.base is 0x${vm.memory.base.toString(16)}` });
    }
    if (vm.memory.size % QEMU_RAM_GRANULE !== 0n) {
      errors.push({ path: `vms.${vm.name}.memory.size`, message: `under QEMU the VM's RAM is a multiple of 2 MiB (stage 2 maps it in 2 MiB blocks); it is ${vm.memory.size} bytes` });
    } else if (vm.memory.size > MAX_QEMU_RAM) {
      errors.push({ path: `vms.${vm.name}.memory.size`, message: `under QEMU a VM has at most ${MAX_QEMU_RAM / MiB} MiB of RAM (4 GiB mapped in one piece, less the shim's 2 MiB); it has ${vm.memory.size / MiB} MiB` });
    }
  }
  return errors;
}

/**
 * A handover VM (docs/handover.md) runs its kernel at EL2 before the handover, where it sees physical
 * addresses: its RAM must be where the machine's is (IPA = PA, above the shim's region, so stage 2 after the
 * handover is the identity); it makes its SMCs to QEMU's PSCI before and to smcvisor after (SMC conduit); the
 * shim takes over an AArch64 EL1. Any vCPU count the backend runs (1 to 8): each CPU the kernel started
 * hands EL2 over itself, and the shim adopts it then (docs/handover.md, "More than one vCPU").
 */
function handoverProblems(vm: VmConfig): ConfigError[] {
  const errors: ConfigError[] = [];
  const at = `vms.${vm.name}`;
  if (vm.memory.base !== HANDOVER_RAM_BASE) {
    errors.push({ path: `${at}.memory.base`, message: `a handover VM's RAM is the machine's above the shim's region, IPA = PA: memory.base must be 0x${HANDOVER_RAM_BASE.toString(16)}; it is 0x${vm.memory.base.toString(16)}` });
  }
  if (vm.conduit !== "smc") errors.push({ path: `${at}.conduit`, message: "a handover VM's conduit is smc (its kernel's HVCs before the handover go to its own hyp stub)" });
  if (vm.aarch32) errors.push({ path: `${at}.aarch32`, message: "a handover VM runs an AArch64 kernel (Linux's hyp stub is AArch64)" });
  return errors;
}
