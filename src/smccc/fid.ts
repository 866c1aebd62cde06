/**
 * Function identifiers, SMCCC (DEN0028) §2.5. Every field is decoded; nothing is inferred.
 *
 *   31     fast (1) / yielding (0)
 *   30     SMC64/HVC64 (1) / SMC32/HVC32 (0)
 *   29:24  owning entity number
 *   23:17  must be zero for fast calls (TF-A common/runtime_svc.c rejects them with -1)
 *   16     SVE live-state hint, v1.3+ (must be zero before v1.3)
 *   15:0   function number
 */
import { ownerName } from "./owners.js";
import { fidName } from "./names.js";

export const FID_FAST = 0x8000_0000;
export const FID_SMC64 = 0x4000_0000;
export const FID_OWNER_SHIFT = 24;
export const FID_OWNER_MASK = 0x3f;
export const FID_MBZ_MASK = 0x00fe_0000;
export const FID_SVE_HINT = 0x0001_0000;
export const FID_FUNCTION_MASK = 0xffff;

/** Call types in the order of bits 31:30, so `fid >>> 30` is the index. */
export const CALL_TYPES = ["yield32", "yield64", "fast32", "fast64"] as const;
export type CallType = (typeof CALL_TYPES)[number];
/** Each call type's index (bits 31:30 of the function ID), as service claims list them. */
export const CALL_TYPE = { yield32: 0, yield64: 1, fast32: 2, fast64: 3 } as const satisfies Record<CallType, number>;

export interface DecodedFid {
  /** The 32-bit value as given (unsigned). */
  readonly fid: number;
  readonly fast: boolean;
  readonly smc64: boolean;
  readonly callType: CallType;
  readonly owner: number;
  readonly ownerName: string;
  /** Bits 23:17, shifted down; non-zero on a fast call is an error. */
  readonly mbz: number;
  readonly sveHint: boolean;
  readonly function: number;
  /** The ID with the SVE hint removed: what dispatch sees. */
  readonly dispatchFid: number;
  /** Spec name of `dispatchFid`, or null when no interface we know defines it. */
  readonly name: string | null;
}

export function fidOwner(fid: number): number {
  return (fid >>> FID_OWNER_SHIFT) & FID_OWNER_MASK;
}

export function fidFunction(fid: number): number {
  return fid & FID_FUNCTION_MASK;
}

export function isFast(fid: number): boolean {
  return (fid & FID_FAST) !== 0;
}

export function isSmc64(fid: number): boolean {
  return (fid & FID_SMC64) !== 0;
}

export function decodeFid(value: number): DecodedFid {
  const fid = value >>> 0;
  const fast = isFast(fid);
  const smc64 = isSmc64(fid);
  const owner = fidOwner(fid);
  const sveHint = (fid & FID_SVE_HINT) !== 0;
  const dispatchFid = (fid & ~FID_SVE_HINT) >>> 0;
  return {
    fid,
    fast,
    smc64,
    callType: CALL_TYPES[fid >>> 30]!,
    owner,
    ownerName: ownerName(owner, fast),
    mbz: (fid & FID_MBZ_MASK) >>> 17,
    sveHint,
    function: fidFunction(fid),
    dispatchFid,
    name: fidName(dispatchFid),
  };
}

export interface FidFields {
  readonly fast: boolean;
  readonly smc64: boolean;
  readonly owner: number;
  readonly function: number;
  readonly sveHint?: boolean;
  readonly mbz?: number;
}

export function encodeFid(f: FidFields): number {
  if (!Number.isInteger(f.owner) || f.owner < 0 || f.owner > FID_OWNER_MASK) {
    throw new RangeError(`owner ${f.owner} is outside 0-63`);
  }
  if (!Number.isInteger(f.function) || f.function < 0 || f.function > FID_FUNCTION_MASK) {
    throw new RangeError(`function number ${f.function} is outside 0-0xFFFF`);
  }
  const mbz = f.mbz ?? 0;
  if (!Number.isInteger(mbz) || mbz < 0 || mbz > 0x7f) throw new RangeError(`bits 23:17 value ${mbz} is outside 0-0x7F`);
  return (
    ((f.fast ? FID_FAST : 0) |
      (f.smc64 ? FID_SMC64 : 0) |
      (f.owner << FID_OWNER_SHIFT) |
      (mbz << 17) |
      (f.sveHint ? FID_SVE_HINT : 0) |
      f.function) >>>
    0
  );
}

export function hex32(value: number): string {
  return "0x" + (value >>> 0).toString(16).toUpperCase().padStart(8, "0");
}
