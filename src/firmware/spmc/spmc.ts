/**
 * The modelled SPMC: the secure side of the physical FF-A instance (DEN0077 v1.2), serving the hypervisor
 * (endpoint 0) only, as an S-EL2 SPMC behind TF-A's SPMD serves the normal world's hypervisor. The
 * hypervisor speaks for its VMs: it names a VM as the sender of direct requests and memory transactions,
 * creates notification bitmaps for VMs and tells partitions of VMs created and destroyed.
 *
 * What it holds per VM is bounded (limits.ts) and visible (counters), so teardown can be checked to leave
 * nothing behind. Partitions (partition.ts) run synchronously inside the call that reaches them.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import {
  FFA_FRAMEWORK_MSG,
  FFA_ID_HYPERVISOR,
  FFA_ID_SPMC,
  FFA_MEM_TRANSACTION,
  FFA_MSG_FLAG_FRAMEWORK,
  FFA_MSG_FRAMEWORK_MBZ,
  FFA_MSG_TYPE_MASK,
  FFA_PARTITION_PROP,
  FFA_RET,
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  ffaEndpoints,
  ffaHandle,
  ffaHandleHi,
  ffaHandleLo,
  ffaIdIsSecure,
  ffaReceiverOf,
  ffaSenderOf,
  ffaVersionMajor,
  ffaVersionValid,
} from "../../smccc/ffa/abi.js";
import { ffaDescriptorLayout } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { ffaFeatures, offers } from "./features.js";
import { SPMC_DEFAULT_LIMITS, type SpmcLimits } from "./limits.js";
import { MemoryTransactions, type SendAnswer, type SendType } from "./memory-transactions.js";
import { notificationCall, type KnownVms } from "./notification-calls.js";
import { Notifications } from "./notifications.js";
import type { PartitionContext, SecurePartition } from "./partition.js";
import { PartitionDirectory } from "./partition-directory.js";
import { SpmcMailbox } from "./mailbox.js";
import { replyError, replyStatus, replySuccess } from "./replies.js";

/**
 * The SPMC's view of normal-world memory, by physical address, naming the FF-A endpoint that owns the
 * pages: 0 for the hypervisor's own (its RX/TX buffers, pages of its heap), a VM's endpoint ID for that
 * VM's RAM. The same shape as OP-TEE's NormalMemory (src/firmware/optee/os.ts): an access to pages the
 * named owner does not own fails (null / false), so the SPMC never reaches memory of an endpoint other than
 * the one a transaction names. The hypervisor layer provides it (the lead wires it in monitor.ts).
 */
export interface SpmcMemory {
  read(pa: bigint, length: number, owner: number): Uint8Array | null;
  write(pa: bigint, data: Uint8Array, owner: number): boolean;
  /** Optional: [pa, pa + length) in place (null when it cannot be viewed in one piece). */
  view?(pa: bigint, length: number, owner: number): Uint8Array | null;
  /** Optional: whether every page of [pa, pa + length) is `owner`'s; without it the SPMC reads the range. */
  owns?(pa: bigint, length: number, owner: number): boolean;
}

export interface SpmcPartitionEntry {
  readonly partition: SecurePartition;
  /** Endpoint IDs of the VMs that may message it and share memory with it (config `vms:`). */
  readonly vms: readonly number[];
}

export interface SpmcOptions {
  readonly memory: SpmcMemory;
  readonly partitions: readonly SpmcPartitionEntry[];
  readonly limits?: Partial<SpmcLimits>;
  /** The schedule receiver interrupt's ID (FEATURES(SRI)); Hafnium uses SGI 8. */
  readonly sriIntId?: number;
  /** Raised when a partition sets a notification for `vmId`: the normal world should ask INFO_GET. */
  readonly scheduleReceiver?: (vmId: number) => void;
}

/** The version this SPMC implements (FFA_VERSION's answer). */
export const SPMC_FFA_VERSION = FFA_VERSION_1_2;
export const SPMC_DEFAULT_SRI_INTID = 8;

export interface SpmcCounters {
  /** The SPMC knows the VM (VM_CREATED or NOTIFICATION_BITMAP_CREATE, not yet destroyed). */
  readonly known: boolean;
  /** Partitions told of the VM's creation and not yet of its destruction. */
  readonly partitions: number;
  readonly shares: number;
  readonly fragments: number;
  readonly pages: number;
  readonly retrieved: number;
  readonly bitmaps: number;
  readonly bindings: number;
  readonly pendingNotifications: number;
}

/** Framework response statuses that ask the hypervisor to send the message again (Xen ffa_direct_req_send_vm). */
const TRANSIENT: ReadonlySet<number> = new Set([FFA_RET.RETRY, FFA_RET.INTERRUPTED, FFA_RET.BUSY]);

/** The ID a VM has at the physical FF-A instance: 1-0x7FFF (0 is the hypervisor, bit 15 the secure world). */
function isVmId(id: number): boolean {
  return id !== FFA_ID_HYPERVISOR && !ffaIdIsSecure(id) && id <= 0xffff;
}

export class SpmcModel implements CallTarget {
  readonly limits: SpmcLimits;
  private readonly partitions: PartitionDirectory;
  private readonly mailbox: SpmcMailbox;
  private readonly transactions: MemoryTransactions;
  private readonly notifications: Notifications;
  /** VMs the hypervisor announced, and the partitions told of each. */
  private readonly vms = new Map<number, Set<number>>();
  private version = FFA_VERSION_1_0;
  /** Set by the first call other than FFA_VERSION: the negotiated version is final (as Xen 4.22 and Hafnium do). */
  private versionLocked = false;
  private readonly sriIntId: number;
  /** The VM table as notification calls see it. */
  private readonly knownVms: KnownVms;

  constructor(opts: SpmcOptions) {
    this.limits = { ...SPMC_DEFAULT_LIMITS, ...opts.limits };
    this.partitions = new PartitionDirectory(opts.partitions);
    this.mailbox = new SpmcMailbox(opts.memory, this.limits.maxRxTxPages);
    this.sriIntId = opts.sriIntId ?? SPMC_DEFAULT_SRI_INTID;
    const peers = { vmKnown: (vm: number) => this.vms.has(vm), partitionFor: (sp: number, vm: number) => this.partitions.peer(sp, vm) };
    this.transactions = new MemoryTransactions(opts.memory, this.limits, peers);
    this.notifications = new Notifications(this.limits.maxVms, peers.partitionFor, opts.scheduleReceiver ?? (() => {}));
    const vms = this.vms;
    this.knownVms = {
      has: (vm) => vms.has(vm),
      get size() {
        return vms.size;
      },
      add: (vm) => void vms.set(vm, new Set()),
      forgetIfIdle: (vm) => this.forgetIfIdle(vm),
    };
  }

  /** The FF-A version the hypervisor negotiated (1.0 until it calls FFA_VERSION). */
  get negotiatedVersion(): number {
    return this.version;
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    // Only the hypervisor reaches the SPMC: a VM's own FF-A call is not for this instance.
    if (origin.vmId !== FFA_ID_HYPERVISOR) return replyError(res, FFA_RET.NOT_SUPPORTED);
    const fid = call.fid >>> 0;
    if (fid === F.FFA_VERSION.smc32) return this.ffaVersion(call.w(1), res);
    this.versionLocked = true;
    if (!offers(fid, this.version)) return replyError(res, FFA_RET.NOT_SUPPORTED);
    this.dispatch(fid, call, res);
  }

  private dispatch(fid: number, call: SmcCall, res: SmcResult): void {
    switch (fid) {
      case F.FFA_FEATURES.smc32: {
        const f = ffaFeatures(call.w(1), this.version, this.limits, this.sriIntId);
        return typeof f === "number" ? replyError(res, f) : replySuccess(res, f.w2);
      }
      case F.FFA_ID_GET.smc32:
        return replySuccess(res, FFA_ID_HYPERVISOR);
      case F.FFA_SPM_ID_GET.smc32:
        return replySuccess(res, FFA_ID_SPMC);
      case F.FFA_RXTX_MAP.smc32:
      case F.FFA_RXTX_MAP.smc64:
        return replyStatus(res, this.mailbox.map(call.x(1), call.x(2), call.w(3)));
      case F.FFA_RXTX_UNMAP.smc32:
        return replyStatus(res, this.mailbox.unmap(call.w(1)));
      case F.FFA_RX_RELEASE.smc32:
        return replyStatus(res, this.rxRelease(call.w(1)));
      case F.FFA_PARTITION_INFO_GET.smc32:
        return this.partitionInfoGet(call, res);
      case F.FFA_PARTITION_INFO_GET_REGS.smc64:
        return this.partitions.infoGetRegs(call, res);
      case F.FFA_MSG_SEND_DIRECT_REQ.smc32:
      case F.FFA_MSG_SEND_DIRECT_REQ.smc64:
        return this.directReq(call, res, fid === F.FFA_MSG_SEND_DIRECT_REQ.smc64);
      case F.FFA_MSG_SEND_DIRECT_REQ2.smc64:
        return this.directReq2(call, res);
      case F.FFA_MEM_SHARE.smc32:
      case F.FFA_MEM_SHARE.smc64:
        return this.memSend(FFA_MEM_TRANSACTION.SHARE, call, res);
      case F.FFA_MEM_LEND.smc32:
      case F.FFA_MEM_LEND.smc64:
        return this.memSend(FFA_MEM_TRANSACTION.LEND, call, res);
      case F.FFA_MEM_FRAG_TX.smc32:
        return this.memFragTx(call, res);
      case F.FFA_MEM_RECLAIM.smc32:
        return this.memReclaim(call, res);
      case F.FFA_NOTIFICATION_SET.smc32:
        return this.notificationSet(call, res);
      default:
        return notificationCall(fid, call, res, this.notifications, this.knownVms);
    }
  }

  /**
   * FFA_NOTIFICATION_SET from the hypervisor for a VM (w1: the VM as sender [31:16], a partition as
   * receiver [15:0]; w2 flags; w3-w4 the bitmap). The receiver must be a partition the VM may use; a
   * notification it has not bound to that VM is DENIED (DEN0077 v1.1+, NOTIFICATION_SET). The partitions
   * of this model bind no notifications from VMs, so every well-formed SET is DENIED: the call exists,
   * as FFA_FEATURES says, and refuses what no receiver asked for.
   */
  private notificationSet(call: SmcCall, res: SmcResult): void {
    const w1 = call.w(1), sender = ffaSenderOf(w1), receiver = ffaReceiverOf(w1);
    if (!this.vms.has(sender) || !ffaIdIsSecure(receiver)) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const access = this.partitions.peer(receiver, sender);
    if (access !== "ok") return replyError(res, FFA_RET.INVALID_PARAMETERS);
    if (call.w(3) === 0 && call.w(4) === 0) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    return replyError(res, FFA_RET.DENIED);
  }

  // --- setup and discovery -----------------------------------------------------------------------------

  /**
   * FFA_VERSION: the SPMC's own version in w0 (not FFA_SUCCESS), or NOT_SUPPORTED for an input with
   * bit 31 set. The caller's version, when this SPMC can serve it (same major, minor up to ours), becomes
   * the negotiated one; after the first other call, a different version is NOT_SUPPORTED.
   */
  private ffaVersion(requested: number, res: SmcResult): void {
    if (!ffaVersionValid(requested)) return res.ret(FFA_RET.NOT_SUPPORTED);
    const served = ffaVersionMajor(requested) === ffaVersionMajor(SPMC_FFA_VERSION) ? Math.min(requested, SPMC_FFA_VERSION) : undefined;
    if (this.versionLocked) return res.ret(served === this.version ? SPMC_FFA_VERSION : FFA_RET.NOT_SUPPORTED);
    if (served !== undefined) this.version = served;
    res.ret(SPMC_FFA_VERSION);
  }

  /** FFA_RX_RELEASE: w1[15:0] is 0 or the VM the hypervisor releases for; either frees its RX buffer. */
  private rxRelease(w1: number): number {
    const vm = w1 & 0xffff;
    if ((w1 >>> 16) !== 0 || (vm !== FFA_ID_HYPERVISOR && !this.vms.has(vm))) return FFA_RET.INVALID_PARAMETERS;
    return this.mailbox.release();
  }

  /**
   * FFA_PARTITION_INFO_GET: w1-w4 a UUID (nil: all partitions), w5 bit 0 count only (v1.1+).
   * Descriptors go to the hypervisor's RX buffer in the negotiated version's layout; the buffer is then
   * the hypervisor's until FFA_RX_RELEASE.
   */
  private partitionInfoGet(call: SmcCall, res: SmcResult): void {
    const flags = call.w(5);
    const countOnly = (flags & 1) !== 0;
    if ((flags & ~1) !== 0 || (countOnly && this.version < FFA_VERSION_1_1)) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const uuid = [call.w(1), call.w(2), call.w(3), call.w(4)] as const;
    const found = this.partitions.find(uuid);
    // An unknown UUID is INVALID_PARAMETERS; the nil UUID asks for every partition, of which there may be none.
    const nil = uuid.every((w) => w === 0);
    if (found.length === 0 && !nil) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const size = this.partitions.infoSize(this.version);
    // With the count flag, w3 (the descriptor size) is MBZ (DEN0077 v1.1+, FFA_PARTITION_INFO_GET's
    // SUCCESS; Arm's FF-A ACS ffa_partition_info_get checks it).
    if (countOnly) return replySuccess(res, found.length, 0);
    // No partition at all: nothing goes into RX (which stays the caller's to fill).
    if (found.length === 0) return replySuccess(res, 0, this.version > FFA_VERSION_1_0 ? size : 0);
    const written = this.mailbox.deliver(this.partitions.encode(found, this.version));
    if (written !== 0) return replyError(res, written);
    // v1.0 has no size in w3 (Linux 6.1 reads w2 only); v1.1+ gives it.
    return replySuccess(res, found.length, this.version > FFA_VERSION_1_0 ? size : 0);
  }

  // --- direct messages ---------------------------------------------------------------------------------

  /** FFA_MSG_SEND_DIRECT_REQ_32/64: a VM's request to a partition, or a framework message. */
  private directReq(call: SmcCall, res: SmcResult, is64: boolean): void {
    const w1 = call.w(1), w2 = call.w(2);
    const sender = ffaSenderOf(w1), receiver = ffaReceiverOf(w1);
    // x1[63:32] MBZ (the endpoints are w1's).
    if (call.hi(1) !== 0) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    if ((w2 & FFA_MSG_FLAG_FRAMEWORK) !== 0) return this.frameworkMessage(call, res, is64);
    if (w2 !== 0) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const sp = this.messageTarget(sender, receiver, FFA_PARTITION_PROP.DIRECT_REQ_RECV);
    if (typeof sp === "number") return replyError(res, sp);
    const args = [3, 4, 5, 6, 7].map((n) => call.x(n));
    const r = this.run(sp, (ctx) => sp.directRequest(sender, args, is64, ctx));
    if (!r.ok) return replyError(res, r.error);
    const fid = is64 ? F.FFA_MSG_SEND_DIRECT_RESP.smc64 : F.FFA_MSG_SEND_DIRECT_RESP.smc32;
    res.set(0, fid);
    res.set(1, ffaEndpoints(receiver, sender));
    res.set(2, 0);
    for (let i = 0; i < 5; i++) res.setBig(3 + i, is64 ? (r.args[i] ?? 0n) : BigInt.asUintN(32, r.args[i] ?? 0n));
  }

  /** FFA_MSG_SEND_DIRECT_REQ2 (v1.2): x2-x3 the target's UUID (nil: any), payload x4-x17. */
  private directReq2(call: SmcCall, res: SmcResult): void {
    const w1 = call.w(1);
    const sender = ffaSenderOf(w1), receiver = ffaReceiverOf(w1);
    if (call.hi(1) !== 0) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const sp = this.messageTarget(sender, receiver, FFA_PARTITION_PROP.DIRECT_REQ2_RECV);
    if (typeof sp === "number") return replyError(res, sp);
    if (!this.partitions.uuidMatches(sp, call.x(2), call.x(3))) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const args: bigint[] = [];
    for (let n = 4; n <= 17; n++) args.push(call.x(n));
    const r = this.run(sp, (ctx) => sp.directRequest(sender, args, true, ctx));
    if (!r.ok) return replyError(res, r.error);
    res.set(0, F.FFA_MSG_SEND_DIRECT_RESP2.smc64);
    res.set(1, ffaEndpoints(receiver, sender));
    res.set(2, 0);
    res.set(3, 0);
    for (let i = 0; i < 14; i++) res.setBig(4 + i, r.args[i] ?? 0n);
  }

  /**
   * The partition a VM's message goes to: the sender a VM the SPMC knows, the receiver a partition
   * (INVALID_PARAMETERS otherwise) that takes this kind of message and lists the VM (DENIED otherwise).
   */
  private messageTarget(sender: number, receiver: number, property: number): SecurePartition | number {
    if (!isVmId(sender) || !this.vms.has(sender)) return FFA_RET.INVALID_PARAMETERS;
    const sp = this.partitions.get(receiver);
    if (sp === undefined) return FFA_RET.INVALID_PARAMETERS;
    if ((sp.properties & property) === 0) return FFA_RET.DENIED;
    if (this.partitions.peer(receiver, sender) !== "ok") return FFA_RET.DENIED;
    return sp;
  }

  /**
   * VM_CREATED / VM_DESTROYED (VM availability messages): from the hypervisor (sender 0) to a partition
   * that subscribed (properties bit 6 / 7), the VM's ID in w5; answered with the framework response, its
   * status in w3.
   */
  private frameworkMessage(call: SmcCall, res: SmcResult, is64: boolean): void {
    const w1 = call.w(1), w2 = call.w(2), w5 = call.w(5);
    const type = w2 & FFA_MSG_TYPE_MASK;
    const created = type === FFA_FRAMEWORK_MSG.VM_CREATED_REQ;
    if ((w2 & FFA_MSG_FRAMEWORK_MBZ) !== 0 || (!created && type !== FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ)) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    if (ffaSenderOf(w1) !== FFA_ID_HYPERVISOR || (w5 >>> 16) !== 0 || !isVmId(w5)) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const sp = this.partitions.get(ffaReceiverOf(w1));
    const wants = created ? FFA_PARTITION_PROP.VM_CREATED_MSG : FFA_PARTITION_PROP.VM_DESTROYED_MSG;
    if (sp === undefined || (sp.properties & wants) === 0) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const result = created ? this.vmCreated(sp, w5) : this.vmDestroyed(sp, w5);
    res.set(0, is64 ? F.FFA_MSG_SEND_DIRECT_RESP.smc64 : F.FFA_MSG_SEND_DIRECT_RESP.smc32);
    res.set(1, ffaEndpoints(sp.id, FFA_ID_HYPERVISOR));
    res.set(2, (FFA_MSG_FLAG_FRAMEWORK | (created ? FFA_FRAMEWORK_MSG.VM_CREATED_RESP : FFA_FRAMEWORK_MSG.VM_DESTROYED_RESP)) >>> 0);
    res.setWords(3, result >>> 0, 0);
  }

  private vmCreated(sp: SecurePartition, vm: number): number {
    const told = this.vms.get(vm);
    if (told?.has(sp.id)) return FFA_RET.INVALID_PARAMETERS;
    if (told === undefined && this.vms.size >= this.limits.maxVms) return FFA_RET.NO_MEMORY;
    const set = told ?? new Set<number>();
    this.vms.set(vm, set);
    const status = this.run(sp, (ctx) => sp.onVmCreated?.(vm, ctx) ?? 0);
    if (status === 0) set.add(sp.id);
    else this.forgetIfIdle(vm);
    return status;
  }

  /**
   * The partition forgets the VM (whatever of its memory it still holds, it holds no more); once no
   * partition that was told of the VM remains, the SPMC forgets it too: fragments in progress end, every
   * transaction no partition holds is reclaimed, its notification bitmap goes.
   */
  private vmDestroyed(sp: SecurePartition, vm: number): number {
    const told = this.vms.get(vm);
    if (told === undefined || !told.has(sp.id)) return FFA_RET.INVALID_PARAMETERS;
    const status = this.run(sp, (ctx) => sp.onVmDestroyed?.(vm, ctx) ?? 0);
    // A partition that cannot take the message now (Xen's hypervisor then sends it again) still knows the
    // VM; any other answer, failures included, ends the VM at this partition.
    if (TRANSIENT.has(status)) return status;
    this.transactions.releaseAll(sp.id, vm);
    told.delete(sp.id);
    if (told.size === 0) {
      this.transactions.forget(vm);
      this.notifications.forget(vm);
      this.vms.delete(vm);
    }
    return status;
  }

  /** A VM no partition was told of, with no bitmap and nothing shared, is not kept. */
  private forgetIfIdle(vm: number): void {
    const told = this.vms.get(vm);
    const c = this.transactions.counters(vm);
    if (told !== undefined && told.size === 0 && !this.notifications.has(vm) && c.shares + c.fragments === 0) this.vms.delete(vm);
  }

  /**
   * Runs partition `sp` with its context: what it may do while the SPMC runs it. The context ends with the
   * call (a partition that kept it gets DENIED, null and false afterwards).
   */
  private run<T>(sp: SecurePartition, f: (ctx: PartitionContext) => T): T {
    const t = this.transactions;
    let live = true;
    const ctx: PartitionContext = {
      self: sp.id,
      retrieve: (handle, o) => (live ? t.retrieve(sp.id, handle, o) : { ok: false, error: FFA_RET.DENIED }),
      relinquish: (handle) => (live ? t.relinquish(sp.id, handle) : FFA_RET.DENIED),
      read: (pa, length) => (live ? t.read(sp.id, pa, length) : null),
      write: (pa, data) => live && t.write(sp.id, pa, data),
      view: (pa, length) => (live ? t.view(sp.id, pa, length) : null),
      notificationSet: (vm, bits) => (live ? this.notifications.set(sp.id, vm, bits) : FFA_RET.DENIED),
    };
    try {
      return f(ctx);
    } finally {
      live = false;
    }
  }

  // --- memory management -------------------------------------------------------------------------------

  /**
   * FFA_MEM_SHARE / FFA_MEM_LEND relayed by the hypervisor: w1 total length, w2 this fragment's length,
   * x3/w4 a dynamically allocated buffer (unsupported: must be 0, as Hafnium answers INVALID_PARAMETERS),
   * the descriptor in the hypervisor's TX buffer with the VM as sender.
   */
  private memSend(type: SendType, call: SmcCall, res: SmcResult): void {
    const total = call.w(1), length = call.w(2);
    if (call.x(3) !== 0n || call.w(4) !== 0) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const fragment = this.mailbox.readTx(length);
    if (typeof fragment === "number") return replyError(res, fragment);
    this.sendAnswer(res, this.transactions.send(type, total, fragment, ffaDescriptorLayout(this.version)));
  }

  /** FFA_MEM_FRAG_TX: w1-w2 the handle, w3 the fragment's length, w4[31:16] the VM it is for. */
  private memFragTx(call: SmcCall, res: SmcResult): void {
    const handle = ffaHandle(call.w(1), call.w(2));
    const w4 = call.w(4);
    if ((w4 & 0xffff) !== 0) return replyError(res, FFA_RET.INVALID_PARAMETERS);
    const fragment = this.mailbox.readTx(call.w(3));
    // A fragment the TX buffer cannot hold ends the VM's transaction, as any bad fragment does.
    if (typeof fragment === "number") return replyError(res, this.transactions.abort(handle, w4 >>> 16) ? FFA_RET.INVALID_PARAMETERS : fragment);
    this.sendAnswer(res, this.transactions.fragment(handle, w4 >>> 16, fragment));
  }

  private sendAnswer(res: SmcResult, a: SendAnswer): void {
    if (a.kind === "error") return replyError(res, a.error);
    if (a.kind === "done") return replySuccess(res, ffaHandleLo(a.handle), ffaHandleHi(a.handle));
    // FFA_MEM_FRAG_RX: handle, bytes received so far, and in w4[31:16] the VM the hypervisor relays for
    // (Hafnium's ffa_frag_sender reads it there).
    res.set(0, F.FFA_MEM_FRAG_RX.smc32);
    res.set(1, ffaHandleLo(a.handle));
    res.set(2, ffaHandleHi(a.handle));
    res.set(3, a.received);
    res.set(4, (a.vm << 16) >>> 0);
  }

  /** FFA_MEM_RECLAIM: w1-w2 the handle, w3 flags. */
  private memReclaim(call: SmcCall, res: SmcResult): void {
    replyStatus(res, this.transactions.reclaim(ffaHandle(call.w(1), call.w(2)), call.w(3)));
  }

  // --- state -------------------------------------------------------------------------------------------

  /** What the SPMC holds for VM `vmId`: all zero (and not known) once the VM is gone. */
  counters(vmId: number): SpmcCounters {
    const t = this.transactions.counters(vmId);
    const n = this.notifications.counters(vmId);
    return {
      known: this.vms.has(vmId),
      partitions: this.vms.get(vmId)?.size ?? 0,
      shares: t.shares,
      fragments: t.fragments,
      pages: t.pages,
      retrieved: t.retrieved,
      bitmaps: n.bitmaps,
      bindings: n.bindings,
      pendingNotifications: n.pending,
    };
  }

  /** Whether the hypervisor's RX buffer is mapped, and whether it is the hypervisor's to read now. */
  rxState(): { mapped: boolean; busy: boolean } {
    return this.mailbox.state();
  }
}
