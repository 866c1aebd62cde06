import type { FunctionTable } from "./table.js";

/**
 * Arm Architecture Service calls (OEN 0), SMCCC (DEN0028) §7; Linux include/linux/arm-smccc.h,
 * TF-A include/services/arm_arch_svc.h.
 */
export const ARCH_FUNCTIONS = {
  SMCCC_VERSION: { smc32: 0x8000_0000 },
  SMCCC_ARCH_FEATURES: { smc32: 0x8000_0001 },
  SMCCC_ARCH_SOC_ID: { smc32: 0x8000_0002, smc64: 0xc000_0002 },
  SMCCC_ARCH_FEATURE_AVAILABILITY: { smc64: 0xc000_0003 },
  SMCCC_ARCH_WORKAROUND_4: { smc32: 0x8000_0004 },
  SMCCC_ARCH_WORKAROUND_3: { smc32: 0x8000_3fff },
  SMCCC_ARCH_WORKAROUND_2: { smc32: 0x8000_7fff },
  SMCCC_ARCH_WORKAROUND_1: { smc32: 0x8000_8000 },
} as const satisfies FunctionTable;
