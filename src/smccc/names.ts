/**
 * Spec names for every function ID smcvisor knows (SMCCC DEN0028, PSCI DEN0022, TRNG DEN0098, PV time
 * DEN0057, the hypervisor services, OP-TEE's optee_smc.h, EEMI). One table per interface lives in
 * ./functions; this index is derived from them, so dispatch, trace labels and docs cannot disagree.
 */
import { ARCH_FUNCTIONS } from "./functions/arch.js";
import { EEMI_FUNCTIONS } from "./functions/eemi.js";
import { FFA_FUNCTIONS } from "./functions/ffa.js";
import { KVM_VENDOR_HYP_FUNCTIONS, PV_TIME_FUNCTIONS } from "./functions/hypervisor.js";
import { OPTEE_FUNCTIONS } from "./functions/optee.js";
import { PSCI_0_1_KVM_FUNCTIONS, PSCI_FUNCTIONS } from "./functions/psci.js";
import { queryName } from "./functions/queries.js";
import type { FunctionTable } from "./functions/table.js";
import { TRNG_FUNCTIONS } from "./functions/trng.js";

export const FUNCTION_TABLES: Readonly<Record<string, FunctionTable>> = {
  arch: ARCH_FUNCTIONS,
  psci: PSCI_FUNCTIONS,
  "psci-0.1-kvm": PSCI_0_1_KVM_FUNCTIONS,
  trng: TRNG_FUNCTIONS,
  "pv-time": PV_TIME_FUNCTIONS,
  "kvm-vendor-hyp": KVM_VENDOR_HYP_FUNCTIONS,
  optee: OPTEE_FUNCTIONS,
  ffa: FFA_FUNCTIONS,
  "sip-eemi": EEMI_FUNCTIONS,
};

const byFid = new Map<number, string>();
for (const table of Object.values(FUNCTION_TABLES)) {
  for (const [name, def] of Object.entries(table)) {
    if (def.smc32 !== undefined) byFid.set(def.smc32, name);
    if (def.smc64 !== undefined) byFid.set(def.smc64, name);
  }
}

/** The spec name of a function ID (SVE hint already removed), or null if none is known. */
export function fidName(fid: number): string | null {
  return byFid.get(fid >>> 0) ?? queryName(fid >>> 0);
}

/** Every named ID, for docs and tests. */
export function allNamedFids(): ReadonlyMap<number, string> {
  return byFid;
}
