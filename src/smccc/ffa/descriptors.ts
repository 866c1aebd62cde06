/**
 * FF-A memory transaction descriptors (DEN0077 v1.1 Table 10.20, the "Lend, donate or share memory transaction
 * descriptor", endpoint memory access descriptor, composite memory region descriptor and constituent
 * memory region descriptor), used by FFA_MEM_SHARE/LEND/DONATE, FFA_MEM_RETRIEVE_REQ/RESP and the
 * hypervisor↔SPMC forwarding of them. One codec for both sides.
 *
 * Layouts (offsets in bytes, little-endian):
 * - v1.0 header, 32 bytes: sender u16 @0, attributes u8 @2, reserved u8 @3, flags u32 @4, handle u64 @8,
 *   tag u64 @16, reserved u32 @24, receiver count u32 @28; access descriptors follow at 32.
 *   (Linux include/linux/arm_ffa.h struct ffa_mem_region of 6.1.)
 * - v1.1+ header, 48 bytes: sender u16 @0, attributes u16 @2, flags u32 @4, handle u64 @8, tag u64 @16,
 *   access descriptor size u32 @24, receiver count u32 @28, access array offset u32 @32, 12 reserved
 *   bytes @36. (Hafnium inc/vmapi/hf/ffa.h struct ffa_memory_region; Xen ffa_shm.c.)
 * - Endpoint memory access descriptor: receiver u16 @0, permissions u8 @2, flags u8 @3, composite offset
 *   u32 @4; then v1.0/v1.1: reserved u64 @8 (16 bytes); v1.2: 16 implementation-defined bytes @8 and a
 *   reserved u64 @24 (32 bytes).
 * - Composite: total page count u32 @0, range count u32 @4, reserved u64 @8; ranges follow at 16.
 * - Constituent: address u64 @0 (4 KiB aligned), page count u32 @8, reserved u32 @12.
 *
 * The decoder reads each byte of `bytes` at most once and keeps no reference to it: callers pass a copy
 * they made of guest- or peer-controlled memory (a TX buffer), so nothing can change between a check and
 * a use. Every refusal is data ({kind, field}) with the FFA_ERROR it maps to; nothing throws.
 */
import {
  FFA_MEM_ACCESS_FLAG,
  FFA_MEM_ATTR,
  FFA_MEM_PERM,
  FFA_PAGE_SIZE,
  FFA_RET,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  type FfaError,
} from "./abi.js";

/** Which descriptor layout a negotiated FF-A version uses. */
export type FfaDescriptorLayout = "v1.0" | "v1.1" | "v1.2";

export function ffaDescriptorLayout(version: number): FfaDescriptorLayout {
  if (version >= FFA_VERSION_1_2) return "v1.2";
  if (version >= FFA_VERSION_1_1) return "v1.1";
  return "v1.0";
}

/** Header sizes and access descriptor sizes per layout. */
export const FFA_MEM_HEADER_SIZE = { "v1.0": 32, "v1.1": 48, "v1.2": 48 } as const;
export const FFA_MEM_ACCESS_SIZE = { "v1.0": 16, "v1.1": 16, "v1.2": 32 } as const;
export const FFA_COMPOSITE_SIZE = 16;
export const FFA_CONSTITUENT_SIZE = 16;

/** Header field offsets (both layouts share the first 24 bytes, except the attributes' width). */
const H_SENDER = 0, H_ATTRIBUTES = 2, H_RESERVED_V1_0_U8 = 3, H_FLAGS = 4, H_HANDLE = 8, H_TAG = 16;
const H_RESERVED_V1_0_U32 = 24, H_COUNT = 28;
const H_ACCESS_SIZE = 24, H_ACCESS_OFFSET = 32, H_RESERVED_V1_1 = 36, H_RESERVED_V1_1_LEN = 12;
/** Access descriptor field offsets. */
const A_RECEIVER = 0, A_PERMISSIONS = 2, A_FLAGS = 3, A_COMPOSITE = 4, A_RESERVED_V1_1 = 8;
const A_IMPDEF_V1_2 = 8, A_RESERVED_V1_2 = 24;
/** Composite and constituent field offsets. */
const C_TOTAL_PAGES = 0, C_RANGE_COUNT = 4, C_RESERVED = 8;
const R_ADDRESS = 0, R_PAGES = 8, R_RESERVED = 12;

/**
 * Composite offsets must be 8-byte aligned (TF-A's EL3 SPMC spmc_shmem.c checks 8; Hafnium asks 16, which
 * every encoder here and Linux's give anyway) and the v1.1 access array 16-byte aligned.
 */
export const FFA_COMPOSITE_ALIGN = 8;
export const FFA_ACCESS_ARRAY_ALIGN = 16;

export interface FfaMemAccess {
  readonly receiver: number;
  /** FFA_MEM_PERM bits. */
  readonly permissions: number;
  /** FFA_MEM_ACCESS_FLAG bits. */
  readonly flags: number;
  /** v1.2 only: the 16 implementation-defined bytes as two u64 (zero elsewhere). */
  readonly impdef?: readonly [bigint, bigint];
}

export interface FfaMemRange {
  /** Physical (or intermediate physical) address, 4 KiB aligned. */
  readonly address: bigint;
  /** 4 KiB pages, at least 1. */
  readonly pageCount: number;
}

export interface FfaMemTransaction {
  readonly sender: number;
  /** FFA_MEM_ATTR bits. */
  readonly attributes: number;
  /** FFA_MEM_FLAG bits. */
  readonly flags: number;
  readonly handle: bigint;
  readonly tag: bigint;
  readonly receivers: readonly FfaMemAccess[];
  /** The composite's constituents; empty when the descriptor has none (a retrieve request). */
  readonly ranges: readonly FfaMemRange[];
}

export type FfaDescriptorErrorKind =
  /** The descriptor ends before a structure it names. */
  | "truncated"
  /** Bytes after the last structure, or a total length that does not match. */
  | "length"
  /** An offset points into another structure or is 0 where one is needed. */
  | "offset"
  /** An address or offset is not aligned as the spec requires. */
  | "misaligned"
  /** A count is 0 where at least one is needed. */
  | "count"
  /** A field the spec says MBZ is not zero, or a reserved encoding is used. */
  | "reserved"
  /** An address range wraps around the 64-bit address space. */
  | "overflow"
  /** The composite's total page count is not the sum of its constituents'. */
  | "page-sum"
  /** The access descriptor size does not match the layout. */
  | "size"
  /** A receiver is listed twice. */
  | "duplicate"
  /** Two constituents overlap. */
  | "overlap"
  /** More receivers or ranges than the decoder's limits allow. */
  | "limit";

export interface FfaDescriptorError {
  readonly kind: FfaDescriptorErrorKind;
  /** The field at fault ("receivers[1].permissions", "ranges[3].address"). */
  readonly field: string;
  /** The FFA_ERROR a relayer answers with. */
  readonly ffaError: FfaError;
}

export type FfaDecoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: FfaDescriptorError };

export interface FfaDecodeOptions {
  /** "required": a send (SHARE/LEND/DONATE); "none": must have none; "optional": a retrieve request. */
  readonly composite: "required" | "none" | "optional";
  /** Whether the attributes' NS bit may be set (only in a retrieve response written by a relayer). */
  readonly allowNs?: boolean;
  /** At most this many receivers (default FFA_DECODE_MAX_RECEIVERS). */
  readonly maxReceivers?: number;
  /** At most this many constituents (default: as many as fit). */
  readonly maxRanges?: number;
  /** Bytes after the last structure are refused unless this is true (default false). */
  readonly allowTrailing?: boolean;
}

/** Receivers one descriptor may name: a bound for the decoder, above what any relayer here accepts. */
export const FFA_DECODE_MAX_RECEIVERS = 16;

const U64_LIMIT = 1n << 64n;

function fail<T>(kind: FfaDescriptorErrorKind, field: string): FfaDecoded<T> {
  const ffaError = kind === "limit" ? FFA_RET.NO_MEMORY : FFA_RET.INVALID_PARAMETERS;
  return { ok: false, error: { kind, field, ffaError } };
}

interface Header {
  sender: number;
  attributes: number;
  flags: number;
  handle: bigint;
  tag: bigint;
  count: number;
  accessOffset: number;
  accessSize: number;
}

function decodeHeader(v: DataView, layout: FfaDescriptorLayout, opts: Pick<FfaDecodeOptions, "allowNs">): FfaDecoded<Header> {
  const headerSize = FFA_MEM_HEADER_SIZE[layout];
  if (v.byteLength < headerSize) return fail("truncated", "header");
  const sender = v.getUint16(H_SENDER, true);
  let attributes: number;
  let accessOffset: number;
  let accessSize: number;
  if (layout === "v1.0") {
    attributes = v.getUint8(H_ATTRIBUTES);
    if (v.getUint8(H_RESERVED_V1_0_U8) !== 0) return fail("reserved", "reserved@3");
    if (v.getUint32(H_RESERVED_V1_0_U32, true) !== 0) return fail("reserved", "reserved@24");
    if ((attributes & FFA_MEM_ATTR.MBZ_V1_0) !== 0) return fail("reserved", "attributes");
    accessOffset = headerSize;
    accessSize = FFA_MEM_ACCESS_SIZE[layout];
  } else {
    attributes = v.getUint16(H_ATTRIBUTES, true);
    if ((attributes & FFA_MEM_ATTR.MBZ_V1_1) !== 0) return fail("reserved", "attributes");
    if ((attributes & FFA_MEM_ATTR.NS) !== 0 && opts.allowNs !== true) return fail("reserved", "attributes.NS");
    accessSize = v.getUint32(H_ACCESS_SIZE, true);
    accessOffset = v.getUint32(H_ACCESS_OFFSET, true);
    for (let i = 0; i < H_RESERVED_V1_1_LEN; i++) {
      if (v.getUint8(H_RESERVED_V1_1 + i) !== 0) return fail("reserved", `reserved@${H_RESERVED_V1_1 + i}`);
    }
    if (accessSize !== FFA_MEM_ACCESS_SIZE[layout]) return fail("size", "accessDescriptorSize");
    if (accessOffset < headerSize) return fail("offset", "accessDescriptorOffset");
    if (accessOffset % FFA_ACCESS_ARRAY_ALIGN !== 0) return fail("misaligned", "accessDescriptorOffset");
  }
  return {
    ok: true,
    value: {
      sender,
      attributes,
      flags: v.getUint32(H_FLAGS, true),
      handle: v.getBigUint64(H_HANDLE, true),
      tag: v.getBigUint64(H_TAG, true),
      count: v.getUint32(H_COUNT, true),
      accessOffset,
      accessSize,
    },
  };
}

function decodeAccess(
  v: DataView,
  at: number,
  i: number,
  layout: FfaDescriptorLayout,
): FfaDecoded<FfaMemAccess & { composite: number }> {
  const field = `receivers[${i}]`;
  const receiver = v.getUint16(at + A_RECEIVER, true);
  const permissions = v.getUint8(at + A_PERMISSIONS);
  const flags = v.getUint8(at + A_FLAGS);
  const composite = v.getUint32(at + A_COMPOSITE, true);
  if ((permissions & FFA_MEM_PERM.MBZ) !== 0) return fail("reserved", `${field}.permissions`);
  if ((permissions & FFA_MEM_PERM.DATA_MASK) === FFA_MEM_PERM.DATA_RESERVED) return fail("reserved", `${field}.permissions`);
  if ((permissions & FFA_MEM_PERM.INSTR_MASK) === FFA_MEM_PERM.INSTR_RESERVED) return fail("reserved", `${field}.permissions`);
  if ((flags & FFA_MEM_ACCESS_FLAG.MBZ) !== 0) return fail("reserved", `${field}.flags`);
  if (layout === "v1.2") {
    if (v.getBigUint64(at + A_RESERVED_V1_2, true) !== 0n) return fail("reserved", `${field}.reserved`);
    const impdef: [bigint, bigint] = [v.getBigUint64(at + A_IMPDEF_V1_2, true), v.getBigUint64(at + A_IMPDEF_V1_2 + 8, true)];
    return { ok: true, value: { receiver, permissions, flags, impdef, composite } };
  }
  if (v.getBigUint64(at + A_RESERVED_V1_1, true) !== 0n) return fail("reserved", `${field}.reserved`);
  return { ok: true, value: { receiver, permissions, flags, composite } };
}

function decodeRanges(v: DataView, offset: number, accessEnd: number, opts: FfaDecodeOptions): FfaDecoded<{ ranges: FfaMemRange[]; end: number }> {
  if (offset < accessEnd) return fail("offset", "compositeOffset");
  if (offset % FFA_COMPOSITE_ALIGN !== 0) return fail("misaligned", "compositeOffset");
  if (offset + FFA_COMPOSITE_SIZE > v.byteLength) return fail("truncated", "composite");
  const totalPages = v.getUint32(offset + C_TOTAL_PAGES, true);
  const count = v.getUint32(offset + C_RANGE_COUNT, true);
  if (v.getBigUint64(offset + C_RESERVED, true) !== 0n) return fail("reserved", "composite.reserved");
  if (count === 0) return fail("count", "composite.rangeCount");
  if (opts.maxRanges !== undefined && count > opts.maxRanges) return fail("limit", "composite.rangeCount");
  const first = offset + FFA_COMPOSITE_SIZE;
  const end = first + count * FFA_CONSTITUENT_SIZE;
  if (end > v.byteLength) return fail("truncated", "composite.ranges");
  const ranges = decodeConstituentsAt(v, first, count, 0);
  if (!ranges.ok) return ranges;
  const whole = checkRanges(ranges.value, totalPages);
  if (!whole.ok) return whole;
  return { ok: true, value: { ranges: ranges.value, end } };
}

/** `count` constituents from byte `first` of `v`, each checked; `index` numbers the first in field names. */
function decodeConstituentsAt(v: DataView, first: number, count: number, index: number): FfaDecoded<FfaMemRange[]> {
  const ranges: FfaMemRange[] = [];
  for (let i = 0; i < count; i++) {
    const at = first + i * FFA_CONSTITUENT_SIZE;
    const field = `ranges[${index + i}]`;
    const address = v.getBigUint64(at + R_ADDRESS, true);
    const pageCount = v.getUint32(at + R_PAGES, true);
    if (v.getUint32(at + R_RESERVED, true) !== 0) return fail("reserved", `${field}.reserved`);
    if (address % BigInt(FFA_PAGE_SIZE) !== 0n) return fail("misaligned", `${field}.address`);
    if (pageCount === 0) return fail("count", `${field}.pageCount`);
    if (address + BigInt(pageCount) * BigInt(FFA_PAGE_SIZE) > U64_LIMIT) return fail("overflow", field);
    ranges.push({ address, pageCount });
  }
  return { ok: true, value: ranges };
}

/**
 * The checks that need every constituent of a transaction: their pages add up to the composite's total
 * and no two overlap. decodeMemTransaction makes them; a relayer that receives a descriptor in fragments
 * makes them once the last constituent arrived.
 */
export function checkRanges(ranges: readonly FfaMemRange[], totalPages: number): FfaDecoded<void> {
  let sum = 0;
  for (const r of ranges) sum += r.pageCount;
  if (sum !== totalPages) return fail("page-sum", "composite.totalPageCount");
  const overlap = firstOverlap(ranges);
  if (overlap !== -1) return fail("overlap", `ranges[${overlap}]`);
  return { ok: true, value: undefined };
}

/** The index of a range that overlaps another one, or -1. */
export function firstOverlap(ranges: readonly FfaMemRange[]): number {
  const order = ranges.map((_, i) => i).sort((a, b) => (ranges[a]!.address < ranges[b]!.address ? -1 : ranges[a]!.address > ranges[b]!.address ? 1 : 0));
  for (let k = 1; k < order.length; k++) {
    const prev = ranges[order[k - 1]!]!;
    const cur = ranges[order[k]!]!;
    if (prev.address + BigInt(prev.pageCount) * BigInt(FFA_PAGE_SIZE) > cur.address) return order[k]!;
  }
  return -1;
}

/**
 * Decodes a memory transaction descriptor of `layout` from `bytes`, which must be the caller's own copy
 * of exactly the descriptor's total length. Checks structure, bounds, alignment, counts and MBZ fields;
 * the meaning (who may send, which attributes a relayer accepts) is the caller's to check.
 */
export function decodeMemTransaction(
  bytes: Uint8Array,
  layout: FfaDescriptorLayout,
  opts: FfaDecodeOptions,
): FfaDecoded<FfaMemTransaction> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const head = decodeHead(v, layout, opts);
  if (!head.ok) return head;
  const { h, receivers, composite, accessEnd } = head.value;
  let ranges: FfaMemRange[] = [];
  let end = accessEnd;
  if (composite === 0) {
    if (opts.composite === "required") return fail("offset", "receivers[0].compositeOffset");
  } else if (opts.composite === "none") {
    return fail("offset", "receivers[0].compositeOffset");
  } else {
    const r = decodeRanges(v, composite, accessEnd, opts);
    if (!r.ok) return r;
    ranges = r.value.ranges;
    end = r.value.end;
  }
  if (end !== v.byteLength && opts.allowTrailing !== true) return fail("length", "totalLength");
  const { sender, attributes, flags, handle, tag } = h;
  return { ok: true, value: { sender, attributes, flags, handle, tag, receivers, ranges } };
}

interface Head {
  h: Header;
  receivers: FfaMemAccess[];
  /** The receivers' common composite offset (0: none). */
  composite: number;
  accessEnd: number;
}

/** The header and the endpoint memory access descriptors. */
function decodeHead(v: DataView, layout: FfaDescriptorLayout, opts: Pick<FfaDecodeOptions, "allowNs" | "maxReceivers">): FfaDecoded<Head> {
  const h = decodeHeader(v, layout, opts);
  if (!h.ok) return h;
  const { count, accessOffset, accessSize } = h.value;
  if (count === 0) return fail("count", "receiverCount");
  if (count > (opts.maxReceivers ?? FFA_DECODE_MAX_RECEIVERS)) return fail("limit", "receiverCount");
  const accessEnd = accessOffset + count * accessSize;
  if (accessEnd > v.byteLength) return fail("truncated", "receivers");
  const receivers: FfaMemAccess[] = [];
  let composite = -1;
  for (let i = 0; i < count; i++) {
    const a = decodeAccess(v, accessOffset + i * accessSize, i, layout);
    if (!a.ok) return a;
    const { composite: off, ...access } = a.value;
    // All receivers of one transaction describe the same region (Hafnium checks the same).
    if (composite !== -1 && off !== composite) return fail("offset", `receivers[${i}].compositeOffset`);
    composite = off;
    if (receivers.some((r) => r.receiver === access.receiver)) return fail("duplicate", `receivers[${i}].receiver`);
    receivers.push(access);
  }
  return { ok: true, value: { h: h.value, receivers, composite, accessEnd } };
}

/** Bytes a descriptor of `layout` with these counts takes (composite and ranges only when ranges > 0). */
export function memTransactionSize(layout: FfaDescriptorLayout, receivers: number, ranges: number): number {
  const access = FFA_MEM_HEADER_SIZE[layout] + receivers * FFA_MEM_ACCESS_SIZE[layout];
  return ranges === 0 ? access : access + FFA_COMPOSITE_SIZE + ranges * FFA_CONSTITUENT_SIZE;
}

/**
 * Encodes a transaction in `layout`: header, access array right after it, then (when there are ranges)
 * one composite that every receiver points at. The composite's total is the sum of the ranges.
 */
export function encodeMemTransaction(tx: FfaMemTransaction, layout: FfaDescriptorLayout): Uint8Array {
  const headerSize = FFA_MEM_HEADER_SIZE[layout];
  const accessSize = FFA_MEM_ACCESS_SIZE[layout];
  const out = new Uint8Array(memTransactionSize(layout, tx.receivers.length, tx.ranges.length));
  const v = new DataView(out.buffer);
  v.setUint16(H_SENDER, tx.sender, true);
  if (layout === "v1.0") v.setUint8(H_ATTRIBUTES, tx.attributes);
  else {
    v.setUint16(H_ATTRIBUTES, tx.attributes, true);
    v.setUint32(H_ACCESS_SIZE, accessSize, true);
    v.setUint32(H_ACCESS_OFFSET, headerSize, true);
  }
  v.setUint32(H_FLAGS, tx.flags, true);
  v.setBigUint64(H_HANDLE, tx.handle, true);
  v.setBigUint64(H_TAG, tx.tag, true);
  v.setUint32(H_COUNT, tx.receivers.length, true);
  const compositeOffset = tx.ranges.length === 0 ? 0 : headerSize + tx.receivers.length * accessSize;
  tx.receivers.forEach((r, i) => {
    const at = headerSize + i * accessSize;
    v.setUint16(at + A_RECEIVER, r.receiver, true);
    v.setUint8(at + A_PERMISSIONS, r.permissions);
    v.setUint8(at + A_FLAGS, r.flags);
    v.setUint32(at + A_COMPOSITE, compositeOffset, true);
    if (layout === "v1.2" && r.impdef) {
      v.setBigUint64(at + A_IMPDEF_V1_2, r.impdef[0], true);
      v.setBigUint64(at + A_IMPDEF_V1_2 + 8, r.impdef[1], true);
    }
  });
  if (tx.ranges.length > 0) {
    v.setUint32(compositeOffset + C_TOTAL_PAGES, tx.ranges.reduce((s, r) => s + r.pageCount, 0), true);
    v.setUint32(compositeOffset + C_RANGE_COUNT, tx.ranges.length, true);
    tx.ranges.forEach((r, i) => {
      const at = compositeOffset + FFA_COMPOSITE_SIZE + i * FFA_CONSTITUENT_SIZE;
      v.setBigUint64(at + R_ADDRESS, r.address, true);
      v.setUint32(at + R_PAGES, r.pageCount, true);
    });
  }
  return out;
}

/** Total 4 KiB pages of a range list. */
export function totalPages(ranges: readonly FfaMemRange[]): number {
  return ranges.reduce((s, r) => s + r.pageCount, 0);
}

// ---------------------------------------------------------------------------------------------------
// Descriptors in fragments (DEN0077, FFA_MEM_FRAG_TX/RX): the first fragment holds the header, the access
// descriptors and the composite (with the whole transaction's counts) and some constituents; every later
// fragment holds whole constituents. A relayer that forwards fragment by fragment checks each as it comes
// and the whole (checkRanges) once the last arrived.

export interface FfaFirstFragment {
  /** Header and receivers, strictly decoded; `ranges` are the constituents this fragment carries. */
  readonly transaction: FfaMemTransaction;
  readonly compositeOffset: number;
  readonly constituentsOffset: number;
  /** The whole descriptor's constituent count and total pages, as its composite states them. */
  readonly rangeCount: number;
  readonly totalPages: number;
}

/**
 * Decodes the first fragment (the caller's copy) of a descriptor of `totalLength` bytes. The composite
 * and its counts must be inside it, the counts must make exactly `totalLength` bytes, and the fragment
 * ends on a constituent boundary. A whole descriptor (fragment length = total) decodes too.
 */
export function decodeFirstFragment(
  fragment: Uint8Array,
  totalLength: number,
  layout: FfaDescriptorLayout,
  opts: Pick<FfaDecodeOptions, "allowNs" | "maxReceivers" | "maxRanges"> = {},
): FfaDecoded<FfaFirstFragment> {
  const v = new DataView(fragment.buffer, fragment.byteOffset, fragment.byteLength);
  if (fragment.byteLength > totalLength) return fail("length", "fragmentLength");
  const head = decodeHead(v, layout, opts);
  if (!head.ok) return head;
  const { h, receivers, composite, accessEnd } = head.value;
  if (composite === 0 || composite < accessEnd) return fail("offset", "receivers[0].compositeOffset");
  if (composite % FFA_COMPOSITE_ALIGN !== 0) return fail("misaligned", "compositeOffset");
  if (composite + FFA_COMPOSITE_SIZE > v.byteLength) return fail("truncated", "composite");
  const totalPages = v.getUint32(composite + C_TOTAL_PAGES, true);
  const rangeCount = v.getUint32(composite + C_RANGE_COUNT, true);
  if (v.getBigUint64(composite + C_RESERVED, true) !== 0n) return fail("reserved", "composite.reserved");
  if (rangeCount === 0) return fail("count", "composite.rangeCount");
  if (opts.maxRanges !== undefined && rangeCount > opts.maxRanges) return fail("limit", "composite.rangeCount");
  const constituentsOffset = composite + FFA_COMPOSITE_SIZE;
  if (constituentsOffset + rangeCount * FFA_CONSTITUENT_SIZE !== totalLength) return fail("length", "totalLength");
  const present = v.byteLength - constituentsOffset;
  if (present % FFA_CONSTITUENT_SIZE !== 0) return fail("length", "fragmentLength");
  const ranges = decodeConstituentsAt(v, constituentsOffset, present / FFA_CONSTITUENT_SIZE, 0);
  if (!ranges.ok) return ranges;
  const overlap = firstOverlap(ranges.value);
  if (overlap !== -1) return fail("overlap", `ranges[${overlap}]`);
  const { sender, attributes, flags, handle, tag } = h;
  const transaction = { sender, attributes, flags, handle, tag, receivers, ranges: ranges.value };
  return { ok: true, value: { transaction, compositeOffset: composite, constituentsOffset, rangeCount, totalPages } };
}

/**
 * The constituents of a later fragment (the caller's copy): at least one, whole 16-byte entries, each
 * checked; `index` is the first one's position in the whole, for field names.
 */
export function decodeConstituents(fragment: Uint8Array, index = 0): FfaDecoded<FfaMemRange[]> {
  if (fragment.byteLength === 0 || fragment.byteLength % FFA_CONSTITUENT_SIZE !== 0) return fail("length", "fragmentLength");
  const v = new DataView(fragment.buffer, fragment.byteOffset, fragment.byteLength);
  return decodeConstituentsAt(v, 0, fragment.byteLength / FFA_CONSTITUENT_SIZE, index);
}

/** Constituents as a later fragment carries them. */
export function encodeConstituents(ranges: readonly FfaMemRange[]): Uint8Array {
  const out = new Uint8Array(ranges.length * FFA_CONSTITUENT_SIZE);
  const v = new DataView(out.buffer);
  ranges.forEach((r, i) => {
    v.setBigUint64(i * FFA_CONSTITUENT_SIZE + R_ADDRESS, r.address, true);
    v.setUint32(i * FFA_CONSTITUENT_SIZE + R_PAGES, r.pageCount, true);
  });
  return out;
}

/**
 * A first fragment in `layout`: `tx` with the constituents it carries, and a composite stating the whole
 * transaction's `rangeCount` and `totalPages` (encodeMemTransaction's layout: the whole is
 * memTransactionSize(layout, receivers, rangeCount) bytes).
 */
export function encodeFirstFragment(tx: FfaMemTransaction, layout: FfaDescriptorLayout, rangeCount: number, totalPages: number): Uint8Array {
  if (tx.ranges.length === 0 || tx.ranges.length > rangeCount) throw new RangeError("a first fragment carries 1..rangeCount constituents");
  const out = encodeMemTransaction(tx, layout);
  const v = new DataView(out.buffer);
  const composite = FFA_MEM_HEADER_SIZE[layout] + tx.receivers.length * FFA_MEM_ACCESS_SIZE[layout];
  v.setUint32(composite + C_TOTAL_PAGES, totalPages, true);
  v.setUint32(composite + C_RANGE_COUNT, rangeCount, true);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// FFA_MEM_RELINQUISH descriptor (DEN0077, "Descriptor to relinquish a memory region"): handle u64 @0,
// flags u32 @8, endpoint count u32 @12, endpoint IDs u16 from @16.

export interface FfaRelinquish {
  readonly handle: bigint;
  readonly flags: number;
  readonly endpoints: readonly number[];
}

const L_HANDLE = 0, L_FLAGS = 8, L_COUNT = 12, L_ENDPOINTS = 16;

export function encodeRelinquish(r: FfaRelinquish): Uint8Array {
  const out = new Uint8Array(L_ENDPOINTS + 2 * r.endpoints.length);
  const v = new DataView(out.buffer);
  v.setBigUint64(L_HANDLE, r.handle, true);
  v.setUint32(L_FLAGS, r.flags, true);
  v.setUint32(L_COUNT, r.endpoints.length, true);
  r.endpoints.forEach((id, i) => v.setUint16(L_ENDPOINTS + 2 * i, id, true));
  return out;
}

export function decodeRelinquish(bytes: Uint8Array, maxEndpoints = FFA_DECODE_MAX_RECEIVERS): FfaDecoded<FfaRelinquish> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.byteLength < L_ENDPOINTS) return fail("truncated", "header");
  const handle = v.getBigUint64(L_HANDLE, true);
  const flags = v.getUint32(L_FLAGS, true);
  const count = v.getUint32(L_COUNT, true);
  if (count === 0) return fail("count", "endpointCount");
  if (count > maxEndpoints) return fail("limit", "endpointCount");
  if (L_ENDPOINTS + 2 * count > v.byteLength) return fail("truncated", "endpoints");
  const endpoints: number[] = [];
  for (let i = 0; i < count; i++) endpoints.push(v.getUint16(L_ENDPOINTS + 2 * i, true));
  return { ok: true, value: { handle, flags, endpoints } };
}
