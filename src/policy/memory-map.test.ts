import { describe, expect, it } from "vitest";
import { HypervisorHeap } from "../hypervisor/heap.js";
import { parseConfigText } from "./load.js";
import { HYPERVISOR_HEAP, MemoryMap, placeVms } from "./memory-map.js";

function errorsOf(text: string) {
  const r = parseConfigText(text);
  if (r.ok) throw new Error("expected the config to be rejected");
  return r.errors;
}

function placed(text: string): [string, bigint][] {
  const r = parseConfigText(text);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value.vms.map((v) => [v.name, v.memory.pa]);
}

const heapEnd = HYPERVISOR_HEAP.base + HYPERVISOR_HEAP.size;

describe("the hypervisor's own pages are part of the memory map", () => {
  it("is where the hypervisor's heap is", () => {
    const heap = new HypervisorHeap();
    expect(heap.base).toBe(HYPERVISOR_HEAP.base);
    expect(BigInt(heap.maxPages * 4096)).toBe(HYPERVISOR_HEAP.size);
  });

  it("refuses VM RAM placed over them, with the field's path", () => {
    for (const pa of ["0x7FFE00000", "0x800000000", "0x803FFF000"]) {
      const e = errorsOf(`vms:\n  a: { memory: { pa: ${pa} } }\n`);
      expect(e).toHaveLength(1);
      expect(e[0]!.path).toBe("vms.a.memory.pa");
      expect(e[0]!.message).toMatch(/overlaps the hypervisor's own pages \(0x800000000-0x803ffffff\)/);
    }
  });

  it("refuses a secure region over them", () => {
    const e = errorsOf("platform:\n  secureMemory: [ { name: a, base: 0x1000, size: 4096 }, { name: s, base: 0x803fff000, size: 8KiB } ]\nvms:\n  a: {}\n");
    expect(e).toEqual([{ path: "platform.secureMemory[1]", message: 'secure region "s" overlaps the hypervisor\'s own pages (0x800000000-0x803ffffff)' }]);
  });

  it("places two 16 GiB VMs around them by default", () => {
    const pas = placed("vms:\n  a: { memory: { size: 16GiB } }\n  b: { memory: { size: 16GiB } }\n  c: {}\n");
    expect(pas[0]).toEqual(["a", 0x1_0000_0000n]);
    for (const [, pa] of pas) expect(pa + (16n << 30n) <= HYPERVISOR_HEAP.base || pa >= heapEnd).toBe(true);
    expect(pas[1]).toEqual(["b", heapEnd]);
    expect(pas[2]).toEqual(["c", heapEnd + (16n << 30n)]);
  });

  it("places VMs by default around secure regions and VMs the config placed", () => {
    // a ends at 0x110000000 where the secure region starts; c (64 MiB) fits after it, before b; d does not.
    const pas = placed("platform:\n  secureMemory: [ { name: s, base: 0x110000000, size: 1MiB } ]\nvms:\n  a: {}\n  b: { memory: { pa: 0x120000000 } }\n  c: { memory: { size: 64MiB } }\n  d: {}\n");
    expect(pas).toEqual([
      ["a", 0x1_0000_0000n],
      ["b", 0x1_2000_0000n],
      ["c", 0x1_1020_0000n],
      ["d", 0x1_3000_0000n],
    ]);
  });

  it("never places a VM over a reserved range, whatever the sizes", () => {
    const reserved = [HYPERVISOR_HEAP, { base: 0x1_4000_0000n, size: 0x1000n }, { base: 0x2_0000_0000n, size: 0x4000_0000n }];
    for (let n = 1; n < 40; n++) {
      const vms = Array.from({ length: n }, (_, i) => ({ name: `v${i}`, base: 0x4000_0000n, size: BigInt((i % 7) + 1) << 28n }));
      const map = placeVms(vms, reserved);
      for (const v of map) for (const r of reserved) expect(v.pa + v.size <= r.base || v.pa >= r.base + r.size).toBe(true);
      for (let i = 1; i < map.length; i++) expect(map[i]!.pa >= map[i - 1]!.pa + map[i - 1]!.size).toBe(true);
    }
  });

  it("refuses RAM above the 52-bit physical address space and an unaligned pa", () => {
    expect(errorsOf("vms:\n  a: { memory: { pa: 0xFFFFFFFFFFFF0000 } }\n")[0]).toMatchObject({ path: "vms.a.memory.pa", message: expect.stringMatching(/52-bit/) });
    expect(errorsOf("vms:\n  a: { memory: { pa: 0x100000800 } }\n")[0]).toMatchObject({ path: "vms.a.memory.pa", message: "memory.pa must be a multiple of 4 KiB" });
  });

  it("classifies the heap as the hypervisor's, which no VM may have the monitor touch", () => {
    const map = new MemoryMap([], [{ vm: "a", ipa: 0x4000_0000n, size: 0x1000_0000n, pa: 0x1_0000_0000n }]);
    expect(map.classify(HYPERVISOR_HEAP.base + 0x1000n, 16n)).toEqual({ kind: "hypervisor" });
    expect(map.refusal("a", HYPERVISOR_HEAP.base, 16n)).toMatch(/hypervisor's memory/);
    expect(map.refusal("a", 0x1_0000_0000n, 16n)).toBeNull();
  });
});
