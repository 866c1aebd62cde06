/**
 * FFA_FEATURES as the modelled SPMC answers the hypervisor (DEN0077 v1.2, FFA_FEATURES): exactly the interfaces
 * spmc.ts implements at the negotiated version, with their properties. One table: the dispatcher's
 * version gates and this answer come from the same entries.
 */
import {
  FFA_FEATURE_ID,
  FFA_FEATURES_FEATURE_MBZ,
  FFA_FEATURES_FUNCTION_BIT,
  FFA_FEATURES_RXTX_MAP,
  FFA_RET,
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
} from "../../smccc/ffa/abi.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";

interface Feature {
  /** The lowest negotiated version at which the SPMC offers it. */
  readonly since: number;
  /** FEATURES' w2 for it at a negotiated version. */
  readonly properties?: (version: number, limits: { maxRxTxPages: number }) => number;
}

const V10: Feature = { since: FFA_VERSION_1_0 };
const V11: Feature = { since: FFA_VERSION_1_1 };
const V12: Feature = { since: FFA_VERSION_1_2 };

/**
 * RXTX_MAP: 4 KiB minimum buffer; from v1.2 the maximum page count in [31:16] as well. MEM_SHARE and
 * MEM_LEND answer 0: descriptors only in the TX buffer (no dynamically allocated buffers, bit 0 clear).
 */
const RXTX_MAP: Feature = {
  since: FFA_VERSION_1_0,
  properties: (version, limits) =>
    FFA_FEATURES_RXTX_MAP.MIN_SIZE_4K | (version >= FFA_VERSION_1_2 ? limits.maxRxTxPages << FFA_FEATURES_RXTX_MAP.MAX_PAGES_SHIFT : 0),
};

export const SPMC_FEATURES: ReadonlyMap<number, Feature> = new Map<number, Feature>([
  [F.FFA_ERROR.smc32, V10],
  [F.FFA_SUCCESS.smc32, V10],
  [F.FFA_SUCCESS.smc64, V10],
  [F.FFA_VERSION.smc32, V10],
  [F.FFA_FEATURES.smc32, V10],
  [F.FFA_RX_RELEASE.smc32, V10],
  [F.FFA_RXTX_MAP.smc32, RXTX_MAP],
  [F.FFA_RXTX_MAP.smc64, RXTX_MAP],
  [F.FFA_RXTX_UNMAP.smc32, V10],
  [F.FFA_PARTITION_INFO_GET.smc32, V10],
  [F.FFA_ID_GET.smc32, V10],
  [F.FFA_MSG_SEND_DIRECT_REQ.smc32, V10],
  [F.FFA_MSG_SEND_DIRECT_REQ.smc64, V10],
  [F.FFA_MEM_LEND.smc32, V10],
  [F.FFA_MEM_LEND.smc64, V10],
  [F.FFA_MEM_SHARE.smc32, V10],
  [F.FFA_MEM_SHARE.smc64, V10],
  [F.FFA_MEM_RECLAIM.smc32, V10],
  [F.FFA_MEM_FRAG_TX.smc32, V10],
  [F.FFA_SPM_ID_GET.smc32, V11],
  [F.FFA_NOTIFICATION_BITMAP_CREATE.smc32, V11],
  [F.FFA_NOTIFICATION_BITMAP_DESTROY.smc32, V11],
  [F.FFA_NOTIFICATION_BIND.smc32, V11],
  [F.FFA_NOTIFICATION_UNBIND.smc32, V11],
  [F.FFA_NOTIFICATION_SET.smc32, V11],
  [F.FFA_NOTIFICATION_GET.smc32, V11],
  [F.FFA_NOTIFICATION_INFO_GET.smc64, V11],
  [F.FFA_PARTITION_INFO_GET_REGS.smc64, V12],
  [F.FFA_MSG_SEND_DIRECT_REQ2.smc64, V12],
]);

/** Whether the SPMC offers function `fid` at negotiated `version`. */
export function offers(fid: number, version: number): boolean {
  const f = SPMC_FEATURES.get(fid >>> 0);
  return f !== undefined && version >= f.since;
}

/**
 * FFA_FEATURES(w1): { w2 } on success or an FFA_ERROR code. Feature IDs: only the schedule receiver
 * interrupt, which the SPMC raises for the normal world (the notification pending interrupt is a
 * partition's, the managed exit interrupt too: NOT_SUPPORTED at this instance, as Hafnium answers).
 */
export function ffaFeatures(w1: number, version: number, limits: { maxRxTxPages: number }, sriIntId: number): { w2: number } | number {
  if ((w1 & FFA_FEATURES_FUNCTION_BIT) === 0) {
    if ((w1 & FFA_FEATURES_FEATURE_MBZ) !== 0) return FFA_RET.NOT_SUPPORTED;
    if (w1 === FFA_FEATURE_ID.SRI && version >= FFA_VERSION_1_1) return { w2: sriIntId };
    return FFA_RET.NOT_SUPPORTED;
  }
  const f = SPMC_FEATURES.get(w1 >>> 0);
  if (f === undefined || version < f.since) return FFA_RET.NOT_SUPPORTED;
  return { w2: f.properties?.(version, limits) ?? 0 };
}
