/**
 * Memory management for VMs (DEN0077 v1.2 §10-11): FFA_MEM_SHARE and FFA_MEM_LEND with the descriptor in
 * the VM's TX buffer, fragments (FFA_MEM_FRAG_TX from the VM, FFA_MEM_FRAG_RX back), FFA_MEM_RECLAIM, and
 * for transactions between peer VMs, where the mediator is the relayer, FFA_MEM_RETRIEVE_REQ and
 * FFA_MEM_RELINQUISH (peer-memory.ts).
 *
 * A descriptor is copied out of the TX buffer once, into the mediator's own buffer, and only that copy is
 * checked (the shared codec, src/smccc/ffa/descriptors.ts), translated (IPA to PA, MediatorHost.ipaToPa:
 * one constituent per constituent, which ipaToPa guarantees is physically contiguous) and forwarded: a VM
 * rewriting its TX buffer meanwhile changes nothing. A transaction to partitions is written into the
 * hypervisor's TX buffer and sent to the SPMC, fragment by fragment as the VM's fragments arrive (the
 * handle Linux keeps is the one of the first FFA_MEM_FRAG_RX, so it must be the SPMC's); a fragment found
 * bad later aborts the whole transaction at the SPMC with FFA_MEM_RECLAIM, as Linux's pKVM does
 * (arch/arm64/kvm/hyp/nvhe/ffa.c, do_ffa_mem_frag_tx).
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_FEATURES_MEM, FFA_HANDLE_ALLOCATOR_HYPERVISOR, FFA_MEM_ACCESS_FLAG, FFA_MEM_ATTR, FFA_MEM_FLAG, FFA_MEM_PERM, FFA_MEM_RECLAIM_FLAG, FFA_PAGE_SIZE, FFA_RET, FFA_VERSION_1_1, ffaHandle, ffaHandleHi, ffaHandleLo, ffaIdIsSecure } from "../../smccc/ffa/abi.js";
import { decodeMemTransaction, encodeMemTransaction, FFA_COMPOSITE_SIZE, FFA_CONSTITUENT_SIZE, FFA_MEM_ACCESS_SIZE, FFA_MEM_HEADER_SIZE, ffaDescriptorLayout, type FfaMemRange, type FfaMemTransaction } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { constituentWellFormed, descriptorHead, firstFragmentAsWhole, readConstituents, setCompositeCounts, writeConstituents } from "./first-fragment.js";
import type { FfaMediator } from "./mediator.js";
import { PeerMemory } from "./peer-memory.js";
import { FFA_ERROR, ffaError, ffaSuccess, type FfaVm, type Fragmented, reply, type RetrieveInfo, type Transaction } from "./vm.js";

/** A region a partition still held when its lender went: reclaimed again at every destroy, reset and enable. */
export interface Stuck {
  readonly lender: string;
  readonly handle: bigint;
  readonly pages: readonly number[];
  tries: number;
}

const PAGE = BigInt(FFA_PAGE_SIZE);
const SMC64 = 0x4000_0000;

export class FfaMemory {
  readonly stuck: Stuck[] = [];
  readonly peers: PeerMemory;

  constructor(private readonly m: FfaMediator) {
    this.peers = new PeerMemory(m);
  }

  handles(fid: number): boolean {
    return this.offered(null, fid) !== undefined;
  }

  /** FFA_FEATURES for memory calls: properties, null (not offered), undefined (not a memory call). */
  offered(st: FfaVm | null, fid: number): number | null | undefined {
    const aarch32 = st?.aarch32 ?? false;
    switch (fid) {
      // w2 bit 0 clear: descriptors only in the TX buffer, no dynamically allocated buffers (§13.3).
      case F.FFA_MEM_SHARE.smc32:
      case F.FFA_MEM_LEND.smc32:
      case F.FFA_MEM_FRAG_TX.smc32:
      case F.FFA_MEM_RECLAIM.smc32:
      case F.FFA_MEM_RELINQUISH.smc32:
        return 0;
      case F.FFA_MEM_SHARE.smc64:
      case F.FFA_MEM_LEND.smc64:
        return aarch32 ? null : 0;
      // w2 bit 1 (v1.1+): retrieve responses carry the NS bit, the memory being non-secure (a v1.1 relayer
      // always sets it: the FF-A ACS's ffa_features_nsbit).
      case F.FFA_MEM_RETRIEVE_REQ.smc32:
        return this.nsBit(st);
      case F.FFA_MEM_RETRIEVE_REQ.smc64:
        return aarch32 ? null : this.nsBit(st);
      // A result (the answer to RETRIEVE_REQ): reported with it, as the FF-A ACS wants both or neither.
      case F.FFA_MEM_RETRIEVE_RESP.smc32:
        return 0;
      // Not offered: donation, retrieve responses in fragments, pausing (README).
      case F.FFA_MEM_DONATE.smc32:
      case F.FFA_MEM_DONATE.smc64:
      case F.FFA_MEM_FRAG_RX.smc32:
      case F.FFA_MEM_OP_PAUSE.smc32:
      case F.FFA_MEM_OP_RESUME.smc32:
        return null;
    }
    return undefined;
  }

  private nsBit(st: FfaVm | null): number {
    return st !== null && st.version >= FFA_VERSION_1_1 ? FFA_FEATURES_MEM.NS_BIT : 0;
  }

  handle(st: FfaVm, call: SmcCall, res: SmcResult): void {
    switch ((call.fid & ~SMC64) >>> 0) {
      case F.FFA_MEM_SHARE.smc32:
      case F.FFA_MEM_LEND.smc32:
        return this.send(st, call, res);
      case F.FFA_MEM_FRAG_TX.smc32:
        return this.fragTx(st, call, res);
      case F.FFA_MEM_RECLAIM.smc32:
        return this.reclaim(st, call, res);
      case F.FFA_MEM_RETRIEVE_REQ.smc32:
        return this.peers.retrieve(st, call, res);
      case F.FFA_MEM_RELINQUISH.smc32:
        return this.peers.relinquish(st, res);
    }
    ffaError(res, FFA_RET.NOT_SUPPORTED);
  }

  // ---------------------------------------------------------------------------------------------------
  // FFA_MEM_SHARE / FFA_MEM_LEND

  private send(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const m = this.m, func = (call.fid & ~SMC64) >>> 0;
    const total = call.w(1), length = call.w(2);
    // w3/w4: a buffer other than the TX buffer, which FFA_FEATURES says is not offered (Xen answers the same).
    if (call.x(3) !== 0n || call.w(4) !== 0) return m.refuse(st, res, FFA_RET.NOT_SUPPORTED, "memory descriptor outside the TX buffer");
    if (!st.rxtx) return m.refuse(st, res, FFA_RET.DENIED, "memory transaction without a TX buffer");
    if (st.fragmented) return m.refuse(st, res, FFA_RET.BUSY, "memory transaction while another one's fragments are arriving");
    if (length === 0 || length > total || length > st.rxtx.pages * FFA_PAGE_SIZE) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `descriptor fragment of ${length} of ${total} bytes`);
    if (total > m.limits.descriptorBytes) return m.refuse(st, res, FFA_RET.NO_MEMORY, `descriptor of ${total} bytes`);
    if (st.lent.size >= m.limits.transactions) return m.refuse(st, res, FFA_RET.NO_MEMORY, `more than ${m.limits.transactions} memory transactions`);
    // Copy first: the fragment, once, out of the TX buffer. Everything below reads the copy.
    const bytes = new Uint8Array(total);
    const fragment = m.host.memory(st.name)?.read(st.rxtx.tx, length);
    if (!fragment) return m.refuse(st, res, FFA_RET.ABORTED, "TX buffer unreadable");
    bytes.set(fragment);
    const layout = ffaDescriptorLayout(st.version);
    const head = descriptorHead(bytes, length, layout);
    if (!head || total !== head.constituents + head.rangeCount * FFA_CONSTITUENT_SIZE) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "descriptor whose composite is not in its first fragment, or whose length does not match it");
    // Fragments hold whole constituents, the first at least one (Linux's first fragment always does).
    const inFirst = (length - head.constituents) / FFA_CONSTITUENT_SIZE;
    if (!Number.isInteger(inFirst) || inFirst < 1) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "first fragment without whole constituents");
    const whole = length === total ? bytes : firstFragmentAsWhole(bytes, length, head);
    const decoded = decodeMemTransaction(whole, layout, { composite: "required", maxReceivers: m.limits.receivers });
    if (!decoded.ok) return m.refuse(st, res, decoded.error.ffaError, `descriptor refused: ${decoded.error.kind} at ${decoded.error.field}`);
    const tx = decoded.value;
    const meaning = this.checkMeaning(st, func, tx);
    if (typeof meaning === "string") return m.refuse(st, res, meaning === "peers-and-partitions" ? FFA_RET.NOT_SUPPORTED : FFA_RET.INVALID_PARAMETERS, meaning);
    const pages: number[] = [];
    const bad = this.takePages(st, tx.ranges, pages, head.totalPages);
    if (bad !== 0) return this.release(st, pages, res, bad, "pages refused");
    const frag: Fragmented = {
      handle: 0n, func, bytes, received: length, toSp: meaning.toSp,
      receivers: tx.receivers.map((r) => r.receiver), pages, spmcSent: 0, spmcTotal: 0,
    };
    if (!meaning.toSp) return this.peers.start(st, frag, tx, length === total, res);
    this.startAtSpmc(st, frag, tx, head.rangeCount, head.totalPages, res);
  }

  /**
   * What the descriptor means, checked against the VM: it is the sender; receivers are all partitions it
   * may use or all peers; permissions as §10.11.3 allows for share and lend; normal memory for a share;
   * no handle, no non-retrieval flag (the hypervisor's), flags only as the call allows.
   */
  private checkMeaning(st: FfaVm, func: number, tx: FfaMemTransaction): { toSp: boolean } | string {
    const share = func === F.FFA_MEM_SHARE.smc32;
    if (tx.sender !== st.id) return `descriptor with sender 0x${tx.sender.toString(16)}`;
    if (tx.handle !== 0n) return "descriptor with a handle";
    if ((tx.flags & FFA_MEM_FLAG.MBZ_SEND) !== 0 || (share && (tx.flags & FFA_MEM_FLAG.CLEAR) !== 0)) return `descriptor flags 0x${tx.flags.toString(16)}`;
    const type = tx.attributes & FFA_MEM_ATTR.TYPE_MASK;
    // A share names normal memory (Xen and Linux share normal write-back inner shareable); a lend may leave it to the borrower.
    if (type === FFA_MEM_ATTR.TYPE_DEVICE || (share && type !== FFA_MEM_ATTR.TYPE_NORMAL)) return `memory attributes 0x${tx.attributes.toString(16)}`;
    let sps = 0, peers = 0;
    for (const r of tx.receivers) {
      if ((r.flags & FFA_MEM_ACCESS_FLAG.NON_RETRIEVAL_BORROWER) !== 0) return "non-retrieval borrower flag";
      const data = r.permissions & FFA_MEM_PERM.DATA_MASK, instr = r.permissions & FFA_MEM_PERM.INSTR_MASK;
      if (data !== FFA_MEM_PERM.DATA_RO && data !== FFA_MEM_PERM.DATA_RW) return `permissions 0x${r.permissions.toString(16)} for 0x${r.receiver.toString(16)}`;
      // Executable only for one borrower of a lend (§10.11.3).
      if (instr === FFA_MEM_PERM.INSTR_X && (share || tx.receivers.length > 1)) return `executable permission for 0x${r.receiver.toString(16)}`;
      if (ffaIdIsSecure(r.receiver) && this.m.mayUsePartition(st, r.receiver)) sps++;
      else if (this.m.peer(st, r.receiver)) peers++;
      else return `receiver 0x${r.receiver.toString(16)}`;
    }
    if (sps > 0 && peers > 0) return "peers-and-partitions";
    return { toSp: sps > 0 };
  }

  /**
   * Checks constituents against the VM and reserves their pages: the VM's own RAM (ipaToPa: never secure
   * memory, another VM's RAM or the hypervisor's), no page in another of its transactions or in one a
   * partition still holds from before a reset, and at most the VM's page budget. Pages go into `pages` and
   * the VM's set as they are checked; 0, or the FFA_ERROR code (the caller releases `pages`).
   */
  private takePages(st: FfaVm, ranges: readonly FfaMemRange[], pages: number[], declared: number): number {
    // The budget is taken whole with the first fragment (the composite declares the total).
    const limit = this.m.limits.pages;
    if (pages.length === 0 && (declared > limit || st.pagesInUse.size + declared > limit)) return FFA_RET.NO_MEMORY;
    for (const r of ranges) {
      if (this.m.host.ipaToPa(st.name, r.address, BigInt(r.pageCount) * PAGE) === null) return FFA_RET.DENIED;
      if (pages.length + r.pageCount > declared) return FFA_RET.INVALID_PARAMETERS;
      const first = Number(r.address / PAGE);
      for (let p = first; p < first + r.pageCount; p++) {
        // Nor the VM's RX/TX buffers, which the mediator reads and writes (Hafnium refuses them too).
        if (st.pagesInUse.has(p) || this.stuckHolds(st.name, p) || this.inMailbox(st, p)) return FFA_RET.DENIED;
        st.pagesInUse.add(p);
        pages.push(p);
      }
    }
    return 0;
  }

  private inMailbox(st: FfaVm, page: number): boolean {
    const b = st.rxtx;
    if (!b) return false;
    const tx = Number(b.tx / PAGE), rx = Number(b.rx / PAGE);
    return (page >= tx && page < tx + b.pages) || (page >= rx && page < rx + b.pages);
  }

  private stuckHolds(vm: string, page: number): boolean {
    return this.stuck.some((s) => s.lender === vm && s.pages.includes(page));
  }

  /** Gives back pages reserved by a refused call and answers the refusal. */
  private release(st: FfaVm, pages: readonly number[], res: SmcResult, code: number, why: string): void {
    for (const p of pages) st.pagesInUse.delete(p);
    this.m.refuse(st, res, code, why);
  }

  /** Translates ranges to physical ones (one per range: ipaToPa answers only for physically contiguous RAM). */
  translate(st: FfaVm, ranges: readonly FfaMemRange[]): FfaMemRange[] {
    return ranges.map((r) => ({ address: this.m.host.ipaToPa(st.name, r.address, BigInt(r.pageCount) * PAGE)!, pageCount: r.pageCount }));
  }

  /** The first fragment of a transaction to partitions, in the SPMC's layout, sent; FRAG_RX or SUCCESS to the VM. */
  private startAtSpmc(st: FfaVm, frag: Fragmented, tx: FfaMemTransaction, rangeCount: number, totalPages: number, res: SmcResult): void {
    const layout = ffaDescriptorLayout(this.m.spmcVersion);
    const receivers = tx.receivers.map((r) => ({ receiver: r.receiver, permissions: r.permissions, flags: 0 }));
    const out = encodeMemTransaction({ ...tx, sender: st.id, handle: 0n, receivers, ranges: this.translate(st, tx.ranges) }, layout);
    const composite = FFA_MEM_HEADER_SIZE[layout] + receivers.length * FFA_MEM_ACCESS_SIZE[layout];
    setCompositeCounts(out, composite, rangeCount, totalPages);
    const started = { ...frag, spmcTotal: composite + FFA_COMPOSITE_SIZE + rangeCount * FFA_CONSTITUENT_SIZE };
    const sent = this.toSpmc(st, started, out, true);
    if (typeof sent === "number") return this.release(st, frag.pages, res, sent, `the SPMC refused the transaction (${sent})`);
    this.progress(st, { ...started, handle: sent.handle }, res);
  }

  /**
   * Sends `bytes` (the next part of the SPMC-layout descriptor) through the hypervisor's TX buffer, one
   * page at a time: the transaction call first, then FFA_MEM_FRAG_TX (w4: the sender's ID, [31:16]). The
   * SPMC answers FFA_MEM_FRAG_RX with the offset it has, until the last byte, then FFA_SUCCESS with the
   * handle. The handle, or the FFA_ERROR code (the SPMC then holds nothing of it).
   */
  private toSpmc(st: FfaVm, frag: Fragmented, bytes: Uint8Array, first: boolean): { handle: bigint } | number {
    const port = st.port, heap = this.m.host.heap;
    let handle = frag.handle;
    for (let at = 0; at < bytes.length; ) {
      const n = Math.min(FFA_PAGE_SIZE, bytes.length - at);
      if (!heap.write(this.m.hypTx, bytes.subarray(at, at + n))) return FFA_RET.ABORTED;
      if (first && at === 0) port.call(frag.func, frag.spmcTotal, n, 0, 0);
      else port.call(F.FFA_MEM_FRAG_TX.smc32, ffaHandleLo(handle), ffaHandleHi(handle), n, (st.id << 16) >>> 0);
      at += n;
      frag.spmcSent += n;
      const r0 = port.w(0);
      if (r0 === FFA_ERROR) return port.sw(2);
      if (r0 === F.FFA_MEM_FRAG_RX.smc32 && port.w(3) === frag.spmcSent) handle = ffaHandle(port.w(1), port.w(2));
      else if ((r0 === F.FFA_SUCCESS.smc32 || r0 === F.FFA_SUCCESS.smc64) && frag.spmcSent === frag.spmcTotal) handle = ffaHandle(port.w(2), port.w(3));
      else {
        if (handle !== 0n) this.reclaimAtSpmc(port, handle);
        return FFA_RET.ABORTED;
      }
    }
    return { handle };
  }

  private reclaimAtSpmc(port: FfaVm["port"], handle: bigint): number {
    port.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 0);
    return port.w(0) === FFA_ERROR ? port.sw(2) : 0;
  }

  /** After a fragment: FFA_MEM_FRAG_RX (more to come, w3 the bytes received) or the complete transaction's handle. */
  progress(st: FfaVm, frag: Fragmented, res: SmcResult, retrieve: RetrieveInfo | null = null): void {
    if (frag.received < frag.bytes.length) {
      st.fragmented = frag;
      return reply(res, F.FFA_MEM_FRAG_RX.smc32, ffaHandleLo(frag.handle), ffaHandleHi(frag.handle), frag.received);
    }
    st.fragmented = null;
    const tr: Transaction = { handle: frag.handle, func: frag.func, lender: st.name, receivers: frag.receivers, toSp: frag.toSp, pages: frag.pages, retrieve, retrievedBy: new Set() };
    st.lent.set(frag.handle, tr);
    ffaSuccess(res, ffaHandleLo(frag.handle), ffaHandleHi(frag.handle));
  }

  // ---------------------------------------------------------------------------------------------------
  // FFA_MEM_FRAG_TX

  /**
   * The next fragment (§12.3): for the VM's transaction in progress, whole constituents that continue it.
   * Anything else (no transaction, another handle, a length that does not fit) frees the partial
   * transaction and is INVALID_PARAMETERS.
   */
  private fragTx(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const m = this.m, frag = st.fragmented;
    const handle = ffaHandle(call.w(1), call.w(2)), length = call.w(3);
    if (!frag) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_MEM_FRAG_TX without a transaction in progress");
    const wrong = handle !== frag.handle ? "another handle" : call.w(4) !== 0 ? "a sender ID (the hypervisor's field)" : length === 0 || length % FFA_CONSTITUENT_SIZE !== 0 || length > frag.bytes.length - frag.received || length > st.rxtx!.pages * FFA_PAGE_SIZE ? `${length} bytes` : null;
    if (wrong) return this.abort(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_MEM_FRAG_TX with ${wrong}`);
    const fragment = m.host.memory(st.name)?.read(st.rxtx!.tx, length);
    if (!fragment) return this.abort(st, res, FFA_RET.ABORTED, "TX buffer unreadable");
    const from = frag.received;
    frag.bytes.set(fragment, from);
    for (let at = from; at < from + length; at += FFA_CONSTITUENT_SIZE) {
      if (!constituentWellFormed(frag.bytes, at)) return this.abort(st, res, FFA_RET.INVALID_PARAMETERS, "constituent refused");
    }
    const ranges = readConstituents(frag.bytes, from, from + length);
    const declared = descriptorHead(frag.bytes, frag.bytes.length, ffaDescriptorLayout(st.version))!.totalPages;
    const bad = this.takePages(st, ranges, frag.pages, declared);
    if (bad !== 0) return this.abort(st, res, bad, "pages refused");
    frag.received += length;
    let whole: ReturnType<typeof decodeMemTransaction> | null = null;
    if (frag.received === frag.bytes.length) {
      // Complete: the whole copy through the codec (page sum, overlaps across fragments) before the last part leaves.
      whole = decodeMemTransaction(frag.bytes, ffaDescriptorLayout(st.version), { composite: "required", maxReceivers: m.limits.receivers });
      if (!whole.ok) return this.abort(st, res, whole.error.ffaError, `descriptor refused: ${whole.error.kind} at ${whole.error.field}`);
    }
    if (!frag.toSp) return this.progress(st, frag, res, whole?.ok ? this.peers.info(st, whole.value) : null);
    const out = new Uint8Array(length);
    writeConstituents(out, 0, this.translate(st, ranges));
    const sent = this.toSpmc(st, frag, out, false);
    if (typeof sent === "number") return this.abort(st, res, sent, `the SPMC refused a fragment (${sent})`);
    this.progress(st, frag, res);
  }

  /** Frees the VM's partial transaction (at the SPMC too: FFA_MEM_RECLAIM of its handle, as pKVM aborts one). */
  abortFragmented(st: FfaVm): void {
    const frag = st.fragmented;
    if (!frag) return;
    st.fragmented = null;
    for (const p of frag.pages) st.pagesInUse.delete(p);
    if (frag.toSp && frag.handle !== 0n) this.reclaimAtSpmc(st.port, frag.handle);
  }

  private abort(st: FfaVm, res: SmcResult, code: number, why: string): void {
    this.abortFragmented(st);
    this.m.refuse(st, res, code, why);
  }

  // ---------------------------------------------------------------------------------------------------
  // FFA_MEM_RECLAIM and teardown

  /**
   * FFA_MEM_RECLAIM (§11.4): only the VM's own handles (another VM's is unknown here: INVALID_PARAMETERS,
   * as Xen answers); forwarded for partitions, which answer DENIED while they hold the region; for peers,
   * DENIED while a peer has it retrieved.
   */
  private reclaim(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const handle = ffaHandle(call.w(1), call.w(2)), flags = call.w(3);
    const tr = st.lent.get(handle);
    if (!tr) return this.m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_MEM_RECLAIM of an unknown handle`);
    if ((flags & FFA_MEM_RECLAIM_FLAG.MBZ) !== 0) return this.m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_MEM_RECLAIM flags 0x${flags.toString(16)}`);
    if (tr.toSp) {
      st.port.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), flags);
      if (st.port.w(0) === FFA_ERROR) return ffaError(res, st.port.sw(2));
    } else {
      if (tr.retrievedBy.size > 0) return this.m.refuse(st, res, FFA_RET.DENIED, "FFA_MEM_RECLAIM of memory a peer holds");
      // Zeroing at reclaim is for lent memory (a share's owner never lost it), as the SPMC answers for a
      // partition's share (after Hafnium ffa_memory_reclaim).
      if ((flags & FFA_MEM_RECLAIM_FLAG.CLEAR) !== 0) {
        if (tr.func !== F.FFA_MEM_LEND.smc32) return this.m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_MEM_RECLAIM of shared memory with the zero flag");
        this.peers.clear(st, tr);
      }
    }
    this.drop(st, tr);
    ffaSuccess(res);
  }

  drop(st: FfaVm, tr: Transaction): void {
    st.lent.delete(tr.handle);
    for (const p of tr.pages) st.pagesInUse.delete(p);
  }

  /** Destroy/reset: every transaction to partitions reclaimed; those a partition still holds are kept as stuck and reported. */
  reclaimAll(st: FfaVm): void {
    for (const tr of [...st.lent.values()]) {
      if (!tr.toSp) continue;
      const code = this.reclaimAtSpmc(st.port, tr.handle);
      this.drop(st, tr);
      // DENIED (a partition holds it) may pass: retried later. Any other error means the SPMC no longer
      // has the handle (it may drop a destroyed VM's transactions itself): nothing to retry (Xen
      // ffa_shm_domain_destroy treats DENIED alone as temporary).
      if (code === FFA_RET.DENIED || code === FFA_RET.RETRY || code === FFA_RET.BUSY) {
        this.stuck.push({ lender: st.name, handle: tr.handle, pages: tr.pages, tries: 1 });
        this.m.host.log(st.name, "ffa:stuck", `smcvisor: ffa mediator: ${st.name}: a partition still holds handle 0x${tr.handle.toString(16)} (${code}); retried at the next destroy, reset or enable`);
      }
    }
  }

  /** Reclaims again what partitions held (Xen retries on a timer, ffa_domain_teardown_continue). */
  retryStuck(): void {
    for (let i = this.stuck.length - 1; i >= 0; i--) {
      const s = this.stuck[i]!;
      if (this.reclaimAtSpmc(this.m.own, s.handle) === 0) this.stuck.splice(i, 1);
      else s.tries++;
    }
  }

  /** Destroy/reset: peer transactions as lender and borrower go, here only (no SPMC involved). */
  dropPeers(st: FfaVm): void {
    this.peers.dropVm(st);
    for (const tr of [...st.lent.values()]) if (!tr.toSp) this.drop(st, tr);
  }

  /** A hypervisor-allocated handle for a transaction between peers (bit 63 set, §10.9.2). */
  nextHandle(): bigint {
    return FFA_HANDLE_ALLOCATOR_HYPERVISOR | BigInt(++this.handles_);
  }
  private handles_ = 0;
}
