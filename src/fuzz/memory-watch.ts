/**
 * Who touches a VM's RAM. Every way the hypervisor, its mediators, delegates and the modelled secure
 * world reach a VM's RAM goes through the VM's memory port (GuestMemory: read, write, view); the watch
 * wraps each VM's port, so that:
 *
 * - any access to VM X's RAM while another VM's call is in progress (or outside any call) is recorded at
 *   once, with the address: exact, whatever the access;
 * - pages handed out as views (writable windows a caller may keep, like a TA's memref while its thread
 *   waits in an RPC) are remembered as exposed; their contents are compared with a copy taken at the end of
 *   the VM's own calls, so a write through a kept view during another VM's call is found too.
 *
 * A write through a view leaves no trace at the port; that is what the copies are for. Pages never viewed
 * can only change through write(), which the port sees.
 */
import { Buffer } from "node:buffer";
import type { HypervisorHeap } from "../hypervisor/heap.js";
import type { ArrayGuestMemory } from "../machine/scripted/memory.js";
import { FFA_HYPERVISOR_OWNER } from "../mediators/ffa/mediator.js";

const PAGE_SHIFT = 12;
const PAGE = 1 << PAGE_SHIFT;

export interface CrossAccess {
  /** The VM whose RAM was touched, or, for the hypervisor's heap, the VM the page is allocated for. */
  readonly owner: string;
  /** "ram", or "heap": a page of the hypervisor's own (a shadow argument, a page list) held for `owner`. */
  readonly where: "ram" | "heap";
  /** The VM whose call was in progress, or null outside any call. */
  readonly actor: string | null;
  readonly kind: "read" | "write" | "view";
  readonly ipa: bigint;
  readonly length: number;
}

interface Run {
  readonly first: number;
  readonly live: Buffer;
  readonly copy: Buffer;
}

/** Pages of a run at most, and runs start at multiples of it: so none crosses a 64 MiB chunk of a large VM's RAM. */
const RUN_PAGES = 256;

/** One VM's RAM under watch. */
export class WatchedRam {
  private readonly exposed = new Set<number>();
  private runs: Run[] = [];
  private changedSinceRuns = false;
  /** The port's own methods, unwatched: the guest's own accesses (the campaign writing its arguments). */
  readonly raw: { read(ipa: bigint, length: number): Uint8Array | null; write(ipa: bigint, data: Uint8Array): boolean; view(ipa: bigint, length: number): Uint8Array | null };

  constructor(readonly owner: string, readonly index: number, readonly memory: ArrayGuestMemory) {
    this.raw = { read: memory.read.bind(memory), write: memory.write.bind(memory), view: memory.view.bind(memory) };
  }

  /** Pages handed out as views so far. */
  get exposedPages(): number {
    return this.exposed.size;
  }

  expose(ipa: bigint, length: number): void {
    if (length <= 0) return;
    const off = ipa - this.memory.base;
    const first = Number(off >> BigInt(PAGE_SHIFT));
    const last = Number((off + BigInt(length) - 1n) >> BigInt(PAGE_SHIFT));
    for (let p = first; p <= last; p++) {
      if (this.exposed.has(p)) continue;
      this.exposed.add(p);
      this.changedSinceRuns = true;
    }
  }

  /** Takes the copy the next compare() checks against: the exposed pages as they are now. */
  snapshot(): void {
    if (this.changedSinceRuns) this.rebuild();
    for (const r of this.runs) r.live.copy(r.copy);
  }

  /** Where an exposed page differs from the last snapshot (its IPA), or null when none does. */
  compare(): bigint | null {
    for (const r of this.runs) {
      if (r.live.equals(r.copy)) continue;
      let b = 0;
      while (r.live[b] === r.copy[b]) b++;
      return this.memory.base + BigInt(r.first) * BigInt(PAGE) + BigInt(b);
    }
    return null;
  }

  private rebuild(): void {
    const pages = [...this.exposed].sort((a, b) => a - b);
    const runs: Run[] = [];
    for (let i = 0; i < pages.length; ) {
      let j = i + 1;
      while (j < pages.length && j - i < RUN_PAGES && pages[j] === pages[j - 1]! + 1 && pages[j]! % RUN_PAGES !== 0) j++;
      const first = pages[i]!;
      const ipa = this.memory.base + BigInt(first) * BigInt(PAGE);
      const length = Math.min((j - i) * PAGE, Number(this.memory.size) - first * PAGE);
      // The RAM itself, through the port's own view (a large VM's RAM is in chunks a run does not cross).
      const live = this.raw.view(ipa, length);
      if (live !== null) runs.push({ first, live: Buffer.from(live.buffer, live.byteOffset, live.length), copy: Buffer.alloc(length) });
      i = j;
    }
    this.runs = runs;
    this.changedSinceRuns = false;
  }
}

export class MemoryWatch {
  /** Index of the VM whose call (or toolstack action) is in progress; -1 between calls. */
  actor = -1;
  /** The first access to a VM's RAM by anyone else, until the campaign takes it. */
  crossed: CrossAccess | null = null;
  readonly vms: WatchedRam[] = [];

  /** Puts the VM's port under watch: its read, write and view go through the watch from now on. */
  watch(owner: string, memory: ArrayGuestMemory): WatchedRam {
    const w = new WatchedRam(owner, this.vms.length, memory);
    this.vms.push(w);
    const { read, write, view } = w.raw;
    memory.read = (ipa, length) => {
      if (this.actor !== w.index) this.cross(w, "read", ipa, length);
      return read(ipa, length);
    };
    memory.write = (ipa, data) => {
      if (this.actor !== w.index) this.cross(w, "write", ipa, data.length);
      return write(ipa, data);
    };
    memory.view = (ipa, length) => {
      if (this.actor !== w.index) this.cross(w, "view", ipa, length);
      const v = view(ipa, length);
      if (v !== null) w.expose(ipa, length);
      return v;
    };
    return w;
  }

  /**
   * Puts the hypervisor's heap under watch: a page allocated for one VM (its call's shadow argument or page
   * list, held while the call waits in an RPC) is read, written, viewed, allocated and freed only during that
   * VM's calls (or the toolstack's actions on it).
   */
  watchHeap(heap: HypervisorHeap): void {
    const read = heap.read.bind(heap), write = heap.write.bind(heap), view = heap.view.bind(heap), alloc = heap.alloc.bind(heap), free = heap.free.bind(heap);
    const check = (kind: CrossAccess["kind"], pa: bigint, length: number) => {
      const actor = this.actor >= 0 ? this.vms[this.actor]!.owner : null;
      for (let off = 0; off < Math.max(length, 1); off += 4096 - Number((pa + BigInt(off)) & 0xfffn)) {
        const owner = heap.ownerOf(pa + BigInt(off), 1);
        // The FF-A mediator's own RX/TX pair is the hypervisor's, shared with the SPMC for every VM's calls.
        if (owner !== null && owner !== actor && owner !== FFA_HYPERVISOR_OWNER) {
          this.crossed ??= { owner, where: "heap", actor, kind, ipa: pa + BigInt(off), length };
          return;
        }
      }
    };
    heap.read = (pa, length) => (check("read", pa, length), read(pa, length));
    heap.write = (pa, data) => (check("write", pa, data.length), write(pa, data));
    heap.view = (pa, length) => (check("view", pa, length), view(pa, length));
    heap.free = (pa) => (check("write", pa, 1), free(pa));
    heap.alloc = (owner) => {
      const actor = this.actor >= 0 ? this.vms[this.actor]!.owner : null;
      const pa = alloc(owner);
      if (owner !== actor && owner !== FFA_HYPERVISOR_OWNER) this.crossed ??= { owner, where: "heap", actor, kind: "write", ipa: pa ?? 0n, length: 4096 };
      return pa;
    };
  }

  private cross(w: WatchedRam, kind: CrossAccess["kind"], ipa: bigint, length: number): void {
    this.crossed ??= { owner: w.owner, where: "ram", actor: this.actor >= 0 ? this.vms[this.actor]!.owner : null, kind, ipa, length };
  }
}
