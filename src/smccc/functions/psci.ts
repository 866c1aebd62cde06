import type { FunctionTable } from "./table.js";

/** PSCI (DEN0022 F.b, PSCI 1.3) §5; Linux include/uapi/linux/psci.h. */
export const PSCI_FUNCTIONS = {
  PSCI_VERSION: { smc32: 0x8400_0000 },
  PSCI_CPU_SUSPEND: { smc32: 0x8400_0001, smc64: 0xc400_0001 },
  PSCI_CPU_OFF: { smc32: 0x8400_0002 },
  PSCI_CPU_ON: { smc32: 0x8400_0003, smc64: 0xc400_0003 },
  PSCI_AFFINITY_INFO: { smc32: 0x8400_0004, smc64: 0xc400_0004 },
  PSCI_MIGRATE: { smc32: 0x8400_0005, smc64: 0xc400_0005 },
  PSCI_MIGRATE_INFO_TYPE: { smc32: 0x8400_0006 },
  PSCI_MIGRATE_INFO_UP_CPU: { smc32: 0x8400_0007, smc64: 0xc400_0007 },
  PSCI_SYSTEM_OFF: { smc32: 0x8400_0008 },
  PSCI_SYSTEM_RESET: { smc32: 0x8400_0009 },
  PSCI_FEATURES: { smc32: 0x8400_000a },
  PSCI_CPU_FREEZE: { smc32: 0x8400_000b },
  PSCI_CPU_DEFAULT_SUSPEND: { smc32: 0x8400_000c, smc64: 0xc400_000c },
  PSCI_NODE_HW_STATE: { smc32: 0x8400_000d, smc64: 0xc400_000d },
  PSCI_SYSTEM_SUSPEND: { smc32: 0x8400_000e, smc64: 0xc400_000e },
  PSCI_SET_SUSPEND_MODE: { smc32: 0x8400_000f },
  PSCI_STAT_RESIDENCY: { smc32: 0x8400_0010, smc64: 0xc400_0010 },
  PSCI_STAT_COUNT: { smc32: 0x8400_0011, smc64: 0xc400_0011 },
  PSCI_SYSTEM_RESET2: { smc32: 0x8400_0012, smc64: 0xc400_0012 },
  PSCI_MEM_PROTECT: { smc32: 0x8400_0013 },
  PSCI_MEM_PROTECT_CHECK_RANGE: { smc32: 0x8400_0014, smc64: 0xc400_0014 },
  PSCI_SYSTEM_OFF2: { smc32: 0x8400_0015, smc64: 0xc400_0015 },
} as const satisfies FunctionTable;

/**
 * PSCI 0.1 had no fixed IDs: firmware named them in the device tree. These are the values KVM
 * uses (arch/arm64/kvm/psci.c, KVM_PSCI_FN_BASE 0x95c1ba5e); a VM may choose others.
 */
export const PSCI_0_1_KVM_FUNCTIONS = {
  PSCI_0_1_CPU_SUSPEND: { smc32: 0x95c1_ba5e },
  PSCI_0_1_CPU_OFF: { smc32: 0x95c1_ba5f },
  PSCI_0_1_CPU_ON: { smc32: 0x95c1_ba60 },
  PSCI_0_1_MIGRATE: { smc32: 0x95c1_ba61 },
} as const satisfies FunctionTable;
