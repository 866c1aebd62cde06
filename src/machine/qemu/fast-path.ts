/**
 * Which calls a VM's shim may answer itself (docs/qemu-channel.md, "The fast path": a per-VM table of fixed
 * answers pushed by the hypervisor, still counted). Only where the router's answer is fixed and its only
 * effect is state the shim reports back: SMCCC_ARCH_WORKAROUND_1 and _3 (SUCCESS, nothing else), and
 * _2 (SUCCESS; W1 is the vCPU's SSBD state, carried in every frame). Linux makes these on every kernel
 * entry and exit or context switch (arch/arm64/kernel/proton-pack.c), which is why KVM answers them in its
 * EL2 vectors. A call is eligible only when the VM's policy hands it, unconditionally, to the emulating
 * Arm Architecture service and the workaround exists for the VM (SMCCC_ARCH_FEATURES ≥ 0).
 */
import type { Domain } from "../../hypervisor/hypervisor.js";
import { ArchService } from "../../services/arch/arch.js";
import { ARCH_FUNCTIONS } from "../../smccc/functions/arch.js";
import type { FastAnswer } from "./qemu-vm.js";

const ELIGIBLE = [ARCH_FUNCTIONS.SMCCC_ARCH_WORKAROUND_1.smc32, ARCH_FUNCTIONS.SMCCC_ARCH_WORKAROUND_2.smc32, ARCH_FUNCTIONS.SMCCC_ARCH_WORKAROUND_3.smc32];
const WA2 = ARCH_FUNCTIONS.SMCCC_ARCH_WORKAROUND_2.smc32;

export function fastAnswersFor(domain: Domain): FastAnswer[] {
  const vm = domain.routed;
  const arch = vm.services.get("arch");
  if (!(arch instanceof ArchService) || vm.config.aarch32) return [];
  const out: FastAnswer[] = [];
  for (const fid of ELIGIBLE) {
    const step = vm.single[vm.table.chainIndex(fid)];
    // A grant, an argument constraint or another service decides this call: the router must see it.
    if (!step || step.service !== arch) continue;
    const features = arch.features(fid);
    if (features < 0) continue;
    out.push({ fid, value: 0n, hvc: true, smc: true, ...(fid === WA2 && features === 0 ? { recordsWa2: true } : {}) });
  }
  return out;
}
