/**
 * The SPMC's memory transactions (DEN0077 v1.1 chapter 10 and the memory management ABIs): FFA_MEM_SHARE and FFA_MEM_LEND the hypervisor
 * relays for a VM (in one piece or in fragments, FFA_MEM_FRAG_TX), their retrieval and relinquishing by
 * partitions, and FFA_MEM_RECLAIM. Every transaction belongs to one VM (its lender); every page it
 * names was checked through the memory port to be that VM's, and no page is in two outstanding
 * transactions of a VM at once.
 *
 * Handles are global (bit 63 clear: the SPMC allocated them, DEN0077 v1.1 §10.9.2) and never reused while the model
 * runs; lookups from a VM's context (FRAG_TX names the VM) and from a partition (retrieve with the
 * expected lender) only find that VM's transactions.
 */
import {
  FFA_MEM_ACCESS_FLAG,
  FFA_MEM_ATTR,
  FFA_MEM_ATTR_NORMAL_WB_IS,
  FFA_MEM_FLAG,
  FFA_MEM_PERM,
  FFA_MEM_RECLAIM_FLAG,
  FFA_MEM_TRANSACTION,
  FFA_PAGE_SIZE,
  FFA_RET,
  type FfaError,
} from "../../smccc/ffa/abi.js";
import {
  FFA_CONSTITUENT_SIZE,
  FFA_MEM_HEADER_SIZE,
  decodeMemTransaction,
  totalPages,
  type FfaDescriptorLayout,
  type FfaMemRange,
  type FfaMemTransaction,
} from "../../smccc/ffa/descriptors.js";
import type { SpmcLimits } from "./limits.js";
import type { RetrieveOptions, RetrieveResult } from "./partition.js";
import type { SpmcMemory } from "./spmc.js";

export type SendType = typeof FFA_MEM_TRANSACTION.SHARE | typeof FFA_MEM_TRANSACTION.LEND;

/** What a send or a fragment ends in: the handle, a request for the next fragment, or an error. */
export type SendAnswer =
  | { readonly kind: "done"; readonly handle: bigint }
  | { readonly kind: "more"; readonly handle: bigint; readonly received: number; readonly vm: number }
  | { readonly kind: "error"; readonly error: FfaError };

/** What the transactions need to know about partitions and VMs (answered by the SPMC). */
export interface TransactionPeers {
  /** Whether `vm` is a VM the hypervisor told the SPMC about. */
  vmKnown(vm: number): boolean;
  /** "ok" when `sp` is a partition `vm` may share with, "unknown" when it is no partition, else "denied". */
  partitionFor(sp: number, vm: number): "ok" | "unknown" | "denied";
}

interface Grant {
  readonly permissions: number;
  /** Nested retrievals not yet relinquished. */
  retrieved: number;
}

interface Transaction {
  readonly handle: bigint;
  readonly vm: number;
  readonly type: SendType;
  readonly attributes: number;
  readonly tag: bigint;
  readonly grants: Map<number, Grant>;
  readonly ranges: readonly FfaMemRange[];
  /** The ranges by address, for lookups by physical address (binary search). */
  readonly sorted: readonly FfaMemRange[];
  readonly pages: number;
}

interface Pending {
  readonly handle: bigint;
  readonly vm: number;
  readonly type: SendType;
  readonly layout: FfaDescriptorLayout;
  readonly buffer: Uint8Array;
  received: number;
}

export interface TransactionCounters {
  /** Complete transactions outstanding. */
  readonly shares: number;
  /** Transactions still receiving fragments. */
  readonly fragments: number;
  /** Pages of the complete ones. */
  readonly pages: number;
  /** Retrievals by partitions not yet relinquished. */
  readonly retrieved: number;
}

const PAGE = BigInt(FFA_PAGE_SIZE);

export class MemoryTransactions {
  private readonly done = new Map<bigint, Transaction>();
  private readonly pending = new Map<bigint, Pending>();
  /**
   * Page frame numbers in a VM's outstanding transactions: the no-double-share check in time linear in the
   * new transaction's pages (at most maxPagesPerVm entries per VM).
   */
  private readonly heldPages = new Map<number, Set<bigint>>();
  /** Handles from 1 up; bit 63 stays clear (SPMC-allocated). */
  private nextHandle = 1n;

  constructor(
    private readonly memory: SpmcMemory,
    private readonly limits: SpmcLimits,
    private readonly peers: TransactionPeers,
  ) {}

  /**
   * FFA_MEM_SHARE / FFA_MEM_LEND with the descriptor's first `fragment` (a copy of the TX buffer) of
   * `totalLength` bytes.
   */
  send(type: SendType, totalLength: number, fragment: Uint8Array, layout: FfaDescriptorLayout): SendAnswer {
    if (fragment.length === 0 || fragment.length > totalLength) return error(FFA_RET.INVALID_PARAMETERS);
    if (totalLength > this.limits.maxDescriptorBytes) return error(FFA_RET.NO_MEMORY);
    // The first fragment holds at least the header: the lender is known before anything is held.
    if (fragment.length < FFA_MEM_HEADER_SIZE[layout]) return error(FFA_RET.INVALID_PARAMETERS);
    const vm = fragment[0]! | (fragment[1]! << 8);
    if (!this.peers.vmKnown(vm)) return error(FFA_RET.INVALID_PARAMETERS);
    if (this.held(vm) >= this.limits.maxSharesPerVm) return error(FFA_RET.NO_MEMORY);
    const handle = this.nextHandle++;
    if (fragment.length === totalLength) return this.commit(handle, vm, type, fragment, layout);
    const buffer = new Uint8Array(totalLength);
    buffer.set(fragment);
    this.pending.set(handle, { handle, vm, type, layout, buffer, received: fragment.length });
    return { kind: "more", handle, received: fragment.length, vm };
  }

  /** FFA_MEM_FRAG_TX: the next fragment of `handle`, which VM `vm` is sending. */
  fragment(handle: bigint, vm: number, fragment: Uint8Array): SendAnswer {
    const p = this.pending.get(handle);
    // Another VM's handle, a finished one or none: not this VM's transaction in progress, and left as it is.
    if (p === undefined || p.vm !== vm) return error(FFA_RET.INVALID_PARAMETERS);
    // Later fragments carry whole constituents (Hafnium checks the same); a fragment that does not fit
    // ends the transaction: nothing of it stays.
    if (fragment.length === 0 || fragment.length % FFA_CONSTITUENT_SIZE !== 0 || p.received + fragment.length > p.buffer.length) {
      this.pending.delete(handle);
      return error(FFA_RET.INVALID_PARAMETERS);
    }
    p.buffer.set(fragment, p.received);
    p.received += fragment.length;
    if (p.received < p.buffer.length) return { kind: "more", handle, received: p.received, vm };
    this.pending.delete(handle);
    return this.commit(handle, vm, p.type, p.buffer, p.layout);
  }

  /** Ends `vm`'s transaction in progress `handle`; false when it has none of that handle. */
  abort(handle: bigint, vm: number): boolean {
    const p = this.pending.get(handle);
    if (p === undefined || p.vm !== vm) return false;
    this.pending.delete(handle);
    return true;
  }

  /** Decodes and checks the whole descriptor, then holds the transaction. */
  private commit(handle: bigint, vm: number, type: SendType, bytes: Uint8Array, layout: FfaDescriptorLayout): SendAnswer {
    const d = decodeMemTransaction(bytes, layout, {
      composite: "required",
      maxReceivers: this.limits.maxReceivers,
      maxRanges: this.limits.maxPagesPerShare,
    });
    if (!d.ok) return error(d.error.ffaError);
    const tx = d.value;
    const refused = this.refusal(vm, type, tx);
    if (refused !== undefined) return error(refused);
    const pages = totalPages(tx.ranges);
    if (pages > this.limits.maxPagesPerShare || this.pagesOf(vm) + pages > this.limits.maxPagesPerVm) return error(FFA_RET.NO_MEMORY);
    // Every page the lender's own (the owner shares only what it owns; a hypervisor that relays
    // another VM's pages is refused), and none already in another of its transactions (no double share).
    if (!tx.ranges.every((r) => this.owns(r, vm))) return error(FFA_RET.DENIED);
    const held = this.heldPages.get(vm) ?? new Set<bigint>();
    if (frames(tx.ranges).some((f) => held.has(f))) return error(FFA_RET.DENIED);
    if ((tx.flags & FFA_MEM_FLAG.CLEAR) !== 0 && !this.clear(tx.ranges, vm)) return error(FFA_RET.DENIED);
    const grants = new Map<number, Grant>(tx.receivers.map((r) => [r.receiver, { permissions: r.permissions, retrieved: 0 }]));
    const sorted = [...tx.ranges].sort((a, b) => (a.address < b.address ? -1 : 1));
    this.done.set(handle, { handle, vm, type, attributes: tx.attributes, tag: tx.tag, grants, ranges: tx.ranges, sorted, pages });
    for (const f of frames(tx.ranges)) held.add(f);
    this.heldPages.set(vm, held);
    return { kind: "done", handle };
  }

  /** The meaning of a decoded descriptor (DEN0077 v1.1 §10.10-10.11): who, what attributes, what permissions. */
  private refusal(vm: number, type: SendType, tx: FfaMemTransaction): FfaError | undefined {
    if (tx.sender !== vm) return FFA_RET.INVALID_PARAMETERS;
    if (tx.handle !== 0n) return FFA_RET.INVALID_PARAMETERS;
    if ((tx.flags & FFA_MEM_FLAG.MBZ_SEND) !== 0) return FFA_RET.INVALID_PARAMETERS;
    // DEN0077 v1.1 §10.11.4: the zero memory flag MBZ in a share (the lender keeps access).
    if (type === FFA_MEM_TRANSACTION.SHARE && (tx.flags & FFA_MEM_FLAG.CLEAR) !== 0) return FFA_RET.INVALID_PARAMETERS;
    // A share names normal write-back inner-shareable memory (Linux and Xen's attributes); a lend may
    // leave them to the borrower (Linux ffa_memory_attributes_get gives 0 for MEM_LEND).
    const attrsOk = tx.attributes === FFA_MEM_ATTR_NORMAL_WB_IS || (type === FFA_MEM_TRANSACTION.LEND && tx.attributes === FFA_MEM_ATTR.TYPE_NOT_SPECIFIED);
    if (!attrsOk) return FFA_RET.INVALID_PARAMETERS;
    for (const r of tx.receivers) {
      const data = r.permissions & FFA_MEM_PERM.DATA_MASK;
      const instr = r.permissions & FFA_MEM_PERM.INSTR_MASK;
      // The lender states the data access it grants; it never grants execution of its memory.
      if (data !== FFA_MEM_PERM.DATA_RO && data !== FFA_MEM_PERM.DATA_RW) return FFA_RET.INVALID_PARAMETERS;
      if (instr === FFA_MEM_PERM.INSTR_X) return FFA_RET.INVALID_PARAMETERS;
      // The non-retrieval borrower flag is for VM borrowers the hypervisor maps itself; partitions retrieve.
      if ((r.flags & FFA_MEM_ACCESS_FLAG.NON_RETRIEVAL_BORROWER) !== 0) return FFA_RET.INVALID_PARAMETERS;
      const peer = this.peers.partitionFor(r.receiver, vm);
      if (peer === "unknown") return FFA_RET.INVALID_PARAMETERS;
      if (peer === "denied") return FFA_RET.DENIED;
    }
    return undefined;
  }

  private owns(r: FfaMemRange, vm: number): boolean {
    const length = r.pageCount * FFA_PAGE_SIZE;
    if (this.memory.owns !== undefined) return this.memory.owns(r.address, length, vm);
    for (let p = 0; p < r.pageCount; p++) {
      if (this.memory.read(r.address + BigInt(p) * PAGE, FFA_PAGE_SIZE, vm) === null) return false;
    }
    return true;
  }

  private clear(ranges: readonly FfaMemRange[], vm: number): boolean {
    const zero = new Uint8Array(FFA_PAGE_SIZE);
    for (const r of ranges) {
      for (let p = 0; p < r.pageCount; p++) if (!this.memory.write(r.address + BigInt(p) * PAGE, zero, vm)) return false;
    }
    return true;
  }

  /** FFA_MEM_RECLAIM by the hypervisor for the lender: DENIED while a partition holds the region. */
  reclaim(handle: bigint, flags: number): number {
    if ((flags & FFA_MEM_RECLAIM_FLAG.MBZ) !== 0) return FFA_RET.INVALID_PARAMETERS;
    if (this.pending.delete(handle)) return 0;
    const t = this.done.get(handle);
    if (t === undefined) return FFA_RET.INVALID_PARAMETERS;
    // Hafnium ffa_memory_reclaim: memory still shared cannot be cleared (the lender never lost it).
    if ((flags & FFA_MEM_RECLAIM_FLAG.CLEAR) !== 0 && t.type === FFA_MEM_TRANSACTION.SHARE) return FFA_RET.INVALID_PARAMETERS;
    if ([...t.grants.values()].some((g) => g.retrieved > 0)) return FFA_RET.DENIED;
    if ((flags & FFA_MEM_RECLAIM_FLAG.CLEAR) !== 0 && !this.clear(t.ranges, t.vm)) return FFA_RET.ABORTED;
    this.drop(t);
    return 0;
  }

  /** FFA_MEM_RETRIEVE_REQ by partition `sp`. */
  retrieve(sp: number, handle: bigint, opts: RetrieveOptions = {}): RetrieveResult {
    const t = this.done.get(handle);
    if (t === undefined) return { ok: false, error: FFA_RET.INVALID_PARAMETERS };
    // The retrieve request names the lender; another VM's handle is not the one asked for.
    if (opts.sender !== undefined && opts.sender !== t.vm) return { ok: false, error: FFA_RET.INVALID_PARAMETERS };
    if (opts.transaction !== undefined && opts.transaction !== FFA_MEM_TRANSACTION.UNSPECIFIED && opts.transaction !== t.type) {
      return { ok: false, error: FFA_RET.INVALID_PARAMETERS };
    }
    const g = t.grants.get(sp);
    if (g === undefined) return { ok: false, error: FFA_RET.DENIED };
    if (g.retrieved >= this.limits.maxRetrievals) return { ok: false, error: FFA_RET.NO_MEMORY };
    g.retrieved++;
    const attributes = (t.attributes === FFA_MEM_ATTR.TYPE_NOT_SPECIFIED ? FFA_MEM_ATTR_NORMAL_WB_IS : t.attributes) | FFA_MEM_ATTR.NS;
    return {
      ok: true,
      region: { handle, sender: t.vm, transaction: t.type, permissions: g.permissions, attributes, tag: t.tag, ranges: t.ranges, totalPages: t.pages },
    };
  }

  /** FFA_MEM_RELINQUISH by partition `sp`: one retrieval ends. */
  relinquish(sp: number, handle: bigint): number {
    const g = this.done.get(handle)?.grants.get(sp);
    if (g === undefined || g.retrieved === 0) return FFA_RET.INVALID_PARAMETERS;
    g.retrieved--;
    return 0;
  }

  /** The transaction and range of partition `sp`'s retrieved memory that holds [pa, pa + length). */
  private holding(sp: number, pa: bigint, length: number): { t: Transaction; g: Grant } | undefined {
    if (!Number.isSafeInteger(length) || length < 0) return undefined;
    const end = pa + BigInt(length);
    for (const t of this.done.values()) {
      const g = t.grants.get(sp);
      if (g === undefined || g.retrieved === 0) continue;
      const r = rangeAt(t.sorted, pa);
      if (r !== undefined && end <= r.address + BigInt(r.pageCount) * PAGE) return { t, g };
    }
    return undefined;
  }

  read(sp: number, pa: bigint, length: number): Uint8Array | null {
    const h = this.holding(sp, pa, length);
    return h === undefined ? null : this.memory.read(pa, length, h.t.vm);
  }

  write(sp: number, pa: bigint, data: Uint8Array): boolean {
    const h = this.holding(sp, pa, data.length);
    if (h === undefined || (h.g.permissions & FFA_MEM_PERM.DATA_MASK) !== FFA_MEM_PERM.DATA_RW) return false;
    return this.memory.write(pa, data, h.t.vm);
  }

  /** In-place access for a read-write grant, when the memory port offers it. */
  view(sp: number, pa: bigint, length: number): Uint8Array | null {
    const h = this.holding(sp, pa, length);
    if (h === undefined || (h.g.permissions & FFA_MEM_PERM.DATA_MASK) !== FFA_MEM_PERM.DATA_RW) return null;
    return this.memory.view?.(pa, length, h.t.vm) ?? null;
  }

  /** Partition `sp` was told that `vm` is gone: whatever of `vm`'s it still holds, it holds no more. */
  releaseAll(sp: number, vm: number): void {
    for (const t of this.done.values()) {
      const g = t.vm === vm ? t.grants.get(sp) : undefined;
      if (g !== undefined) g.retrieved = 0;
    }
  }

  /** `vm` is gone: its fragments in progress end and every transaction no partition holds is reclaimed. */
  forget(vm: number): void {
    for (const p of [...this.pending.values()]) if (p.vm === vm) this.pending.delete(p.handle);
    for (const t of [...this.done.values()]) {
      if (t.vm === vm && [...t.grants.values()].every((g) => g.retrieved === 0)) this.drop(t);
    }
  }

  /** Forgets a complete transaction and frees its pages for the VM's next one. */
  private drop(t: Transaction): void {
    this.done.delete(t.handle);
    const held = this.heldPages.get(t.vm);
    if (held === undefined) return;
    for (const f of frames(t.ranges)) held.delete(f);
    if (held.size === 0) this.heldPages.delete(t.vm);
  }

  counters(vm: number): TransactionCounters {
    let shares = 0, pages = 0, retrieved = 0, fragments = 0;
    for (const t of this.done.values()) {
      if (t.vm !== vm) continue;
      shares++;
      pages += t.pages;
      for (const g of t.grants.values()) retrieved += g.retrieved;
    }
    for (const p of this.pending.values()) if (p.vm === vm) fragments++;
    return { shares, fragments, pages, retrieved };
  }

  /** Complete and pending transactions of `vm`. */
  private held(vm: number): number {
    const c = this.counters(vm);
    return c.shares + c.fragments;
  }

  private pagesOf(vm: number): number {
    return this.counters(vm).pages;
  }
}

/** The 4 KiB page frame numbers of `ranges`. */
function frames(ranges: readonly FfaMemRange[]): bigint[] {
  const out: bigint[] = [];
  for (const r of ranges) for (let p = 0n; p < BigInt(r.pageCount); p++) out.push(r.address / PAGE + p);
  return out;
}

/** The range of `sorted` (by address, not overlapping) that holds `pa`, by binary search. */
function rangeAt(sorted: readonly FfaMemRange[], pa: bigint): FfaMemRange | undefined {
  let lo = 0, hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = sorted[mid]!;
    if (pa < r.address) hi = mid - 1;
    else if (pa >= r.address + BigInt(r.pageCount) * PAGE) lo = mid + 1;
    else return r;
  }
  return undefined;
}

function error(code: FfaError): SendAnswer {
  return { kind: "error", error: code };
}
