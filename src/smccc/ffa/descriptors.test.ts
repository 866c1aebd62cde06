import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FFA_MEM_ATTR, FFA_MEM_ATTR_NORMAL_WB_IS, FFA_MEM_PERM, FFA_RET } from "./abi.js";
import {
  checkRanges,
  decodeConstituents,
  decodeFirstFragment,
  decodeMemTransaction,
  decodeRelinquish,
  encodeConstituents,
  encodeFirstFragment,
  encodeMemTransaction,
  encodeRelinquish,
  memTransactionSize,
  type FfaDescriptorLayout,
  type FfaDecodeOptions,
  type FfaMemTransaction,
} from "./descriptors.js";

const SEND: FfaDecodeOptions = { composite: "required" };
const RW = FFA_MEM_PERM.DATA_RW | FFA_MEM_PERM.INSTR_NX;
const LAYOUTS: FfaDescriptorLayout[] = ["v1.0", "v1.1", "v1.2"];

function tx(over: Partial<FfaMemTransaction> = {}): FfaMemTransaction {
  return {
    sender: 1,
    attributes: FFA_MEM_ATTR_NORMAL_WB_IS,
    flags: 0,
    handle: 0n,
    tag: 0n,
    receivers: [{ receiver: 0x8001, permissions: RW, flags: 0 }],
    ranges: [
      { address: 0x4000_0000n, pageCount: 2 },
      { address: 0x4001_0000n, pageCount: 1 },
    ],
    ...over,
  };
}

/** Encodes, lets `poke` damage the bytes, decodes, and expects the refusal's kind and field. */
function refuse(layout: FfaDescriptorLayout, poke: (v: DataView, b: Uint8Array) => Uint8Array | void, kind: string, field: RegExp, t = tx(), opts = SEND) {
  const b = encodeMemTransaction(t, layout);
  const damaged = poke(new DataView(b.buffer), b) ?? b;
  const r = decodeMemTransaction(damaged, layout, opts);
  expect(r.ok).toBe(false);
  if (!r.ok) {
    expect(r.error.kind).toBe(kind);
    expect(r.error.field).toMatch(field);
    expect(r.error.ffaError).toBe(kind === "limit" ? FFA_RET.NO_MEMORY : FFA_RET.INVALID_PARAMETERS);
  }
}

describe("memory transaction descriptor layouts", () => {
  it("v1.0: 32-byte header, 16-byte access descriptors, composite after them", () => {
    const b = encodeMemTransaction(tx({ ranges: [{ address: 0x4000_0000n, pageCount: 3 }] }), "v1.0");
    const v = new DataView(b.buffer);
    expect(b.length).toBe(32 + 16 + 16 + 16);
    expect(v.getUint16(0, true)).toBe(1);
    expect(v.getUint8(2)).toBe(0x2f);
    expect(v.getUint32(28, true)).toBe(1);
    expect(v.getUint16(32, true)).toBe(0x8001);
    expect(v.getUint32(36, true)).toBe(48);
    expect(v.getUint32(48, true)).toBe(3);
    expect(v.getBigUint64(64, true)).toBe(0x4000_0000n);
  });

  it("v1.1: 48-byte header with access size 16 and offset 48", () => {
    const v = new DataView(encodeMemTransaction(tx(), "v1.1").buffer);
    expect(v.getUint16(2, true)).toBe(0x2f);
    expect(v.getUint32(24, true)).toBe(16);
    expect(v.getUint32(28, true)).toBe(1);
    expect(v.getUint32(32, true)).toBe(48);
    expect(v.getUint32(48 + 4, true)).toBe(64);
  });

  it("v1.2: 32-byte access descriptors with 16 impdef bytes at 8", () => {
    const t = tx({ receivers: [{ receiver: 0x8001, permissions: RW, flags: 0, impdef: [7n, 9n] }] });
    const b = encodeMemTransaction(t, "v1.2");
    const v = new DataView(b.buffer);
    expect(v.getUint32(24, true)).toBe(32);
    expect(v.getBigUint64(48 + 8, true)).toBe(7n);
    expect(v.getUint32(48 + 4, true)).toBe(80);
    expect(b.length).toBe(memTransactionSize("v1.2", 1, 2));
    const d = decodeMemTransaction(b, "v1.2", SEND);
    expect(d.ok && d.value.receivers[0]!.impdef).toEqual([7n, 9n]);
  });

  it.each(LAYOUTS)("%s round-trips every well-formed transaction", (layout) => {
    const access = fc.record({
      receiver: fc.integer({ min: 0, max: 0xffff }),
      permissions: fc.constantFrom(0, 1, 2, 4, 5, 6, 8, 9, 10),
      flags: fc.constantFrom(0, 1),
    });
    const arb = fc.record({
      sender: fc.integer({ min: 0, max: 0xffff }),
      attributes: fc.integer({ min: 0, max: 0x3f }),
      flags: fc.nat().map((x) => x >>> 0),
      handle: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      tag: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      receivers: fc.uniqueArray(access, { minLength: 1, maxLength: 4, selector: (a) => a.receiver }),
      pages: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 6 }),
    });
    fc.assert(
      fc.property(arb, ({ pages, receivers, ...rest }) => {
        let next = 0x8000_0000n;
        const ranges = pages.map((n) => {
          const r = { address: next, pageCount: n };
          next += BigInt(n + 1) * 4096n;
          return r;
        });
        const t: FfaMemTransaction = {
          ...rest,
          receivers: receivers.map((r) => (layout === "v1.2" ? { ...r, impdef: [0n, 0n] as const } : r)),
          ranges,
        };
        const d = decodeMemTransaction(encodeMemTransaction(t, layout), layout, SEND);
        expect(d).toEqual({ ok: true, value: t });
      }),
    );
  });

  it("a retrieve request without a composite decodes with composite 'none' or 'optional' only", () => {
    const b = encodeMemTransaction(tx({ ranges: [], handle: 5n }), "v1.1");
    expect(decodeMemTransaction(b, "v1.1", { composite: "none" }).ok).toBe(true);
    expect(decodeMemTransaction(b, "v1.1", { composite: "optional" }).ok).toBe(true);
    refuse("v1.1", () => b, "offset", /compositeOffset/);
    refuse("v1.1", () => {}, "offset", /compositeOffset/, tx(), { composite: "none" });
  });

  it("decoding never keeps a reference to the caller's bytes", () => {
    const b = encodeMemTransaction(tx(), "v1.1");
    const d = decodeMemTransaction(b, "v1.1", SEND);
    b.fill(0xff);
    expect(d.ok && d.value.ranges[0]!.address).toBe(0x4000_0000n);
  });
});

describe("every refusal of a memory transaction descriptor has its kind and INVALID_PARAMETERS", () => {
  it.each(LAYOUTS)("%s: truncated header, access array, composite and ranges", (layout) => {
    const h = layout === "v1.0" ? 32 : 48;
    const a = layout === "v1.2" ? 32 : 16;
    refuse(layout, (_v, b) => b.slice(0, h - 1), "truncated", /header/);
    refuse(layout, (_v, b) => b.slice(0, h + a - 1), "truncated", /receivers/);
    refuse(layout, (_v, b) => b.slice(0, h + a + 15), "truncated", /composite/);
    refuse(layout, (_v, b) => b.slice(0, b.length - 1), "truncated", /ranges/);
  });

  it.each(LAYOUTS)("%s: trailing bytes are refused unless allowed", (layout) => {
    const b = encodeMemTransaction(tx(), layout);
    const longer = new Uint8Array(b.length + 16);
    longer.set(b);
    refuse(layout, () => longer, "length", /totalLength/);
    expect(decodeMemTransaction(longer, layout, { ...SEND, allowTrailing: true }).ok).toBe(true);
  });

  it.each(LAYOUTS)("%s: receiver count 0, above the limit, duplicated receivers", (layout) => {
    refuse(layout, (v) => v.setUint32(28, 0, true), "count", /receiverCount/);
    refuse(layout, (v) => v.setUint32(28, 0xffff_ffff, true), "limit", /receiverCount/);
    const two = tx({ receivers: [{ receiver: 0x8001, permissions: RW, flags: 0 }, { receiver: 0x8002, permissions: RW, flags: 0 }] });
    refuse(layout, () => {}, "limit", /receiverCount/, two, { ...SEND, maxReceivers: 1 });
    const dup = tx({ receivers: [{ receiver: 0x8001, permissions: RW, flags: 0 }, { receiver: 0x8001, permissions: RW, flags: 0 }] });
    refuse(layout, () => {}, "duplicate", /receivers\[1\]/, dup);
  });

  it.each(LAYOUTS)("%s: MBZ bits of permissions, access flags and reserved fields; reserved encodings", (layout) => {
    const h = layout === "v1.0" ? 32 : 48;
    const a = layout === "v1.2" ? 32 : 16;
    refuse(layout, (v) => v.setUint8(h + 2, RW | 0x10), "reserved", /permissions/);
    refuse(layout, (v) => v.setUint8(h + 2, FFA_MEM_PERM.DATA_RESERVED), "reserved", /permissions/);
    refuse(layout, (v) => v.setUint8(h + 2, FFA_MEM_PERM.INSTR_RESERVED | 2), "reserved", /permissions/);
    refuse(layout, (v) => v.setUint8(h + 3, 2), "reserved", /flags/);
    refuse(layout, (v) => v.setUint8(h + (layout === "v1.2" ? 24 : 8), 1), "reserved", /receivers\[0\]\.reserved/);
    refuse(layout, (v) => v.setUint8(h + a + 8, 1), "reserved", /composite\.reserved/);
    refuse(layout, (v) => v.setUint8(h + a + 16 + 12, 1), "reserved", /ranges\[0\]\.reserved/);
  });

  it("v1.0: reserved header fields and attribute bits [7:6]", () => {
    refuse("v1.0", (v) => v.setUint8(3, 1), "reserved", /reserved@3/);
    refuse("v1.0", (v) => v.setUint32(24, 1, true), "reserved", /reserved@24/);
    refuse("v1.0", (v) => v.setUint8(2, 0x2f | 0x80), "reserved", /attributes/);
  });

  it.each(["v1.1", "v1.2"] as const)("%s: header size/offset/reserved fields and the NS bit", (layout) => {
    refuse(layout, (v) => v.setUint32(24, layout === "v1.2" ? 16 : 32, true), "size", /accessDescriptorSize/);
    refuse(layout, (v) => v.setUint32(32, 32, true), "offset", /accessDescriptorOffset/);
    refuse(layout, (v) => v.setUint32(32, 56, true), "misaligned", /accessDescriptorOffset/);
    refuse(layout, (v) => v.setUint32(32, 0x1000, true), "truncated", /receivers/);
    refuse(layout, (v) => v.setUint8(47, 1), "reserved", /reserved@47/);
    refuse(layout, (v) => v.setUint16(2, 0x2f | 0x100, true), "reserved", /attributes/);
    refuse(layout, (v) => v.setUint16(2, 0x2f | FFA_MEM_ATTR.NS, true), "reserved", /attributes\.NS/);
    const ns = encodeMemTransaction(tx({ attributes: 0x2f | FFA_MEM_ATTR.NS }), layout);
    expect(decodeMemTransaction(ns, layout, { ...SEND, allowNs: true }).ok).toBe(true);
  });

  it.each(LAYOUTS)("%s: composite offsets that overlap, misalign or disagree", (layout) => {
    const h = layout === "v1.0" ? 32 : 48;
    const a = layout === "v1.2" ? 32 : 16;
    refuse(layout, (v) => v.setUint32(h + 4, h, true), "offset", /compositeOffset/);
    refuse(layout, (v) => v.setUint32(h + 4, h + a + 4, true), "misaligned", /compositeOffset/);
    const two = tx({ receivers: [{ receiver: 0x8001, permissions: RW, flags: 0 }, { receiver: 0x8002, permissions: RW, flags: 0 }] });
    refuse(layout, (v) => v.setUint32(h + a + 4, h + 2 * a + 8, true), "offset", /receivers\[1\]\.compositeOffset/, two);
  });

  it.each(LAYOUTS)("%s: ranges: none, zero pages, misaligned, wrapping, overlapping, wrong total, too many", (layout) => {
    const c = (layout === "v1.0" ? 32 : 48) + (layout === "v1.2" ? 32 : 16);
    refuse(layout, (v) => v.setUint32(c + 4, 0, true), "count", /rangeCount/);
    refuse(layout, (v) => v.setUint32(c + 16 + 8, 0, true), "count", /ranges\[0\]\.pageCount/);
    refuse(layout, (v) => v.setBigUint64(c + 16, 0x4000_0800n, true), "misaligned", /ranges\[0\]\.address/);
    refuse(layout, (v) => {
      // Two pages from 2^64 - 4 KiB: past the end of the address space (the total stays consistent).
      v.setBigUint64(c + 32, 0xffff_ffff_ffff_f000n, true);
      v.setUint32(c + 40, 2, true);
      v.setUint32(c, 4, true);
    }, "overflow", /ranges\[1\]/);
    refuse(layout, (v) => v.setBigUint64(c + 32, 0x4000_1000n, true), "overlap", /ranges\[1\]/);
    refuse(layout, (v) => v.setUint32(c, 4, true), "page-sum", /totalPageCount/);
    refuse(layout, () => {}, "limit", /rangeCount/, tx(), { ...SEND, maxRanges: 1 });
  });

  it("one range ending exactly at 2^64 is accepted", () => {
    const t = tx({ ranges: [{ address: 0xffff_ffff_ffff_e000n, pageCount: 2 }] });
    expect(decodeMemTransaction(encodeMemTransaction(t, "v1.1"), "v1.1", SEND).ok).toBe(true);
  });

  it("random bytes never throw and never decode into an inconsistent transaction", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...LAYOUTS), (bytes, layout) => {
        const d = decodeMemTransaction(bytes, layout, { composite: "optional" });
        if (d.ok) {
          const total = d.value.ranges.reduce((s, r) => s + r.pageCount, 0);
          expect(d.value.ranges.every((r) => r.pageCount > 0 && r.address % 4096n === 0n)).toBe(true);
          expect(total).toBeGreaterThanOrEqual(d.value.ranges.length);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("relinquish descriptor", () => {
  it("round-trips and refuses bad counts", () => {
    const r = { handle: 0x1234n, flags: 1, endpoints: [0x8001, 0x8002] };
    const b = encodeRelinquish(r);
    expect(b.length).toBe(20);
    expect(decodeRelinquish(b)).toEqual({ ok: true, value: r });
    const v = new DataView(b.buffer);
    expect(decodeRelinquish(b.slice(0, 15))).toMatchObject({ ok: false, error: { kind: "truncated" } });
    expect(decodeRelinquish(b.slice(0, 19))).toMatchObject({ ok: false, error: { kind: "truncated" } });
    v.setUint32(12, 0, true);
    expect(decodeRelinquish(b)).toMatchObject({ ok: false, error: { kind: "count" } });
    v.setUint32(12, 100, true);
    expect(decodeRelinquish(b)).toMatchObject({ ok: false, error: { kind: "limit", ffaError: FFA_RET.NO_MEMORY } });
  });
});

describe("descriptors in fragments (FFA_MEM_FRAG_TX)", () => {
  const ranges = [
    { address: 0x4000_0000n, pageCount: 1 },
    { address: 0x4000_2000n, pageCount: 2 },
    { address: 0x4001_0000n, pageCount: 1 },
  ];

  it.each(LAYOUTS)("%s: a whole descriptor split anywhere on a constituent boundary decodes piece by piece to the whole", (layout) => {
    const whole = encodeMemTransaction(tx({ ranges }), layout);
    const first = whole.length - 2 * 16;
    const f = decodeFirstFragment(whole.slice(0, first), whole.length, layout);
    expect(f.ok).toBe(true);
    if (!f.ok) return;
    expect(f.value).toMatchObject({ rangeCount: 3, totalPages: 4, constituentsOffset: first - 16 });
    expect(f.value.transaction.ranges).toEqual(ranges.slice(0, 1));
    const rest = decodeConstituents(whole.slice(first), 1);
    expect(rest).toEqual({ ok: true, value: ranges.slice(1) });
    expect(checkRanges([...f.value.transaction.ranges, ...(rest.ok ? rest.value : [])], f.value.totalPages).ok).toBe(true);
    expect(decodeFirstFragment(whole, whole.length, layout).ok).toBe(true);
  });

  it.each(LAYOUTS)("%s: encodeFirstFragment + encodeConstituents make the bytes encodeMemTransaction makes", (layout) => {
    const whole = encodeMemTransaction(tx({ ranges }), layout);
    const first = encodeFirstFragment(tx({ ranges: ranges.slice(0, 2) }), layout, 3, 4);
    const joined = new Uint8Array([...first, ...encodeConstituents(ranges.slice(2))]);
    expect(joined).toEqual(whole);
    expect(() => encodeFirstFragment(tx({ ranges: [] }), layout, 3, 4)).toThrow(RangeError);
  });

  it("refuses first fragments whose composite is outside, whose counts do not make the total, or that split a constituent", () => {
    const whole = encodeMemTransaction(tx({ ranges }), "v1.1");
    const expectKind = (r: { ok: boolean; error?: { kind: string; field: string } }, kind: string, field: RegExp) => {
      expect(r.ok).toBe(false);
      expect(r.error!.kind).toBe(kind);
      expect(r.error!.field).toMatch(field);
    };
    expectKind(decodeFirstFragment(whole.slice(0, 70), whole.length, "v1.1"), "truncated", /composite/);
    expectKind(decodeFirstFragment(whole.slice(0, 88), whole.length, "v1.1"), "length", /fragmentLength/);
    expectKind(decodeFirstFragment(whole.slice(0, 96), whole.length + 16, "v1.1"), "length", /totalLength/);
    expectKind(decodeFirstFragment(whole, whole.length - 16, "v1.1"), "length", /fragmentLength/);
    expectKind(decodeFirstFragment(whole.slice(0, 96), whole.length, "v1.1", { maxRanges: 2 }), "limit", /rangeCount/);
    const bad = whole.slice(0, 96);
    new DataView(bad.buffer).setUint32(64 + 4, 0, true);
    expectKind(decodeFirstFragment(bad, whole.length, "v1.1"), "count", /rangeCount/);
    const noComposite = encodeMemTransaction(tx({ ranges: [] }), "v1.1");
    expectKind(decodeFirstFragment(noComposite, noComposite.length, "v1.1"), "offset", /compositeOffset/);
  });

  it("later fragments: whole entries, each checked, numbered in the whole; the whole's sum and overlaps at the end", () => {
    expect(decodeConstituents(new Uint8Array(0))).toMatchObject({ ok: false, error: { kind: "length" } });
    expect(decodeConstituents(new Uint8Array(24))).toMatchObject({ ok: false, error: { kind: "length" } });
    const b = encodeConstituents([{ address: 0x1000n, pageCount: 1 }, { address: 0x2800n, pageCount: 1 }]);
    expect(decodeConstituents(b, 5)).toMatchObject({ ok: false, error: { kind: "misaligned", field: "ranges[6].address" } });
    expect(checkRanges(ranges, 5)).toMatchObject({ ok: false, error: { kind: "page-sum" } });
    expect(checkRanges([...ranges, { address: 0x4000_3000n, pageCount: 1 }], 5)).toMatchObject({ ok: false, error: { kind: "overlap" } });
  });
});
