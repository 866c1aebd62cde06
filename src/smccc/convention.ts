/**
 * Register rules of the calling convention, DEN0028 §2.6-2.8 and §3 (table 3-1 of each revision).
 *
 *            arguments                 results                 not results
 *   1.0      x1-x6 (w1-w6, r1-r6)      x0-x3                   x4-x17 may be clobbered
 *   1.1      x1-x6                     x0-x3                   x4-x17 preserved
 *   1.2+     SMC64 x1-x17, SMC32 w1-w7 SMC64 x0-x17, SMC32 w0-w7  preserved
 *
 * smcvisor preserves every register that is not a result under every version (the 1.0 "may clobber"
 * permits that), so a guest never sees stale hypervisor or secure-world values. Result registers the
 * service does not set are written as zero, like KVM's smccc_set_retval, for the same reason.
 */
import { SMCCC_1_2 } from "./version.js";

export interface RegisterRules {
  /** Highest argument register index the callee may read (6, 7 or 17). */
  readonly lastArg: number;
  /** Highest result register index the callee may write (3, 7 or 17). */
  readonly lastResult: number;
}

const V1_0: RegisterRules = { lastArg: 6, lastResult: 3 };
const V1_2_SMC64: RegisterRules = { lastArg: 17, lastResult: 17 };
const V1_2_SMC32: RegisterRules = { lastArg: 7, lastResult: 7 };

/** Register rules for a call of the given width under an SMCCC version. */
export function registerRules(version: number, smc64: boolean): RegisterRules {
  if (version < SMCCC_1_2) return V1_0;
  return smc64 ? V1_2_SMC64 : V1_2_SMC32;
}

/** The result registers a caller must assume clobbered whatever the call returns (Linux arm_smccc_1_1_*). */
export const ALWAYS_WRITTEN_RESULTS = 4;

/** Outcome of the function-ID checks every call passes before policy (SMCCC §2.5). */
export const FID_OK = 0;
/** An SMC64/HVC64 ID from an AArch32 caller: -1 (SMCCC §2.5; TF-A, Xen and KVM agree). */
export const FID_SMC64_FROM_AARCH32 = 1;
/** Bits 23:17 set on a fast call: -1 (SMCCC §2.5; TF-A common/runtime_svc.c). */
export const FID_MBZ_SET = 2;
/** Bit 16 set on a fast call before SMCCC 1.3, where it was still must-be-zero. */
export const FID_SVE_HINT_BEFORE_1_3 = 3;

export const FID_CHECK_LABELS = [
  "",
  "smccc:smc64-from-aarch32",
  "smccc:mbz-bits-23-17",
  "smccc:sve-hint-before-1.3",
] as const;

/**
 * The checks of SMCCC §2.5 that come before any dispatch. `version` is the SMCCC version the VM is
 * told. Yielding calls keep bits 23:16 as part of their ID: only fast calls have must-be-zero bits.
 */
export function checkFid(fid: number, aarch32: boolean, version: number): number {
  if (aarch32 && (fid & 0x4000_0000) !== 0) return FID_SMC64_FROM_AARCH32;
  if ((fid & 0x8000_0000) !== 0) {
    if ((fid & 0x00fe_0000) !== 0) return FID_MBZ_SET;
    if ((fid & 0x0001_0000) !== 0 && version < 0x1_0003) return FID_SVE_HINT_BEFORE_1_3;
  }
  return FID_OK;
}

/** The FID dispatch sees: the SVE hint (bit 16 of a fast call, v1.3+) removed. */
export function dispatchFid(fid: number): number {
  return (fid & 0x8000_0000) !== 0 ? (fid & 0xfffe_ffff) >>> 0 : fid >>> 0;
}
