/**
 * FF-A partition information descriptors (DEN0077 v1.1 Table 13.34; v1.0 Table 82) and UUIDs in
 * FF-A registers and descriptors.
 *
 * - v1.0 descriptor, 8 bytes: partition ID u16 @0, execution context count u16 @2, properties u32 @4.
 * - v1.1+ descriptor, 24 bytes: the same 8, then the partition's UUID, 16 bytes @8.
 *
 * UUIDs: FFA_PARTITION_INFO_GET takes the UUID in w1-w4, where w_n+1 is the little-endian u32 of the UUID's
 * bytes 4n..4n+3 in string order: Linux drivers/firmware/arm_ffa/driver.c exports the uuid_t's bytes into
 * a u32[4] (export_uuid) and passes those words; the descriptor's UUID field holds the same bytes in
 * string order (Linux import_uuid from the RX buffer). PARTITION_INFO_GET_REGS (v1.2) packs two words per
 * 64-bit register, the lower word in the low half.
 */
import { uuidBytes } from "../uuid.js";
import { FFA_VERSION_1_1 } from "./abi.js";

export const FFA_PARTITION_INFO_SIZE_V1_0 = 8;
export const FFA_PARTITION_INFO_SIZE_V1_1 = 24;
const P_ID = 0, P_EXEC = 2, P_PROPERTIES = 4, P_UUID = 8;

/** A partition as FFA_PARTITION_INFO_GET describes it. */
export interface FfaPartitionInfo {
  readonly id: number;
  /** Execution contexts (vCPUs), or the proxy partition's ID for an auxiliary ID. */
  readonly executionContexts: number;
  /** FFA_PARTITION_PROP bits. */
  readonly properties: number;
  /** Canonical lower-case UUID string ("00000000-0000-0000-0000-000000000000" for none). */
  readonly uuid: string;
}

export const FFA_NIL_UUID = "00000000-0000-0000-0000-000000000000";

/** The descriptor size the caller's negotiated version uses. */
export function partitionInfoSize(version: number): number {
  return version >= FFA_VERSION_1_1 ? FFA_PARTITION_INFO_SIZE_V1_1 : FFA_PARTITION_INFO_SIZE_V1_0;
}

/** The 4 register words of a UUID (w1-w4 of PARTITION_INFO_GET, x2-x3 of DIRECT_REQ2 as two u64). */
export function ffaUuidWords(uuid: string): [number, number, number, number] {
  const b = uuidBytes(uuid);
  const w = (i: number) => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  return [w(0), w(4), w(8), w(12)];
}

/** The UUID string of 4 register words (only the low 32 bits of each are used). */
export function ffaUuidFromWords(words: readonly [number, number, number, number]): string {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  words.forEach((w, i) => dv.setUint32(4 * i, w >>> 0, true));
  return uuidString(b);
}

/** The UUID in two 64-bit registers (x1/x2 of PARTITION_INFO_GET_REGS, x2/x3 of DIRECT_REQ2). */
export function ffaUuidRegs(uuid: string): [bigint, bigint] {
  const [w0, w1, w2, w3] = ffaUuidWords(uuid);
  return [(BigInt(w1) << 32n) | BigInt(w0), (BigInt(w3) << 32n) | BigInt(w2)];
}

export function ffaUuidFromRegs(lo: bigint, hi: bigint): string {
  const m = 0xffff_ffffn;
  return ffaUuidFromWords([Number(lo & m), Number((lo >> 32n) & m), Number(hi & m), Number((hi >> 32n) & m)]);
}

function uuidString(b: Uint8Array): string {
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Lower-case canonical form, or undefined for a string that is not a UUID. */
export function canonicalUuid(uuid: string): string | undefined {
  try {
    return uuidString(uuidBytes(uuid));
  } catch {
    return undefined;
  }
}

/** Writes `infos` as descriptors of `version`'s layout into `out` (which must be large enough). */
export function encodePartitionInfo(infos: readonly FfaPartitionInfo[], version: number, out?: Uint8Array): Uint8Array {
  const size = partitionInfoSize(version);
  const bytes = out ?? new Uint8Array(size * infos.length);
  if (bytes.byteLength < size * infos.length) throw new RangeError("partition info buffer too small");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  infos.forEach((p, i) => {
    const at = i * size;
    v.setUint16(at + P_ID, p.id, true);
    v.setUint16(at + P_EXEC, p.executionContexts, true);
    v.setUint32(at + P_PROPERTIES, p.properties >>> 0, true);
    if (size === FFA_PARTITION_INFO_SIZE_V1_1) bytes.set(uuidBytes(p.uuid), at + P_UUID);
  });
  return bytes;
}

/** Reads `count` descriptors of `size` bytes (8 or 24); null when they do not fit or the size is neither. */
export function decodePartitionInfo(bytes: Uint8Array, count: number, size: number): FfaPartitionInfo[] | null {
  if (size !== FFA_PARTITION_INFO_SIZE_V1_0 && size !== FFA_PARTITION_INFO_SIZE_V1_1) return null;
  if (count < 0 || count * size > bytes.byteLength) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: FfaPartitionInfo[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * size;
    out.push({
      id: v.getUint16(at + P_ID, true),
      executionContexts: v.getUint16(at + P_EXEC, true),
      properties: v.getUint32(at + P_PROPERTIES, true),
      uuid: size === FFA_PARTITION_INFO_SIZE_V1_1 ? uuidString(bytes.slice(at + P_UUID, at + P_UUID + 16)) : FFA_NIL_UUID,
    });
  }
  return out;
}
