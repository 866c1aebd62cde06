import type { FunctionTable } from "./table.js";

/** Paravirtualized time, Standard Hypervisor Service (DEN0057A §3). Both calls are SMC64 only. */
export const PV_TIME_FUNCTIONS = {
  PV_TIME_FEATURES: { smc64: 0xc500_0020 },
  PV_TIME_ST: { smc64: 0xc500_0021 },
} as const satisfies FunctionTable;

/**
 * KVM's vendor-specific hypervisor service (OEN 6): Linux Documentation/virt/kvm/arm/hypercalls.rst,
 * include/linux/arm-smccc.h (ARM_SMCCC_VENDOR_HYP_*_FUNC_ID).
 */
export const KVM_VENDOR_HYP_FUNCTIONS = {
  ARM_SMCCC_VENDOR_HYP_KVM_FEATURES: { smc32: 0x8600_0000 },
  ARM_SMCCC_VENDOR_HYP_KVM_PTP: { smc32: 0x8600_0001 },
} as const satisfies FunctionTable;
