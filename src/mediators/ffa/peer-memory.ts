/**
 * Memory shared or lent between peer VMs (DEN0077 v1.2 §10.3, §11): the mediator is the relayer, as a
 * hypervisor is for VM-only transactions, and no SPMC is involved. The lender's FFA_MEM_SHARE/LEND is
 * checked and translated by memory.ts; here a borrower retrieves it (FFA_MEM_RETRIEVE_REQ, the answer in its
 * RX buffer, FFA_MEM_RETRIEVE_RESP) and relinquishes it (FFA_MEM_RELINQUISH); the lender reclaims it once
 * no borrower holds it. Handles are the hypervisor's (bit 63 set) and known only to the lender and the
 * borrowers it names.
 *
 * The addresses a borrower is given are the platform's physical addresses of the lender's RAM: smcvisor
 * has no stage 2 to map them into the borrower (README: what the lead would wire for that).
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_MEM_ATTR, FFA_MEM_FLAG, FFA_MEM_PERM, FFA_MEM_RELINQUISH_FLAG, FFA_MEM_TRANSACTION, FFA_PAGE_SIZE, FFA_RET, FFA_VERSION_1_2 } from "../../smccc/ffa/abi.js";
import { decodeMemTransaction, decodeRelinquish, encodeMemTransaction, ffaDescriptorLayout, type FfaMemRange, type FfaMemTransaction } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { FfaMediator } from "./mediator.js";
import { ffaSuccess, type FfaVm, type Fragmented, reply, type RetrieveInfo, type Transaction } from "./vm.js";

const PAGE = BigInt(FFA_PAGE_SIZE);
/** A relinquish descriptor: 16 bytes, then one u16 per endpoint. */
const RELINQUISH_HEADER = 16;

export class PeerMemory {
  constructor(private readonly m: FfaMediator) {}

  /** A new transaction between peers: the hypervisor's handle, then FRAG_RX or the handle to the lender. */
  start(st: FfaVm, frag: Fragmented, tx: FfaMemTransaction, complete: boolean, res: SmcResult): void {
    const started: Fragmented = { ...frag, handle: this.m.memory.nextHandle() };
    this.m.memory.progress(st, started, res, complete ? this.info(st, tx) : null);
  }

  /** What a borrower is given: the lender's attributes and tag, each borrower's permissions, physical ranges (contiguous ones merged). */
  info(st: FfaVm, tx: FfaMemTransaction): RetrieveInfo {
    const ranges: FfaMemRange[] = [];
    for (const r of this.m.memory.translate(st, tx.ranges)) {
      const last = ranges[ranges.length - 1];
      if (last && last.address + BigInt(last.pageCount) * PAGE === r.address) ranges[ranges.length - 1] = { address: last.address, pageCount: last.pageCount + r.pageCount };
      else ranges.push(r);
    }
    return { attributes: tx.attributes, flags: tx.flags, tag: tx.tag, permissions: new Map(tx.receivers.map((r) => [r.receiver, r.permissions])), ranges };
  }

  /**
   * FFA_MEM_RETRIEVE_REQ (§11.3) from a borrower: a retrieve request in its TX buffer naming the lender,
   * the handle and itself; the answer, a transaction descriptor in the borrower's layout, goes into its RX
   * buffer, with the NS bit set for v1.1+ borrowers (the memory is non-secure: FFA_FEATURES says so). Asking
 * for more than the lender gave is DENIED; a handle it was not given, INVALID_PARAMETERS.
   */
  retrieve(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const m = this.m, total = call.w(1), length = call.w(2);
    if (call.x(3) !== 0n || call.w(4) !== 0) return m.refuse(st, res, FFA_RET.NOT_SUPPORTED, "retrieve request outside the TX buffer");
    if (!st.rxtx) return m.refuse(st, res, FFA_RET.DENIED, "retrieve request without RX/TX buffers");
    if (length === 0 || length !== total || length > st.rxtx.pages * FFA_PAGE_SIZE) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `retrieve request of ${length} of ${total} bytes`);
    const copy = m.host.memory(st.name)?.read(st.rxtx.tx, length);
    if (!copy) return m.refuse(st, res, FFA_RET.ABORTED, "TX buffer unreadable");
    const layout = ffaDescriptorLayout(st.version);
    const decoded = decodeMemTransaction(copy, layout, { composite: "none", maxReceivers: 1 });
    if (!decoded.ok) return m.refuse(st, res, decoded.error.ffaError, `retrieve request refused: ${decoded.error.kind} at ${decoded.error.field}`);
    const req = decoded.value;
    const lender = m.peer(st, req.sender);
    const tr = lender?.lent.get(req.handle);
    if (!lender || !tr || tr.toSp || !tr.retrieve || !tr.receivers.includes(st.id) || req.receivers[0]!.receiver !== st.id) {
      return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "retrieve request for a handle the VM was not given");
    }
    const info = tr.retrieve;
    const type = (req.flags & FFA_MEM_FLAG.TRANSACTION_TYPE_MASK) >>> FFA_MEM_FLAG.TRANSACTION_TYPE_SHIFT;
    const kind = tr.func === F.FFA_MEM_SHARE.smc32 ? FFA_MEM_TRANSACTION.SHARE : FFA_MEM_TRANSACTION.LEND;
    const mbz = st.version >= FFA_VERSION_1_2 ? FFA_MEM_FLAG.MBZ_RETRIEVE_V1_2 : FFA_MEM_FLAG.MBZ_RETRIEVE_V1_1;
    if ((req.flags & mbz) !== 0 || (type !== 0 && type !== kind) || req.tag !== info.tag) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `retrieve request flags 0x${req.flags.toString(16)} or tag`);
    const granted = info.permissions.get(st.id)!;
    const asked = req.receivers[0]!.permissions;
    const wantsWrite = (asked & FFA_MEM_PERM.DATA_MASK) === FFA_MEM_PERM.DATA_RW && (granted & FFA_MEM_PERM.DATA_MASK) !== FFA_MEM_PERM.DATA_RW;
    const wantsExec = (asked & FFA_MEM_PERM.INSTR_MASK) === FFA_MEM_PERM.INSTR_X && (granted & FFA_MEM_PERM.INSTR_MASK) !== FFA_MEM_PERM.INSTR_X;
    if (wantsWrite || wantsExec) return m.refuse(st, res, FFA_RET.DENIED, "retrieve request for more access than the lender gave");
    if (st.retrieved.has(tr.handle)) return m.refuse(st, res, FFA_RET.DENIED, "retrieve request for memory the VM already holds");
    if (st.retrieved.size >= m.limits.retrieved) return m.refuse(st, res, FFA_RET.NO_MEMORY, `more than ${m.limits.retrieved} retrieved transactions`);
    const permissions = (asked & FFA_MEM_PERM.DATA_MASK) === FFA_MEM_PERM.DATA_NOT_SPECIFIED ? granted : asked;
    const answer = encodeMemTransaction(
      { sender: lender.id, attributes: info.attributes | (layout !== "v1.0" ? FFA_MEM_ATTR.NS : 0), flags: kind << FFA_MEM_FLAG.TRANSACTION_TYPE_SHIFT, handle: tr.handle, tag: info.tag, receivers: [{ receiver: st.id, permissions, flags: 0 }], ranges: info.ranges },
      layout,
    );
    // A lend asked to be zeroed is zeroed once, before its first borrower sees it (§10.11.4, flags bit 0;
    // Hafnium clears it as the lend is made), never again at a later retrieve.
    const zero = (info.flags & FFA_MEM_FLAG.CLEAR) !== 0 && !this.zeroed.has(tr);
    const code = m.writeRx(st, answer);
    if (code !== 0) return m.refuse(st, res, code, "retrieve response does not go into the RX buffer");
    if (zero) {
      this.clear(lender, tr);
      this.zeroed.add(tr);
    }
    st.retrieved.set(tr.handle, lender.name);
    tr.retrievedBy.add(st.name);
    // w1: total length, w2: this fragment's (the whole: it fits the RX buffer).
    reply(res, F.FFA_MEM_RETRIEVE_RESP.smc32, answer.length, answer.length);
  }

  /** FFA_MEM_RELINQUISH (§11.5): the borrower gives back what it retrieved; the descriptor names only itself. */
  relinquish(st: FfaVm, res: SmcResult): void {
    const m = this.m;
    if (!st.rxtx) return m.refuse(st, res, FFA_RET.DENIED, "relinquish without RX/TX buffers");
    const copy = m.host.memory(st.name)?.read(st.rxtx.tx, RELINQUISH_HEADER + 2 * m.limits.receivers);
    if (!copy) return m.refuse(st, res, FFA_RET.ABORTED, "TX buffer unreadable");
    const decoded = decodeRelinquish(copy, m.limits.receivers);
    if (!decoded.ok) return m.refuse(st, res, decoded.error.ffaError, `relinquish descriptor refused: ${decoded.error.kind}`);
    const r = decoded.value;
    if (r.endpoints.length !== 1 || r.endpoints[0] !== st.id || (r.flags & FFA_MEM_RELINQUISH_FLAG.MBZ) !== 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "relinquish descriptor for another endpoint or with reserved flags");
    const lenderName = st.retrieved.get(r.handle);
    const lender = lenderName === undefined ? undefined : m.vm(lenderName);
    const tr = lender?.lent.get(r.handle);
    if (!lender || !tr) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "relinquish of memory the VM does not hold");
    if ((r.flags & FFA_MEM_RELINQUISH_FLAG.CLEAR) !== 0) {
      // Zeroing after relinquish is for lent memory only (a share's owner never lost it: Hafnium answers
      // INVALID_PARAMETERS), by a borrower that could write it and holds it alone: a read-only borrower, or
      // one of several, would wipe memory it could not write or another borrower still uses.
      if (tr.func !== F.FFA_MEM_LEND.smc32) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "relinquish of shared memory with the zero flag");
      const granted = tr.retrieve?.permissions.get(st.id) ?? 0;
      if ((granted & FFA_MEM_PERM.DATA_MASK) !== FFA_MEM_PERM.DATA_RW) return m.refuse(st, res, FFA_RET.DENIED, "relinquish with the zero flag of memory the VM may not write");
      if (tr.retrievedBy.size > 1 || tr.receivers.length > 1) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "relinquish with the zero flag of memory lent to several borrowers");
      this.clear(lender, tr);
    }
    st.retrieved.delete(r.handle);
    tr.retrievedBy.delete(st.name);
    ffaSuccess(res);
  }

  /** Lends with the zero flag already zeroed (at their first retrieve). */
  private readonly zeroed = new WeakSet<Transaction>();

  /** Zeroes a transaction's pages in the lender's RAM. */
  clear(lender: FfaVm, tr: Transaction): void {
    const mem = this.m.host.memory(lender.name);
    const zeros = new Uint8Array(FFA_PAGE_SIZE);
    for (const p of tr.pages) mem?.write(BigInt(p) * PAGE, zeros);
  }

  /** Destroy/reset of `st`: what it retrieved is given back, what it lent to peers is taken from them. */
  dropVm(st: FfaVm): void {
    for (const [handle, lenderName] of st.retrieved) this.m.vm(lenderName)?.lent.get(handle)?.retrievedBy.delete(st.name);
    st.retrieved.clear();
    for (const tr of st.lent.values()) {
      if (tr.toSp) continue;
      for (const borrower of tr.retrievedBy) this.m.vm(borrower)?.retrieved.delete(tr.handle);
      tr.retrievedBy.clear();
    }
  }
}
