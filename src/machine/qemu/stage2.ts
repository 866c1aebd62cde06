/**
 * The stage-2 translation tables of a QEMU VM (Arm ARM DDI 0487 D8, VMSAv8-64 stage 2): built here, written
 * into the shim's region before QEMU starts, loaded by the shim into VTTBR_EL2 on every CPU. They map the
 * guest map (guest-map.ts) and nothing else: every other IPA, the shim's region included, faults to EL2.
 *
 * Shape: 4 KiB granule, 34-bit IPA (VTCR_EL2.T0SZ = 30: 16 GiB, room for virt's RAM base and 4 GiB),
 * walks starting at level 2 (SL0 = 0) in sixteen concatenated level-2 tables (D8.2.6), so a RAM access
 * needs one stage-2 descriptor: RAM in 2 MiB level-2 blocks (Normal, write-back, inner shareable), devices
 * in 4 KiB level-3 pages (Device-nGnRE, never executable), a firmware guest's flash in 2 MiB blocks (Normal
 * non-cacheable, executable). Fewer levels matter under QEMU's TCG, which
 * walks stage 2 again for every stage-1 descriptor of a TLB miss. Pure: no I/O.
 */
import type { Region } from "./guest-map.js";

const PAGE = 0x1000n;
const BLOCK_L2 = 0x20_0000n;
export const IPA_BITS = 34;
/** The first table: level 2, 2^(34 - 21) entries (sixteen 4 KiB tables, aligned to their 64 KiB). */
const FIRST_ENTRIES = 1 << (IPA_BITS - 21);
const OA_MASK = ((1n << 48n) - 1n) & ~(PAGE - 1n);

/** Descriptor bits (D8.3). */
const VALID = 1n;
const TABLE_OR_PAGE = 2n;
const AF = 1n << 10n;
const S2AP_RW = 3n << 6n;
const SH_INNER = 3n << 8n;
/** MemAttr[5:2] with HCR_EL2.FWB = 0: Normal outer and inner write-back (0b1111), Device-nGnRE (0b0001). */
const MEMATTR_NORMAL_WB = 0xfn << 2n;
const MEMATTR_DEVICE_NGNRE = 0x1n << 2n;
/** Normal outer and inner non-cacheable (0b0101): virt's flash, memory-like in read-array mode, registers in command mode. */
const MEMATTR_NORMAL_NC = 0x5n << 2n;
/** XN[1] (bit 54): no execution at EL1 or EL0. */
const XN = 1n << 54n;

const ATTRS = {
  ram: MEMATTR_NORMAL_WB | S2AP_RW | SH_INNER | AF,
  device: MEMATTR_DEVICE_NGNRE | S2AP_RW | AF | XN,
  /** Executable: firmware runs from its flash until it has relocated itself into RAM. */
  flash: MEMATTR_NORMAL_NC | S2AP_RW | AF,
} as const;

/**
 * VTCR_EL2 (D17.2.190): T0SZ = 30, SL0 = 0 (start at level 2), IRGN0 = ORGN0 = 1 (write-back
 * write-allocate walks), SH0 = 3 (inner shareable), TG0 = 0 (4 KiB), PS = 2 (40-bit output), RES1 bit 31.
 */
export const VTCR = BigInt(64 - IPA_BITS) | (0n << 6n) | (1n << 8n) | (1n << 10n) | (3n << 12n) | (0n << 14n) | (2n << 16n) | (1n << 31n);
export const VMID = 1n;

export interface Stage2 {
  /** The tables, laid out from `base`: the level-1 table first. */
  readonly tables: Uint8Array;
  readonly vttbr: bigint;
  readonly vtcr: bigint;
}

export type Stage2Result = { ok: true; stage2: Stage2 } | { ok: false; reason: string };

/** Builds the tables for `regions`, to live at machine PA `base` in at most `room` bytes. */
export function buildStage2(regions: readonly Region[], base: bigint, room: number): Stage2Result {
  if (base % (BigInt(FIRST_ENTRIES) * 8n) !== 0n) return { ok: false, reason: `the stage-2 tables at 0x${base.toString(16)} are not aligned to their first table's ${FIRST_ENTRIES * 8} bytes` };
  // Page 0..15: the concatenated level-2 table; level-3 tables after it.
  const pages: BigUint64Array[] = [new BigUint64Array(FIRST_ENTRIES)];
  const firstPages = (FIRST_ENTRIES * 8) / Number(PAGE);
  const maxPages = Math.floor(room / Number(PAGE));
  const tableAt = (index: number) => base + BigInt(firstPages + index - 1) * PAGE;
  /** The level-3 table behind entry `i` of the level-2 table, created when missing. */
  const next = (table: BigUint64Array, i: number): BigUint64Array | string => {
    const d = table[i]!;
    if ((d & 3n) === 3n) return pages[Number(((d & OA_MASK) - base) / PAGE) - firstPages + 1]!;
    if (d !== 0n) return "an address is mapped twice";
    if (firstPages + pages.length - 1 >= maxPages) return `the stage-2 tables need more than ${room} bytes`;
    pages.push(new BigUint64Array(512));
    table[i] = tableAt(pages.length - 1) | VALID | TABLE_OR_PAGE;
    return pages[pages.length - 1]!;
  };
  const l2 = pages[0]!;
  if (room < FIRST_ENTRIES * 8) return { ok: false, reason: `the stage-2 tables need more than ${room} bytes` };
  for (const r of regions) {
    const end = r.ipa + r.size;
    if (r.size <= 0n || end > 1n << BigInt(IPA_BITS) || r.pa + r.size > 1n << 40n) return { ok: false, reason: `${r.name}: 0x${r.ipa.toString(16)}+0x${r.size.toString(16)} is outside a ${IPA_BITS}-bit IPA or 40-bit PA space` };
    const granule = r.kind === "device" ? PAGE : BLOCK_L2;
    if (r.ipa % granule !== 0n || r.pa % granule !== 0n || r.size % granule !== 0n) return { ok: false, reason: `${r.name}: not aligned to 0x${granule.toString(16)}` };
    for (let off = 0n; off < r.size; off += granule) {
      const ipa = r.ipa + off;
      const i2 = Number(ipa >> 21n);
      if (r.kind !== "device") {
        if (l2[i2] !== 0n) return { ok: false, reason: `${r.name}: an address is mapped twice` };
        l2[i2] = (r.pa + off) | ATTRS[r.kind] | VALID;
        continue;
      }
      const l3 = next(l2, i2);
      if (typeof l3 === "string") return { ok: false, reason: `${r.name}: ${l3}` };
      const i3 = Number((ipa >> 12n) & 511n);
      if (l3[i3] !== 0n) return { ok: false, reason: `${r.name}: an address is mapped twice` };
      l3[i3] = (r.pa + off) | ATTRS.device | VALID | TABLE_OR_PAGE;
    }
  }
  const tables = new Uint8Array((firstPages + pages.length - 1) * Number(PAGE));
  const view = new DataView(tables.buffer);
  pages.forEach((p, n) => p.forEach((d, i) => view.setBigUint64((n === 0 ? 0 : firstPages + n - 1) * Number(PAGE) + 8 * i, d, true)));
  return { ok: true, stage2: { tables, vttbr: base | (VMID << 48n), vtcr: VTCR } };
}

export interface Translation {
  readonly pa: bigint;
  readonly kind: "ram" | "device" | "flash";
  readonly executable: boolean;
}

/** Walks the tables as the MMU would (for tests and `explain`-style checks): the PA for `ipa`, or null (a fault). */
export function translate(s: Stage2, base: bigint, ipa: bigint): Translation | null {
  if (ipa < 0n || ipa >= 1n << BigInt(IPA_BITS)) return null;
  const view = new DataView(s.tables.buffer, s.tables.byteOffset, s.tables.byteLength);
  const read = (tablePa: bigint, index: bigint): bigint | null => {
    const off = Number(tablePa - base) + 8 * Number(index);
    if (off < 0 || off + 8 > s.tables.byteLength) return null;
    return view.getBigUint64(off, true);
  };
  let table = s.vttbr & OA_MASK;
  for (const level of [2, 3]) {
    const shift = BigInt(39 - 9 * level);
    // The first (level-2) table is the concatenated one: all the IPA's bits above 21 index it.
    const d = read(table, level === 2 ? ipa >> shift : (ipa >> shift) & 511n);
    if (d === null || (d & VALID) === 0n) return null;
    const isTable = (d & TABLE_OR_PAGE) !== 0n;
    if (level < 3 && isTable) {
      table = d & OA_MASK;
      continue;
    }
    if (level === 3 && !isTable) return null; // level-3 descriptors need 0b11
    if ((d & AF) === 0n) return null;
    const size = 1n << shift;
    const attr = (d >> 2n) & 0xfn;
    const kind = attr === 0xfn ? "ram" : attr === 0x5n ? "flash" : "device";
    return { pa: (d & OA_MASK & ~(size - 1n)) | (ipa & (size - 1n)), kind, executable: (d & XN) === 0n };
  }
  return null;
}
