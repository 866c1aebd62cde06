/**
 * The hypervisor's own memory for shadow buffers and translated page lists: pages no VM can map, at
 * platform physical addresses the secure world can be given. A fixed region, allocated a page at a time.
 */
import type { PageHeap } from "../mediators/mediator.js";

export const HEAP_BASE = 0x8_0000_0000n;
export const PAGE = 4096;

export class HypervisorHeap implements PageHeap {
  private readonly pages = new Map<number, Uint8Array>();
  private readonly free_: number[] = [];
  /** Buffers of freed pages, reused (zeroed) instead of allocating: a mediator allocates pages per call. */
  private readonly spare: Uint8Array[] = [];
  private next = 0;

  constructor(readonly base: bigint = HEAP_BASE, readonly maxPages = 16384) {}

  get inUse(): number {
    return this.pages.size;
  }

  contains(pa: bigint, length: number): boolean {
    return pa >= this.base && pa + BigInt(length) <= this.base + BigInt(this.maxPages * PAGE);
  }

  alloc(): bigint | null {
    const index = this.free_.pop() ?? (this.next < this.maxPages ? this.next++ : -1);
    if (index < 0) return null;
    const reused = this.spare.pop();
    // A page never shows one VM's data to the next user.
    this.pages.set(index, reused ? reused.fill(0) : new Uint8Array(PAGE));
    return this.base + BigInt(index * PAGE);
  }

  free(pa: bigint): void {
    const index = Number((pa - this.base) / BigInt(PAGE));
    const page = this.pages.get(index);
    if (page && this.pages.delete(index)) {
      this.free_.push(index);
      if (this.spare.length < 256) this.spare.push(page);
    }
  }

  read(pa: bigint, length: number): Uint8Array | null {
    const out = new Uint8Array(length);
    return this.copy(pa, length, (page, off, n, done) => out.set(page.subarray(off, off + n), done)) ? out : null;
  }

  write(pa: bigint, data: Uint8Array): boolean {
    return this.copy(pa, data.length, (page, off, n, done) => page.set(data.subarray(done, done + n), off));
  }

  /** Walks allocated pages covering [pa, pa + length); false if any is not allocated. */
  private copy(pa: bigint, length: number, each: (page: Uint8Array, off: number, n: number, done: number) => void): boolean {
    if (!this.contains(pa, length)) return false;
    let rel = Number(pa - this.base), done = 0;
    while (done < length) {
      const page = this.pages.get(Math.floor(rel / PAGE));
      if (!page) return false;
      const off = rel % PAGE, n = Math.min(PAGE - off, length - done);
      each(page, off, n, done);
      done += n;
      rel += n;
    }
    return true;
  }
}
