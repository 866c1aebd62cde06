/**
 * Where the constituents of a memory transaction descriptor start, from its first fragment alone
 * (DEN0077 v1.2 §10.11; the same layouts as src/smccc/ffa/descriptors.ts). The shared codec decodes whole
 * descriptors; a fragmented one is forwarded to the SPMC fragment by fragment (its handle, which Linux
 * keeps from the first FFA_MEM_FRAG_RX, is the SPMC's), so the mediator must read the composite's position
 * and the constituents of each fragment as they arrive. Only these few slots are read here; everything else
 * goes through the codec. TEMPORARY: to move into src/smccc/ffa/descriptors.ts (asked of its owner).
 */
import { FFA_PAGE_SIZE } from "../../smccc/ffa/abi.js";
import { FFA_COMPOSITE_SIZE, FFA_CONSTITUENT_SIZE, FFA_MEM_HEADER_SIZE, type FfaDescriptorLayout, type FfaMemRange } from "../../smccc/ffa/descriptors.js";

/** v1.1+ header: offset of the access descriptor array (u32 @32); access descriptor: composite offset (u32 @4). */
const H_ACCESS_OFFSET = 32, A_COMPOSITE = 4;
/** Composite: total pages (u32 @0), range count (u32 @4). Constituent: address (u64 @0), pages (u32 @8), reserved (u32 @12). */
const C_TOTAL_PAGES = 0, C_RANGE_COUNT = 4;
const R_ADDRESS = 0, R_PAGES = 8, R_RESERVED = 12;

export interface DescriptorHead {
  /** Offset of the composite descriptor, and of its first constituent. */
  readonly composite: number;
  readonly constituents: number;
  readonly rangeCount: number;
  readonly totalPages: number;
}

/** The composite's position and counts, read from the mediator's copy of a first fragment; null when it is not inside it. */
export function descriptorHead(bytes: Uint8Array, length: number, layout: FfaDescriptorLayout): DescriptorHead | null {
  const v = new DataView(bytes.buffer, bytes.byteOffset, length);
  const header = FFA_MEM_HEADER_SIZE[layout];
  if (length < header) return null;
  const access = layout === "v1.0" ? header : v.getUint32(H_ACCESS_OFFSET, true);
  if (access < header || access + A_COMPOSITE + 4 > length) return null;
  const composite = v.getUint32(access + A_COMPOSITE, true);
  if (composite === 0 || composite % 8 !== 0 || composite + FFA_COMPOSITE_SIZE > length) return null;
  return { composite, constituents: composite + FFA_COMPOSITE_SIZE, rangeCount: v.getUint32(composite + C_RANGE_COUNT, true), totalPages: v.getUint32(composite + C_TOTAL_PAGES, true) };
}

/**
 * A copy of a first fragment made decodable by the shared codec: its composite counts only the
 * constituents the fragment holds (the rest are checked as their fragments arrive).
 */
export function firstFragmentAsWhole(bytes: Uint8Array, length: number, head: DescriptorHead): Uint8Array {
  const copy = bytes.slice(0, length);
  const v = new DataView(copy.buffer);
  const ranges = readConstituents(copy, head.constituents, length);
  v.setUint32(head.composite + C_RANGE_COUNT, ranges.length, true);
  v.setUint32(head.composite + C_TOTAL_PAGES, ranges.reduce((s, r) => s + r.pageCount, 0), true);
  return copy;
}

/** The constituents in bytes [from, to) of the mediator's copy (whole 16-byte entries), unchecked (constituentWellFormed checks one). */
export function readConstituents(bytes: Uint8Array, from: number, to: number): FfaMemRange[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: FfaMemRange[] = [];
  for (let at = from; at + FFA_CONSTITUENT_SIZE <= to; at += FFA_CONSTITUENT_SIZE) {
    out.push({ address: v.getBigUint64(at + R_ADDRESS, true), pageCount: v.getUint32(at + R_PAGES, true) });
  }
  return out;
}

/** Whether the constituent at `at` has its reserved word zero, is page aligned, has pages and does not wrap. */
export function constituentWellFormed(bytes: Uint8Array, at: number): boolean {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const address = v.getBigUint64(at + R_ADDRESS, true), pages = v.getUint32(at + R_PAGES, true);
  return v.getUint32(at + R_RESERVED, true) === 0 && address % BigInt(FFA_PAGE_SIZE) === 0n && pages > 0 && address + BigInt(pages) * BigInt(FFA_PAGE_SIZE) <= 1n << 64n;
}

/** Writes constituents (translated addresses) at `at` of `out`. */
export function writeConstituents(out: Uint8Array, at: number, ranges: readonly FfaMemRange[]): void {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  ranges.forEach((r, i) => {
    v.setBigUint64(at + i * FFA_CONSTITUENT_SIZE + R_ADDRESS, r.address, true);
    v.setUint32(at + i * FFA_CONSTITUENT_SIZE + R_PAGES, r.pageCount, true);
    v.setUint32(at + i * FFA_CONSTITUENT_SIZE + R_RESERVED, 0, true);
  });
}

/** Sets the composite's range count and total pages of an encoded descriptor (the whole transaction's, in a first fragment). */
export function setCompositeCounts(out: Uint8Array, composite: number, rangeCount: number, totalPages: number): void {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(composite + C_RANGE_COUNT, rangeCount, true);
  v.setUint32(composite + C_TOTAL_PAGES, totalPages, true);
}
