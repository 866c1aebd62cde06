/**
 * Which PSCI functions each offered version has (DEN0022 F.b §5, table 5 "Function availability"), and
 * which of them smcvisor implements. A function outside the VM's version is NOT_SUPPORTED, and
 * PSCI_FEATURES says so.
 */
import { PSCI_FUNCTIONS as F } from "../../smccc/functions/psci.js";

export type PsciVersionName = "0.2" | "1.0" | "1.1" | "1.3";

export const PSCI_VERSION_VALUES: Readonly<Record<PsciVersionName, number>> = {
  "0.2": 0x0000_0002,
  "1.0": 0x0001_0000,
  "1.1": 0x0001_0001,
  "1.3": 0x0001_0003,
};

type Fn = keyof typeof F;

/** The version that introduced each function smcvisor implements. */
const IMPLEMENTED_SINCE: Partial<Record<Fn, number>> = {
  PSCI_VERSION: 0x2,
  PSCI_CPU_SUSPEND: 0x2,
  PSCI_CPU_OFF: 0x2,
  PSCI_CPU_ON: 0x2,
  PSCI_AFFINITY_INFO: 0x2,
  PSCI_MIGRATE_INFO_TYPE: 0x2,
  PSCI_SYSTEM_OFF: 0x2,
  PSCI_SYSTEM_RESET: 0x2,
  PSCI_FEATURES: 0x1_0000,
  PSCI_CPU_DEFAULT_SUSPEND: 0x1_0000,
  PSCI_SYSTEM_SUSPEND: 0x1_0000,
  PSCI_SYSTEM_RESET2: 0x1_0001,
  PSCI_MEM_PROTECT: 0x1_0001,
  PSCI_MEM_PROTECT_CHECK_RANGE: 0x1_0001,
  PSCI_SYSTEM_OFF2: 0x1_0003,
};

/**
 * Functions smcvisor does not offer, and why (also in the service README):
 *   MIGRATE, MIGRATE_INFO_UP_CPU: there is no uniprocessor Trusted OS to migrate (MIGRATE_INFO_TYPE = 2).
 *   CPU_FREEZE: a frozen vCPU could only be recovered by a system reset; Linux never uses it.
 *   NODE_HW_STATE: virtual cores have no hardware power state beyond what AFFINITY_INFO reports.
 *   PSCI_SET_SUSPEND_MODE: OS-initiated mode needs hierarchical idle-state coordination the model lacks.
 *   PSCI_STAT_RESIDENCY, PSCI_STAT_COUNT: no idle-state statistics are kept.
 */
export function implementedIn(version: number): Map<number, Fn> {
  const out = new Map<number, Fn>();
  for (const [name, since] of Object.entries(IMPLEMENTED_SINCE) as [Fn, number][]) {
    if (version < since) continue;
    const def: { smc32?: number; smc64?: number } = F[name];
    if (def.smc32 !== undefined) out.set(def.smc32, name);
    if (def.smc64 !== undefined) out.set(def.smc64, name);
  }
  return out;
}
