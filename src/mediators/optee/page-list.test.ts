import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HypervisorHeap } from "../../hypervisor/heap.js";
import { ArrayGuestMemory } from "../../machine/scripted/memory.js";
import { MemoryMap } from "../../policy/memory-map.js";
import { PAGE_SIZE, PAGELIST_ENTRIES, TEEC } from "../../smccc/optee/abi.js";
import type { MediatorHost } from "../mediator.js";
import { translatePageList } from "./page-list.js";

const IPA = 0x4000_0000n;
const RAM = 1n << 20n; // 256 pages
const PA_A = 0x1_0000_0000n;
const PA_B = 0x1_0020_0000n;
const SECURE = 0x0e00_0000n;

function setup(heapPages = 64) {
  const mem = { a: new ArrayGuestMemory(IPA, RAM), b: new ArrayGuestMemory(IPA, RAM) };
  const map = new MemoryMap([{ name: "tee-os", base: SECURE, size: 16n << 20n }], [
    { vm: "a", ipa: IPA, size: RAM, pa: PA_A },
    { vm: "b", ipa: IPA, size: RAM, pa: PA_B },
  ]);
  const heap = new HypervisorHeap(0x8_0000_0000n, heapPages);
  const reads: bigint[] = [];
  const host: MediatorHost = {
    secureCall: () => {
      throw new Error("a page list needs no secure call");
    },
    memory: (vm) => {
      const m = mem[vm as "a" | "b"];
      // Record what the translation reads of the guest, to check it reads each list page once.
      return m && { base: m.base, size: m.size, read: (ipa, n) => (reads.push(ipa), m.read(ipa, n)), write: (ipa, d) => m.write(ipa, d) };
    },
    ipaToPa: (vm, ipa, length) => map.ipaToPa(vm, ipa, length),
    heap,
    log: () => {},
  };
  /** A guest list page at `at` with `entries` and a next pointer. */
  const list = (at: bigint, entries: readonly bigint[], next = 0n) => {
    const page = new Uint8Array(PAGE_SIZE);
    const dv = new DataView(page.buffer);
    entries.forEach((e, i) => dv.setBigUint64(8 * i, e, true));
    dv.setBigUint64(8 * PAGELIST_ENTRIES, next, true);
    mem.a.write(at, page);
  };
  /** The translated list as OP-TEE reads it: entries and next pointer of the heap page at `pa`. */
  const translated = (pa: bigint) => {
    const dv = new DataView(heap.read(pa & ~0xfffn, PAGE_SIZE)!.buffer);
    return { entries: Array.from({ length: PAGELIST_ENTRIES }, (_, i) => dv.getBigUint64(8 * i, true)), next: dv.getBigUint64(8 * PAGELIST_ENTRIES, true) };
  };
  return { host, heap, list, translated, reads };
}

const page = (n: number) => IPA + BigInt(n * PAGE_SIZE);
const LIST = page(200);

describe("translatePageList (optee_msg.h OPTEE_MSG_ATTR_NONCONTIG)", () => {
  it("rewrites every entry from the VM's IPA to its platform PA in a list of the hypervisor's own, keeping the offset", () => {
    const { host, heap, list, translated } = setup();
    list(LIST, [page(3), page(1), page(7)]);
    const r = translatePageList(host, "a", LIST | 0x10n, BigInt(3 * PAGE_SIZE - 0x10), 100);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.pages).toBe(3);
    expect(r.listPages).toHaveLength(1);
    expect(heap.inUse).toBe(1);
    expect(r.bufPtr & 0xfffn).toBe(0x10n);
    expect(r.bufPtr & ~0xfffn).toBe(r.listPages[0]);
    const t = translated(r.bufPtr);
    expect(t.entries.slice(0, 3)).toEqual([PA_A + 0x3000n, PA_A + 0x1000n, PA_A + 0x7000n]);
    expect(t.entries.slice(3).every((e) => e === 0n)).toBe(true);
    expect(t.next).toBe(0n);
  });

  it("counts the pages the offset and size touch: 4 KiB at offset 1 needs two", () => {
    const { host, list } = setup();
    list(LIST, [page(1), page(2)]);
    const r = translatePageList(host, "a", LIST | 1n, 4096n, 100);
    expect(r.ok && r.pages).toBe(2);
  });

  it("chains list pages past 511 entries, the hypervisor's list linked by platform addresses", () => {
    const { host, list, translated } = setup();
    // 600 entries (a page may appear more than once: OP-TEE does not mind, neither does the mediator).
    const entries = Array.from({ length: 600 }, (_, i) => page(i % 100));
    list(LIST, entries.slice(0, 511), page(201));
    list(page(201), entries.slice(511));
    const r = translatePageList(host, "a", LIST, 600n * 4096n, 1000);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.listPages).toHaveLength(2);
    const first = translated(r.bufPtr);
    expect(first.next).toBe(r.listPages[1]);
    const second = translated(first.next);
    expect([...first.entries, ...second.entries.slice(0, 89)]).toEqual(entries.map((e) => e - IPA + PA_A));
    expect(second.next).toBe(0n);
  });

  it("does not follow the next pointer when the entries are complete (its value does not matter)", () => {
    const { host, list, reads } = setup();
    list(LIST, Array.from({ length: 511 }, () => page(1)), 0xdead_beefn);
    const r = translatePageList(host, "a", LIST, 511n * 4096n, 1000);
    expect(r.ok).toBe(true);
    expect(reads).toEqual([LIST]);
  });

  it("reads each guest list page exactly once (no double fetch a racing vCPU could exploit)", () => {
    const { host, list, reads } = setup();
    list(LIST, Array.from({ length: 511 }, () => page(1)), page(201));
    list(page(201), [page(2)]);
    expect(translatePageList(host, "a", LIST, 512n * 4096n, 1000).ok).toBe(true);
    expect(reads).toEqual([LIST, page(201)]);
  });

  describe("hostile lists are refused with TEEC_ERROR_BAD_PARAMETERS and leave no hypervisor page behind", () => {
    const full = Array.from({ length: 511 }, () => page(1));
    const cases: [string, (l: ReturnType<typeof setup>["list"]) => void, bigint, RegExp][] = [
      ["a list whose next pointer is itself", (l) => l(LIST, full, LIST), 600n, /loops back to 0x400c8000/],
      ["a two-page loop", (l) => (l(LIST, full, page(201)), l(page(201), full, LIST)), 1100n, /loops back/],
      ["a next pointer that is not page-aligned (an alias of the same page)", (l) => l(LIST, full, LIST + 8n), 600n, /not page-aligned/],
      ["a next pointer outside the VM's RAM", (l) => l(LIST, full, 0x5000_0000n), 600n, /list page 0x50000000 is outside/],
      ["a next pointer at the VM's own platform address", (l) => l(LIST, full, PA_A), 600n, /outside the VM's RAM/],
      ["an entry outside the VM's RAM", (l) => l(LIST, [page(1), 0x5000_0000n]), 2n, /page 0x50000000 is not a page of the VM's RAM/],
      ["an entry one page past the end of RAM", (l) => l(LIST, [IPA + RAM]), 1n, /not a page/],
      ["an entry below the VM's RAM", (l) => l(LIST, [IPA - 0x1000n]), 1n, /not a page/],
      ["an entry that is not page-aligned", (l) => l(LIST, [page(1) + 0x800n]), 1n, /not a page/],
      ["an entry in secure memory (by its platform address)", (l) => l(LIST, [page(1), SECURE]), 2n, /page 0xe000000 is not a page/],
      ["an entry in another VM's RAM (by its platform address)", (l) => l(LIST, [PA_B]), 1n, /page 0x100200000 is not a page/],
      ["an entry at the VM's own platform address (the guest names IPAs, never PAs)", (l) => l(LIST, [PA_A]), 1n, /not a page/],
      ["an entry with the top bits set", (l) => l(LIST, [0xffff_ffff_ffff_f000n]), 1n, /not a page/],
      ["a bad entry in the second list page", (l) => (l(LIST, full, page(201)), l(page(201), [0x5000_0000n])), 512n, /not a page/],
    ];
    it.each(cases)("%s", (_name, write, pages, why) => {
      const s = setup();
      write(s.list);
      const r = translatePageList(s.host, "a", LIST, pages * 4096n, 100_000);
      expect(r).toMatchObject({ ok: false, result: TEEC.ERROR_BAD_PARAMETERS });
      expect(!r.ok && r.why).toMatch(why);
      expect(s.heap.inUse).toBe(0);
    });

    it("a first list page outside the VM's RAM", () => {
      const s = setup();
      const r = translatePageList(s.host, "a", 0x5000_0000n, 4096n, 100);
      expect(r).toMatchObject({ ok: false, result: TEEC.ERROR_BAD_PARAMETERS });
    });

    it("a VM the host does not know", () => {
      const s = setup();
      expect(translatePageList(s.host, "nosuch", LIST, 4096n, 100)).toMatchObject({ ok: false, result: TEEC.ERROR_BAD_PARAMETERS });
    });
  });

  it("refuses an empty buffer with BAD_PARAMETERS", () => {
    const { host } = setup();
    expect(translatePageList(host, "a", LIST, 0n, 100)).toMatchObject({ ok: false, result: TEEC.ERROR_BAD_PARAMETERS });
  });

  it("refuses more pages than the budget with OUT_OF_MEMORY before reading anything", () => {
    const { host, list, reads } = setup();
    list(LIST, [page(1), page(2), page(3)]);
    expect(translatePageList(host, "a", LIST, 3n * 4096n, 3).ok).toBe(true);
    reads.length = 0;
    expect(translatePageList(host, "a", LIST, 3n * 4096n, 2)).toMatchObject({ ok: false, result: TEEC.ERROR_OUT_OF_MEMORY });
    expect(translatePageList(host, "a", LIST, 1n << 62n, 16384)).toMatchObject({ ok: false, result: TEEC.ERROR_OUT_OF_MEMORY });
    expect(translatePageList(host, "a", LIST, 4096n, -5)).toMatchObject({ ok: false, result: TEEC.ERROR_OUT_OF_MEMORY, why: expect.stringContaining("(0 left)") });
    expect(reads).toEqual([]);
  });

  it("answers OUT_OF_MEMORY, not BAD_PARAMETERS, when the hypervisor has no page left for the list", () => {
    const s = setup(1);
    s.list(LIST, Array.from({ length: 511 }, () => page(1)), page(201));
    s.list(page(201), [page(2)]);
    expect(translatePageList(s.host, "a", LIST, 512n * 4096n, 1000)).toMatchObject({ ok: false, result: TEEC.ERROR_OUT_OF_MEMORY });
    expect(s.heap.inUse).toBe(0);
  });

  it("never throws, and either translates every entry or refuses and frees everything (any list)", () => {
    const entry = fc.oneof(
      fc.integer({ min: 0, max: 255 }).map(page),
      fc.constantFrom(0n, SECURE, PA_A, PA_B, IPA + RAM, page(3) + 8n),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    );
    const next = fc.oneof(fc.constantFrom(LIST, page(201), page(202), LIST + 8n, 0n, PA_A), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 40 }), next, next, fc.integer({ min: 1, max: 1200 }), fc.integer({ min: 0, max: 4095 }), (entries, n1, n2, count, offset) => {
        const s = setup(8);
        s.list(LIST, Array.from({ length: 511 }, (_, i) => entries[i % entries.length]!), n1);
        s.list(page(201), Array.from({ length: 511 }, (_, i) => entries[(i + 7) % entries.length]!), n2);
        const size = BigInt(count * 4096 - offset);
        const r = translatePageList(s.host, "a", LIST | BigInt(offset), size, 2000);
        if (!r.ok) {
          expect([TEEC.ERROR_BAD_PARAMETERS, TEEC.ERROR_OUT_OF_MEMORY]).toContain(r.result);
          expect(s.heap.inUse).toBe(0);
          return;
        }
        expect(s.heap.inUse).toBe(r.listPages.length);
        let pa = r.bufPtr, k = 0;
        const guest: bigint[] = [];
        for (const at of r.pages > PAGELIST_ENTRIES ? [LIST, n1] : [LIST]) {
          const dv = new DataView(s.host.memory("a")!.read(at, PAGE_SIZE)!.buffer);
          for (let i = 0; i < PAGELIST_ENTRIES; i++) guest.push(dv.getBigUint64(8 * i, true));
        }
        while (k < r.pages) {
          const t = s.translated(pa);
          for (let i = 0; i < PAGELIST_ENTRIES && k < r.pages; i++, k++) expect(t.entries[i]).toBe(guest[k]! - IPA + PA_A);
          pa = t.next;
        }
      }),
      { numRuns: 300 },
    );
  });
});
