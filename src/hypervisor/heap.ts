/**
 * The hypervisor's own memory for shadow buffers and translated page lists: pages no VM can map, at
 * platform physical addresses the secure world can be given. A fixed region, allocated a page at a time,
 * each page for one VM (its owner): the secure world serving a VM's call is given that VM's pages only.
 */
import type { PageHeap } from "../mediators/mediator.js";
import { HYPERVISOR_HEAP } from "../policy/memory-map.js";

/** Where the heap is in the platform's physical space: the memory map config validation checks (policy/memory-map.ts). */
export const HEAP_BASE = HYPERVISOR_HEAP.base;
export const PAGE = 4096;

export class HypervisorHeap implements PageHeap {
  /** Allocated pages by index (null: free or never used). An array, not a Map: the mediator looks pages up on every call. */
  private readonly pages: (Uint8Array | null)[] = [];
  /** Who each allocated page is for (a VM's name), by index. */
  private readonly owners: (string | null)[] = [];
  private readonly free_: number[] = [];
  /** Buffers of freed pages, reused (zeroed) instead of allocating: a mediator allocates pages per call. */
  private readonly spare: Uint8Array[] = [];
  private next = 0;
  private readonly byOwner = new Map<string, number>();
  private used = 0;
  private readonly end: bigint;

  constructor(readonly base: bigint = HEAP_BASE, readonly maxPages = Number(HYPERVISOR_HEAP.size) / PAGE) {
    // Offsets inside the heap are 32-bit numbers (page index = offset >>> 12).
    if (!Number.isInteger(maxPages) || maxPages < 0 || maxPages > 1 << 20) throw new RangeError("the hypervisor heap holds at most 2^20 pages (4 GiB)");
    this.end = base + BigInt(maxPages * PAGE);
  }

  get inUse(): number {
    return this.used;
  }

  /** Pages allocated for `owner` now. */
  heldBy(owner: string): number {
    return this.byOwner.get(owner) ?? 0;
  }

  contains(pa: bigint, length: number): boolean {
    return pa >= this.base && pa + BigInt(length) <= this.end;
  }

  /** Whether [pa, pa + length) touches the heap's region at all: such a range is never a VM's memory. */
  overlaps(pa: bigint, length: bigint): boolean {
    return length > 0n && pa < this.end && this.base < pa + length;
  }

  /** A page for `owner`'s calls (the VM it is allocated for). */
  alloc(owner: string): bigint | null {
    const index = this.free_.pop() ?? (this.next < this.maxPages ? this.next++ : -1);
    if (index < 0) return null;
    const reused = this.spare.pop();
    // A page never shows one VM's data to the next user.
    this.pages[index] = reused ? reused.fill(0) : new Uint8Array(PAGE);
    this.owners[index] = owner;
    this.byOwner.set(owner, (this.byOwner.get(owner) ?? 0) + 1);
    this.used++;
    return this.base + BigInt(index * PAGE);
  }

  /** The VM every page of [pa, pa + length) is allocated for, or null (not all allocated, or for several, or outside the heap). */
  ownerOf(pa: bigint, length: number): string | null {
    if (length <= 0 || !this.contains(pa, length)) return null;
    const rel = Number(pa - this.base);
    const first = rel >>> 12, last = (rel + length - 1) >>> 12;
    const owner = this.pages[first] ? this.owners[first]! : null;
    for (let i = first + 1; owner !== null && i <= last; i++) if (!this.pages[i] || this.owners[i] !== owner) return null;
    return owner;
  }

  free(pa: bigint): void {
    if (!this.contains(pa, 1)) return;
    const index = Number(pa - this.base) >>> 12;
    const page = this.pages[index];
    if (!page) return;
    const owner = this.owners[index]!;
    const n = (this.byOwner.get(owner) ?? 1) - 1;
    if (n === 0) this.byOwner.delete(owner);
    else this.byOwner.set(owner, n);
    this.pages[index] = null;
    this.owners[index] = null;
    this.used--;
    this.free_.push(index);
    if (this.spare.length < 256) this.spare.push(page);
  }

  read(pa: bigint, length: number): Uint8Array | null {
    const out = new Uint8Array(length);
    return this.copy(pa, out, true) ? out : null;
  }

  write(pa: bigint, data: Uint8Array): boolean {
    return this.copy(pa, data, false);
  }

  /** [pa, pa + length) in place when it lies in one allocated page: the page is the hypervisor's, no VM can change it. */
  view(pa: bigint, length: number): Uint8Array | null {
    if (length < 0 || !this.contains(pa, length)) return null;
    const rel = Number(pa - this.base);
    const off = rel & (PAGE - 1);
    const page = this.pages[rel >>> 12];
    return page && off + length <= PAGE ? page.subarray(off, off + length) : null;
  }

  /** Copies between `buf` and the allocated pages covering [pa, pa + buf.length); false if any is not allocated. */
  private copy(pa: bigint, buf: Uint8Array, out: boolean): boolean {
    const length = buf.length;
    if (!this.contains(pa, length)) return false;
    let rel = Number(pa - this.base), done = 0;
    while (done < length) {
      const page = this.pages[rel >>> 12];
      if (!page) return false;
      const off = rel & (PAGE - 1), n = Math.min(PAGE - off, length - done);
      if (out) buf.set(page.subarray(off, off + n), done);
      else page.set(buf.subarray(done, done + n), off);
      done += n;
      rel += n;
    }
    return true;
  }
}
