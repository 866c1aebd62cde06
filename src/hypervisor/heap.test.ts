import { describe, expect, it } from "vitest";
import { HEAP_BASE, HypervisorHeap, PAGE } from "./heap.js";

describe("the hypervisor heap", () => {
  it("hands out pages at platform addresses, reads and writes across page boundaries, and refuses unallocated ones", () => {
    const h = new HypervisorHeap(HEAP_BASE, 4);
    const a = h.alloc("a")!, b = h.alloc("a")!;
    expect([a, b]).toEqual([HEAP_BASE, HEAP_BASE + BigInt(PAGE)]);
    expect(h.write(a + BigInt(PAGE - 2), Uint8Array.of(1, 2, 3, 4))).toBe(true);
    expect([...h.read(a + BigInt(PAGE - 2), 4)!]).toEqual([1, 2, 3, 4]);
    expect(h.read(b + BigInt(PAGE), 1)).toBeNull();
    expect(h.inUse).toBe(2);
  });

  it("a freed page comes back zeroed: no VM sees another's data", () => {
    const h = new HypervisorHeap(HEAP_BASE, 1);
    const a = h.alloc("a")!;
    h.write(a, new Uint8Array(PAGE).fill(0xaa));
    expect(h.alloc("a")).toBeNull();
    h.free(a);
    expect(h.inUse).toBe(0);
    const again = h.alloc("a")!;
    expect(again).toBe(a);
    expect(h.read(again, PAGE)!.every((x) => x === 0)).toBe(true);
    h.free(again);
    h.free(again);
    expect(h.inUse).toBe(0);
  });

  it("counts the pages each owner holds, a double free included", () => {
    const h = new HypervisorHeap(HEAP_BASE, 8);
    const a1 = h.alloc("a")!, a2 = h.alloc("a")!, hyp = h.alloc("hypervisor")!;
    expect([h.heldBy("a"), h.heldBy("hypervisor"), h.heldBy("b")]).toEqual([2, 1, 0]);
    h.free(a1);
    h.free(a1);
    expect(h.heldBy("a")).toBe(1);
    h.free(a2);
    h.free(hyp);
    expect([h.heldBy("a"), h.heldBy("hypervisor"), h.inUse]).toEqual([0, 0, 0]);
  });

  it("views a range of one allocated page in place, and nothing else (across pages, unallocated, outside the heap)", () => {
    const h = new HypervisorHeap(HEAP_BASE, 4);
    const a = h.alloc("a")!, b = h.alloc("a")!;
    const v = h.view(a + 8n, 16)!;
    v.set([1, 2, 3]);
    expect([...h.read(a + 8n, 3)!]).toEqual([1, 2, 3]);
    expect(h.view(a, PAGE)!.length).toBe(PAGE);
    expect(h.view(a + BigInt(PAGE - 4), 8)).toBeNull();
    expect(h.view(b + BigInt(PAGE), 4)).toBeNull();
    expect(h.view(HEAP_BASE - 4n, 4)).toBeNull();
    expect(h.view(HEAP_BASE + 4n * BigInt(PAGE), 4)).toBeNull();
    h.free(b);
    expect(h.view(b, 4)).toBeNull();
    // Freeing what is not a heap page changes nothing.
    h.free(HEAP_BASE - BigInt(PAGE));
    h.free(HEAP_BASE + 100n * BigInt(PAGE));
    expect(h.inUse).toBe(1);
  });
});
