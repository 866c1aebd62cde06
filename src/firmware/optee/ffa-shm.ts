/**
 * The FF-A shared-memory objects OP-TEE holds for one guest (optee_os core/arch/arm/mm/mobj_ffa.c, with the
 * SPMC below OP-TEE: CFG_CORE_SEL1_SPMC=n). The normal world shares a region with OP-TEE's endpoint
 * (FFA_MEM_SHARE) and names it by its global handle (the cookie); OP-TEE retrieves it from the SPMC the
 * first time a call uses it (mobj_ffa_get_by_cookie → FFA_MEM_RETRIEVE_REQ), keeps it while calls use it
 * and after (inactive), and relinquishes it (FFA_MEM_RELINQUISH) only on OPTEE_FFA_UNREGISTER_SHM, when no
 * call uses it any more (mobj_ffa_unregister_by_cookie).
 *
 * The guest's memory port is built here too: it reaches only pages of regions this guest's table holds,
 * whatever physical address a caller computes, so a guest over FF-A reaches nothing it did not share.
 */
import { PAGE_SIZE } from "../../smccc/optee/abi.js";
import type { NormalMemory } from "./os.js";
import { rangeRuns, type Run } from "./pieces.js";

/** Physically consecutive pages of a retrieved region (a constituent of its composite descriptor). */
export interface FfaRange {
  readonly pa: bigint;
  readonly pages: number;
}

/** What a retrieve gives the OS: the region's ranges in order, and whether it may write them. */
export interface FfaRetrieved {
  readonly ranges: readonly FfaRange[];
  readonly writable: boolean;
}

/**
 * What the OS needs from the SPMC for a guest's FF-A memory (the partition adapts its context to this).
 * `guest` is the sender endpoint: the region must be one that guest shared with OP-TEE.
 */
export interface FfaMemoryPort {
  /** FFA_MEM_RETRIEVE_REQ of `handle`, which `guest` shared with OP-TEE; null when the SPMC refuses. */
  retrieve(guest: number, handle: bigint): FfaRetrieved | null;
  /** FFA_MEM_RELINQUISH: OP-TEE lets go of a region it retrieved. */
  relinquish(guest: number, handle: bigint): void;
  /** Retrieved memory by physical address (the SPMC checks it is memory the partition retrieved). */
  read(pa: bigint, length: number): Uint8Array | null;
  write(pa: bigint, data: Uint8Array): boolean;
  view?(pa: bigint, length: number): Uint8Array | null;
}

/** A retrieved region (struct mobj_ffa_shm). */
export interface FfaShm {
  readonly cookie: bigint;
  readonly pages: number;
  readonly runs: readonly Run[];
  readonly writable: boolean;
  /** Where in its first page the object starts (internal_offs of the get that activated it). */
  pageOffset: number;
  /** Calls using it (mobj refc); 0: inactive, kept until UNREGISTER_SHM. */
  users: number;
}

/** mobj_ffa_unregister_by_cookie's outcomes. */
export type FfaUnregister = "ok" | "not-found" | "busy";

export class FfaShmTable {
  private readonly objects = new Map<bigint, FfaShm>();
  private heldPages = 0;
  /** The guest's normal-world memory: pages of regions this table holds, nothing else. */
  readonly memory: NormalMemory;

  constructor(
    private readonly guest: number,
    private readonly port: FfaMemoryPort,
    private readonly maxPages: number,
  ) {
    this.memory = {
      read: (pa, length) => (this.covers(pa, length, false) ? port.read(pa, length) : null),
      write: (pa, data) => this.covers(pa, data.length, true) && port.write(pa, data),
      // In place only where the OS may write: a TA writes its output memrefs through the view.
      ...(port.view ? { view: (pa: bigint, length: number) => (this.covers(pa, length, true) ? port.view!(pa, length) : null) } : {}),
    };
  }

  get count(): number {
    return this.objects.size;
  }

  get pages(): number {
    return this.heldPages;
  }

  /** The object's size: its pages less where it starts in the first (mobj->size). */
  static size(shm: FfaShm): number {
    return shm.pages * PAGE_SIZE - shm.pageOffset;
  }

  /**
   * mobj_ffa_get_by_cookie: one more user of the region, retrieved now if the OS does not hold it yet;
   * null when the SPMC refuses, the internal offset is past the first page or differs from the one the
   * object is in use with, or the guest would hold more pages than it may (then it is relinquished again).
   */
  get(cookie: bigint, internalOffs: number): FfaShm | null {
    if (internalOffs >= PAGE_SIZE) return null;
    const held = this.objects.get(cookie);
    if (held) {
      if (held.users > 0 && held.pageOffset !== internalOffs) return null;
      held.pageOffset = internalOffs;
      held.users++;
      return held;
    }
    const r = this.port.retrieve(this.guest, cookie);
    if (r === null) return null;
    let pages = 0;
    for (const range of r.ranges) pages += range.pages;
    if (pages === 0 || this.heldPages + pages > this.maxPages) {
      this.port.relinquish(this.guest, cookie);
      return null;
    }
    const shm: FfaShm = { cookie, pages, runs: rangeRuns(r.ranges), writable: r.writable, pageOffset: internalOffs, users: 1 };
    this.objects.set(cookie, shm);
    this.heldPages += pages;
    return shm;
  }

  /** mobj_put: a call is done with it; it stays, inactive, until UNREGISTER_SHM. */
  put(shm: FfaShm): void {
    if (shm.users > 0) shm.users--;
  }

  /** OPTEE_FFA_UNREGISTER_SHM: busy while a call uses it; unknown (never used) is not an error to the caller. */
  unregister(cookie: bigint): FfaUnregister {
    const shm = this.objects.get(cookie);
    if (!shm) return "not-found";
    if (shm.users > 0) return "busy";
    this.drop(shm);
    return "ok";
  }

  /** The guest is gone: every region it shared goes back to the SPMC, whoever still used it. */
  clear(): void {
    for (const shm of [...this.objects.values()]) this.drop(shm);
  }

  private drop(shm: FfaShm): void {
    this.objects.delete(shm.cookie);
    this.heldPages -= shm.pages;
    this.port.relinquish(this.guest, shm.cookie);
  }

  /** Whether [pa, pa + length) lies in one run of a region the table holds (writable, for a write). */
  private covers(pa: bigint, length: number, write: boolean): boolean {
    const end = pa + BigInt(length);
    for (const shm of this.objects.values()) {
      if (write && !shm.writable) continue;
      for (const run of shm.runs) if (pa >= run.pa && end <= run.pa + BigInt(run.length)) return true;
    }
    return false;
  }
}
