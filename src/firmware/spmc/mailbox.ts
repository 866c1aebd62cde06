/**
 * The hypervisor's RX/TX buffer pair as the SPMC sees it (DEN0077 v1.2, RX/TX buffers: FFA_RXTX_MAP/UNMAP,
 * FFA_RX_RELEASE): pages of the hypervisor's own memory (owner 0 at the memory port). The SPMC reads the
 * TX buffer only by copying it (the copy is what it checks and uses) and writes the RX buffer only while
 * the hypervisor does not own it; after a write the buffer is the hypervisor's until it releases it.
 */
import { FFA_ID_HYPERVISOR, FFA_PAGE_SIZE, FFA_RET } from "../../smccc/ffa/abi.js";
import type { SpmcMemory } from "./spmc.js";

/** FFA_RXTX_MAP w3: the page count in [5:0], [31:6] MBZ. */
const RXTX_PAGES_MASK = 0x3f;
const PAGE = BigInt(FFA_PAGE_SIZE);

interface Buffers {
  readonly tx: bigint;
  readonly rx: bigint;
  readonly pages: number;
}

export class SpmcMailbox {
  private buffers: Buffers | null = null;
  /** The hypervisor owns the RX buffer: the SPMC wrote it and it was not released yet. */
  private rxBusy = false;

  constructor(
    private readonly memory: SpmcMemory,
    private readonly maxPages: number,
  ) {}

  /** FFA_RXTX_MAP: both buffers page-aligned, apart, of 1..maxPages pages, and the hypervisor's own. */
  map(tx: bigint, rx: bigint, w3: number): number {
    if (this.buffers !== null) return FFA_RET.DENIED;
    const pages = w3 & RXTX_PAGES_MASK;
    if ((w3 & ~RXTX_PAGES_MASK) !== 0 || pages === 0 || pages > this.maxPages) return FFA_RET.INVALID_PARAMETERS;
    const size = BigInt(pages) * PAGE;
    if (tx % PAGE !== 0n || rx % PAGE !== 0n) return FFA_RET.INVALID_PARAMETERS;
    if (tx + size > 1n << 64n || rx + size > 1n << 64n) return FFA_RET.INVALID_PARAMETERS;
    if (tx < rx + size && rx < tx + size) return FFA_RET.INVALID_PARAMETERS;
    if (!this.owned(tx, pages) || !this.owned(rx, pages)) return FFA_RET.DENIED;
    this.buffers = { tx, rx, pages };
    this.rxBusy = false;
    return 0;
  }

  private owned(pa: bigint, pages: number): boolean {
    const m = this.memory;
    if (m.owns !== undefined) return m.owns(pa, pages * FFA_PAGE_SIZE, FFA_ID_HYPERVISOR);
    return m.read(pa, pages * FFA_PAGE_SIZE, FFA_ID_HYPERVISOR) !== null;
  }

  /** FFA_RXTX_UNMAP: w1[31:16] the endpoint whose buffers go, only the hypervisor's own (0); [15:0] MBZ. */
  unmap(w1: number): number {
    if (w1 !== 0 || this.buffers === null) return FFA_RET.INVALID_PARAMETERS;
    this.buffers = null;
    this.rxBusy = false;
    return 0;
  }

  /** FFA_RX_RELEASE: DENIED when there is nothing to release. */
  release(): number {
    if (this.buffers === null || !this.rxBusy) return FFA_RET.DENIED;
    this.rxBusy = false;
    return 0;
  }

  /** A copy of the first `length` bytes of the TX buffer, or the error for a buffer that cannot hold them. */
  readTx(length: number): Uint8Array | number {
    if (this.buffers === null) return FFA_RET.INVALID_PARAMETERS;
    if (length > this.buffers.pages * FFA_PAGE_SIZE) return FFA_RET.INVALID_PARAMETERS;
    return this.memory.read(this.buffers.tx, length, FFA_ID_HYPERVISOR) ?? FFA_RET.DENIED;
  }

  /** Writes `bytes` to the RX buffer and hands it to the hypervisor: BUSY while it still owns it. */
  deliver(bytes: Uint8Array): number {
    if (this.buffers === null) return FFA_RET.DENIED;
    if (this.rxBusy) return FFA_RET.BUSY;
    if (bytes.length > this.buffers.pages * FFA_PAGE_SIZE) return FFA_RET.NO_MEMORY;
    if (!this.memory.write(this.buffers.rx, bytes, FFA_ID_HYPERVISOR)) return FFA_RET.DENIED;
    this.rxBusy = true;
    return 0;
  }

  state(): { mapped: boolean; busy: boolean } {
    return { mapped: this.buffers !== null, busy: this.rxBusy };
  }
}
