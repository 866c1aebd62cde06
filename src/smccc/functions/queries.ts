/**
 * General service queries, SMCCC (DEN0028) §6.2: every owner except the Arm Architecture (OEN 0)
 * reserves fast SMC32 function numbers 0xFF00-0xFF03 for Call Count (deprecated from v1.2),
 * Call UID, a reserved slot and Revision.
 */
import { OEN } from "../owners.js";

export const QUERY_CALL_COUNT = 0xff00;
export const QUERY_CALL_UID = 0xff01;
export const QUERY_REVISION = 0xff03;

const QUERY_NAMES: Readonly<Record<number, string>> = {
  [QUERY_CALL_COUNT]: "CALL_COUNT",
  [QUERY_CALL_UID]: "CALL_UID",
  [QUERY_REVISION]: "REVISION",
};

/** The query FID of an owner: 0x80000000 | owner << 24 | function. */
export function queryFid(owner: number, query: number): number {
  return (0x8000_0000 | (owner << 24) | query) >>> 0;
}

function ownerPrefix(oen: number): string | null {
  switch (oen) {
    case OEN.CPU: return "CPU_SERVICE";
    case OEN.SIP: return "SIP_SERVICE";
    case OEN.OEM: return "OEM_SERVICE";
    case OEN.STD_SECURE: return "STD_SECURE_SERVICE";
    case OEN.STD_HYP: return "STD_HYP_SERVICE";
    case OEN.VENDOR_HYP: return "VENDOR_HYP_SERVICE";
    case OEN.VENDOR_EL3: return "VENDOR_EL3_SERVICE";
  }
  if (oen >= OEN.TRUSTED_APP_FIRST && oen <= OEN.TRUSTED_APP_LAST) return `TRUSTED_APP${oen}_SERVICE`;
  if (oen >= OEN.TRUSTED_OS_FIRST && oen <= OEN.TRUSTED_OS_LAST) return `TRUSTED_OS${oen}_SERVICE`;
  return null;
}

/** Name of a general query FID such as 0x8500FF01 (STD_HYP_SERVICE_CALL_UID), or null. */
export function queryName(fid: number): string | null {
  if ((fid & 0xc0ff_0000) >>> 0 !== 0x8000_0000) return null; // fast SMC32 with bits 23:16 clear only
  const q = QUERY_NAMES[fid & 0xffff];
  const prefix = ownerPrefix((fid >>> 24) & 0x3f);
  return q !== undefined && prefix !== null ? `${prefix}_${q}` : null;
}
