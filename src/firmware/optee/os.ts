/**
 * A model of the OP-TEE trusted OS that speaks its real SMC and message ABI (optee_smc.h, optee_msg.h):
 * the fast calls, yielding calls served by a pool of threads (ETHREAD_LIMIT when all are busy), the
 * message protocol (open, invoke, close, cancel, register and unregister shared memory), dynamic shared
 * memory with non-contiguous page lists, RPC to the normal world (shared-memory allocate and free, foreign
 * interrupts, commands) and virtualization: client IDs in a7, VM_CREATED and VM_DESTROYED, a guest limit.
 *
 * Its only caller is the hypervisor (origin vmId 0): a guest's SMC traps to EL2, so only the hypervisor can
 * set a7, and with CFG_NS_VIRTUALIZATION OP-TEE believes a7 for that reason alone. A call that reaches it
 * from a VM (a guest's call forwarded as it was) is refused whatever its a7 says.
 *
 * It reads and writes normal-world memory only by physical address, through the NormalMemory port, as the
 * real OS does; it never sees a VM's addresses. Every access names the guest whose call it serves, so the
 * port can give it that guest's memory and nothing else.
 *
 * The same OS serves OP-TEE's FF-A ABI (thread_spmc.c) through OpteeFfaPartition (ffa.ts), behind the
 * SPMC: a guest made by the SPMC's VM_CREATED reaches it only that way (its ID is nothing to a7), its
 * message arguments and memrefs are regions it shared with OP-TEE (FFA_MEM_SHARE, named by global handle,
 * retrieved through the SPMC), and its RPCs are direct responses. A guest is of one ABI for its lifetime.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import { defaultCallsInFlight, OPTEE_DEFAULTS } from "../../smccc/optee/limits.js";
import {
  ATTR,
  ATTR_META,
  ATTR_NONCONTIG,
  MAX_PARAMS,
  MSG_CMD,
  MSG_HEADER_SIZE,
  NSEC_CAP_UNIPROCESSOR,
  OPTEE_MSG_REVISION,
  OPTEE_MSG_UID,
  OPTEE_OS_UUID,
  OPTEE_RET,
  OPTEE_RPC_FUNC,
  OPTEE_RPC_PREFIX,
  OPTEE_SMC,
  ORIGIN,
  PAGE_SIZE,
  PAGELIST_ENTRIES,
  RPC_CMD,
  SEC_CAP,
  TEEC,
} from "../../smccc/optee/abi.js";
import {
  encodeMsg,
  MSG_FUNC_OFFSET,
  MSG_NUM_PARAMS_OFFSET,
  MSG_RET_OFFSET,
  MSG_RET_ORIGIN_OFFSET,
  MSG_SESSION_OFFSET,
  MsgBuf,
  msgSize,
  PARAM_A,
  PARAM_ATTR,
  PARAM_B,
  PARAM_C,
  paramOffset,
  uuidFromBytes,
} from "../../smccc/optee/msg.js";
import type { RpcReply, RpcRequest, TaEnv, TaParam, TaParamType, TaResult, TrustedApp } from "./ta.js";
import { chacha20, type ChaCha20 } from "./chacha20.js";
import {
  FMEM_OFFS_HIGH,
  OPTEE_FFA,
  OPTEE_FFA_YIELDING_CALL_RETURN,
  OPTEE_MSG_FMEM_INVALID_GLOBAL_ID,
  RPC_ARG_SIZE as FFA_RPC_ARG_SIZE,
  TEE_ERROR_NOT_IMPLEMENTED,
  TEE_ERROR_SECURITY,
} from "./ffa-abi.js";
import { FFA_RET } from "../../smccc/ffa/abi.js";
import { FfaShmTable, type FfaMemoryPort, type FfaShm, type FfaUnregister } from "./ffa-shm.js";
import { pageRuns, piecesOf, readPieces, writePieces, type Piece, type Run } from "./pieces.js";

/**
 * Normal-world memory by physical address (VM RAM or the hypervisor's own pages), never secure memory.
 * `guest` is the client ID whose call the OS is serving: the memory a port gives for it is that guest's
 * own (its RAM, and the hypervisor's pages made for its calls), decided by who asks, not by which range an
 * address falls in first.
 */
export interface NormalMemory {
  read(pa: bigint, length: number, guest: number): Uint8Array | null;
  write(pa: bigint, data: Uint8Array, guest: number): boolean;
  /**
   * Optional: [pa, pa + length) in place, as OP-TEE maps normal-world memory (null when it cannot be viewed
   * in one piece; read and write serve then). The normal world may change it at any time.
   */
  view?(pa: bigint, length: number, guest: number): Uint8Array | null;
}

export interface OpteeOsOptions {
  readonly memory: NormalMemory;
  readonly tas: readonly TrustedApp<unknown>[];
  /** Threads serving yielding calls (CFG_NUM_THREADS). */
  readonly threads?: number;
  /** Normal-world guests the OS can hold at once (CFG_VIRT_GUEST_COUNT). */
  readonly maxGuests?: number;
  readonly random: (out: Uint8Array) => boolean;
  /** Registered pages per guest before REGISTER_SHM answers OUT_OF_MEMORY. */
  readonly maxPagesPerGuest?: number;
  /** Open sessions per guest before OPEN_SESSION answers OUT_OF_MEMORY (the guest's heap is full). */
  readonly maxSessionsPerGuest?: number;
  /**
   * Threads one FF-A guest may hold at once before its yielding calls get TEE_ERROR_BUSY (default: an equal
   * share, defaultCallsInFlight). Over the SMC ABI the OP-TEE mediator bounds each VM's calls in flight;
   * over FF-A nothing between the VM and OP-TEE knows OP-TEE's protocol, so the OS keeps a VM from taking
   * the threads another needs. Linux waits for one of its own calls to end and retries, as for a full pool.
   */
  readonly ffaThreadsPerGuest?: number;
  /**
   * The client ID of the VM a hypervisor call is made for (CallOrigin.onBehalfOf), when the hypervisor
   * knows one: such a call may name that guest in a7, or the hypervisor itself (a7 = 0), and no other.
   */
  readonly clientOf?: (vmName: string) => number | undefined;
  /** The host's ChaCha20 for TAs (the portable one by default; the results are the same). */
  readonly chacha20?: ChaCha20;
}

/** OS revision reported by CALL_GET_OS_REVISION. */
export const OS_REVISION = { major: 4, minor: 0, build: 0x5356 } as const;

/** Memref bytes one message may carry in all: what a TA may have mapped at once. */
export const MAX_MEMREF_BYTES = 64 << 20;

/** The RPC argument OP-TEE allocates for its commands: a header and four parameters (THREAD_RPC_MAX_NUM_PARAMS). */
const RPC_ARG_SIZE = msgSize(4);

interface ShmReg {
  readonly cookie: bigint;
  readonly pages: readonly bigint[];
  readonly offset: number;
  readonly size: number;
  /** The pages as runs of consecutive ones, found once at registration: a memref inside one run is one piece. */
  readonly runs: readonly Run[];
  /** Memref parameters of calls in progress that use it (optee_os: the mobj's references besides its own). */
  users: number;
  /** UNREGISTER_SHM waits for its last user (mobj_reg_shm_release_by_cookie: r->releasing). */
  releasing: boolean;
  /** Gone: its last user let it go after UNREGISTER_SHM (r->release_frees). */
  released: boolean;
}

interface Session {
  readonly ta: TrustedApp<unknown>;
  readonly state: unknown;
}

/**
 * An RPC argument: one the normal world allocated for us (RPC ALLOC, the SMC ABI: its cookie, whole and in
 * halves), or the one it placed after a call's argument (FF-A: cookie 0); and where it is.
 */
interface RpcBuffer {
  readonly cookie: bigint;
  readonly hi: number;
  readonly lo: number;
  readonly at: readonly Piece[];
}

/**
 * The ABI a guest reaches the OS through: the SMC ABI (the hypervisor's calls name it in a7) or FF-A (it
 * is the sender of the direct requests the SPMC delivers). A guest is one or the other, for its lifetime.
 */
export type GuestAbi = "smc" | "ffa";

interface Guest {
  readonly id: number;
  readonly abi: GuestAbi;
  /** Its normal-world memory: the platform's port (SMC ABI), or only the regions it shared with OP-TEE (FF-A). */
  readonly memory: NormalMemory;
  /** FF-A: the regions it shared with OP-TEE that the OS retrieved (null for an SMC-ABI guest). */
  readonly ffa: FfaShmTable | null;
  readonly sessions: Map<number, Session>;
  nextSession: number;
  readonly shm: Map<bigint, ShmReg>;
  /** RPC argument buffers the normal world allocated for us and we keep (the shm cache), by cookie. */
  readonly rpcCache: Map<bigint, RpcBuffer>;
  shmCacheEnabled: boolean;
  contentKey: Uint8Array | null;
  /** What its TAs' invocations get (made once: invocations run per call). */
  readonly env: TaEnv;
}

type ThreadStep =
  | { kind: "alloc-rpc-arg"; then: RpcRequest }
  | { kind: "cmd"; buffer: RpcBuffer; request: RpcRequest }
  | { kind: "preempt" }
  /** UNREGISTER_SHM of a buffer in use: the thread waits until the last user lets it go. */
  | { kind: "release-wait"; reg: ShmReg }
  /** The call is complete: its RPC argument goes back to the normal world (RPC FREE), then the thread ends. */
  | { kind: "free-arg" }
  /** An RPC argument the OS could not use goes back (RPC FREE); then the TA's request fails. */
  | { kind: "free-unusable"; request: RpcRequest };

interface Thread {
  readonly id: number;
  readonly abi: GuestAbi;
  guest: number;
  /** Where the message argument of the call this thread serves is (one piece for the SMC ABI). */
  argAt: readonly Piece[];
  /** FF-A: the region holding the argument, in use until the call completes (yielding_call_with_arg). */
  argShm: FfaShm | null;
  /** The thread's own copy of the argument (the slot's buffer, reused by the next call on the slot). */
  msg: MsgBuf;
  /** The TA invocation in progress, resumed when the normal world returns from RPC. */
  gen: Generator<RpcRequest, TaResult, RpcReply> | null;
  taParams: TaParam[];
  /** Per TA parameter: where a memref copied out of normal-world memory goes back (null: none, or in place). */
  pieces: (Piece[] | null)[];
  session: Session | null;
  step: ThreadStep | null;
  /**
   * The RPC argument this call's commands use: allocated (RPC ALLOC) or taken from the cache at its first
   * command and kept until the call completes (thread_optee_smc.c get_rpc_arg keeps thr->rpc_arg;
   * call_entry_std frees it once the call is done, or leaves it cached).
   */
  rpcArg: RpcBuffer | null;
  /** Registrations its memrefs use, let go when it completes (entry_std.c puts each parameter's mobj). */
  held: ShmReg[];
  /** FF-A regions its memrefs use, likewise. */
  ffaHeld: FfaShm[];
}

/** The RPC argument of OPTEE_RPC_CMD_GET_TIME as we send it: one VALUE_OUTPUT parameter, ret preset to GENERIC. */
const GET_TIME_ARG = encodeMsg({ cmd: RPC_CMD.GET_TIME, func: 0, session: 0, cancelId: 0, ret: TEEC.ERROR_GENERIC, retOrigin: 0, params: [{ attr: BigInt(ATTR.VALUE_OUTPUT), a: 0n, b: 0n, c: 0n }] });

const NO_BYTES = new Uint8Array(0);

export class OpteeOs implements CallTarget {
  readonly guests = new Map<number, Guest>();
  private readonly threads: (Thread | null)[];
  /** Each thread slot's message buffer, made once. */
  private readonly msgBufs: MsgBuf[] = [];
  /** Where the normal world's answer to an RPC command is copied before it is read. */
  private readonly rpcAnswer = new MsgBuf();
  private readonly maxGuests: number;
  private readonly maxPages: number;
  private readonly maxSessions: number;
  private readonly ffaThreadsPerGuest: number;
  private readonly tas = new Map<string, TrustedApp<unknown>>();
  /** Yielding calls answered ETHREAD_LIMIT, for tests and benchmarks. */
  threadLimitHits = 0;

  constructor(private readonly opts: OpteeOsOptions) {
    this.threads = new Array<Thread | null>(opts.threads ?? OPTEE_DEFAULTS.threads).fill(null);
    for (let i = 0; i < this.threads.length; i++) this.msgBufs.push(new MsgBuf());
    this.maxGuests = opts.maxGuests ?? OPTEE_DEFAULTS.maxGuests;
    this.maxPages = opts.maxPagesPerGuest ?? OPTEE_DEFAULTS.os.pagesPerGuest;
    this.maxSessions = opts.maxSessionsPerGuest ?? OPTEE_DEFAULTS.os.sessionsPerGuest;
    this.ffaThreadsPerGuest = opts.ffaThreadsPerGuest ?? defaultCallsInFlight(this.threads.length, this.maxGuests);
    for (const ta of opts.tas) this.tas.set(ta.uuid, ta);
  }

  /** Provisions the content key of a guest (the hypervisor does this at enable time, never a VM). */
  provisionKey(guest: number, key: Uint8Array): boolean {
    const g = this.guests.get(guest);
    if (!g || key.length !== 32) return false;
    g.contentKey = Uint8Array.from(key);
    return true;
  }

  /** What the OS holds for a guest, for teardown checks. */
  counters(guest: number): { sessions: number; threads: number; registrations: number; pages: number; rpcBuffers: number } {
    const g = this.guests.get(guest);
    const threads = this.threads.filter((t) => t !== null && t.guest === guest).length;
    if (!g) return { sessions: 0, threads, registrations: 0, pages: 0, rpcBuffers: 0 };
    // An FF-A guest's registrations are the regions the OS retrieved and holds (mobj_ffa).
    const registrations = g.ffa ? g.ffa.count : g.shm.size;
    return { sessions: g.sessions.size, threads, registrations, pages: g.ffa ? g.ffa.pages : this.pagesOf(g), rpcBuffers: g.rpcCache.size };
  }

  /** The guest `id` if it is one of the SMC ABI's: FF-A guests are not there for a7. */
  private smcGuest(id: number): Guest | undefined {
    const g = this.guests.get(id);
    return g?.abi === "smc" ? g : undefined;
  }

  get busyThreads(): number {
    return this.threads.filter((t) => t !== null).length;
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    // Who is calling comes from the path the call took, never from a register a guest can write: only the
    // hypervisor (origin vmId 0) reaches OP-TEE, and a7 is then the hypervisor's own word for which of its
    // guests a call is for. A VM's call that reached us some other way (forwarded as the guest made it)
    // carries the guest's a7 and the guest's addresses: OP-TEE is not there for it.
    if (origin.vmId !== 0) return res.ret(OPTEE_RET.UNKNOWN_FUNCTION);
    const fid = call.fid;
    const a7 = call.w(7);
    // thread_optee_smc.c: virt_set_guest((uint16_t)a7); the hypervisor is a7 == HYP_CLNT_ID (0), all 32 bits.
    const client = a7 === 0 ? 0 : a7 & 0xffff;
    // A call the hypervisor makes for VM X (its mediator's channel for X) speaks for X or for itself.
    const forVm = origin.onBehalfOf?.vmName;
    if (a7 !== 0 && forVm !== undefined && this.opts.clientOf !== undefined && this.opts.clientOf(forVm) !== client) return res.ret(OPTEE_RET.ENOTAVAIL);
    if ((fid & 0x8000_0000) !== 0) return this.fast(fid, a7, client, call, res);
    return this.yielding(fid, a7 === 0 ? -1 : client, call, res);
  }

  // --- fast calls -------------------------------------------------------------------------------------

  private fast(fid: number, a7: number, client: number, call: SmcCall, res: SmcResult): void {
    // With virtualization, only the hypervisor (a7 = 0) and created guests may call, whatever the call
    // (thread_optee_smc.c thread_handle_fast_smc: virt_set_guest fails and a7 != HYP_CLNT_ID → ENOTAVAIL).
    if (a7 !== 0 && !this.smcGuest(client)) return res.ret(OPTEE_RET.ENOTAVAIL);
    switch (fid) {
      case OPTEE_SMC.CALLS_COUNT:
        return res.ret(14);
      case OPTEE_SMC.CALLS_UID:
        return this.words(res, OPTEE_MSG_UID);
      case OPTEE_SMC.CALLS_REVISION:
        res.ret(OPTEE_MSG_REVISION.major);
        return res.set(1, OPTEE_MSG_REVISION.minor);
      case OPTEE_SMC.CALL_GET_OS_UUID:
        return this.words(res, OPTEE_OS_UUID);
      case OPTEE_SMC.CALL_GET_OS_REVISION:
        res.ret(OS_REVISION.major);
        res.set(1, OS_REVISION.minor);
        return res.set(2, OS_REVISION.build);
      case OPTEE_SMC.GET_SHM_CONFIG:
        // No reserved shared memory: everything is dynamic (registered) memory.
        return res.ret(OPTEE_RET.ENOTAVAIL);
      case OPTEE_SMC.EXCHANGE_CAPABILITIES:
        if ((call.w(1) & ~NSEC_CAP_UNIPROCESSOR) !== 0) return res.ret(OPTEE_RET.ENOTAVAIL);
        res.ret(OPTEE_RET.OK);
        // entry_fast.c tee_entry_exchange_capabilities: VIRTUALIZATION whenever CFG_NS_VIRTUALIZATION is
        // built in, whoever asks (a hypervisor's mediator decides what its guests see).
        res.set(1, SEC_CAP.DYNAMIC_SHM | SEC_CAP.VIRTUALIZATION | SEC_CAP.MEMREF_NULL);
        res.set(2, 0); // max notification value: no asynchronous notifications
        return res.set(3, 0); // RPC parameter count: no RPC_ARG, so the shm cache is used
      case OPTEE_SMC.DISABLE_SHM_CACHE:
        return this.disableShmCache(client, res);
      case OPTEE_SMC.ENABLE_SHM_CACHE: {
        const g = a7 === 0 ? undefined : this.smcGuest(client);
        if (!g) return res.ret(OPTEE_RET.ENOTAVAIL);
        if (this.threads.some((t) => t?.guest === client)) return res.ret(OPTEE_RET.EBUSY);
        g.shmCacheEnabled = true;
        return res.ret(OPTEE_RET.OK);
      }
      // entry_fast.c tee_entry_vm_created/destroyed: only the hypervisor (a7 == HYP_CLNT_ID), and the
      // guest ID is a1 as a uint16_t.
      case OPTEE_SMC.VM_CREATED:
        return res.ret(a7 !== 0 ? OPTEE_RET.ENOTAVAIL : this.vmCreated(call.w(1) & 0xffff, "smc", this.opts.memory, null) === TEEC.SUCCESS ? OPTEE_RET.OK : OPTEE_RET.ENOTAVAIL);
      case OPTEE_SMC.VM_DESTROYED:
        if (a7 !== 0) return res.ret(OPTEE_RET.ENOTAVAIL);
        // The SMC ABI's VM_DESTROYED ends SMC-ABI guests only: an FF-A guest's life is the SPMC's framework
        // messages' (ffaVmDestroyed), so a probe or a stale ID from the SMC side never ends it.
        if (this.smcGuest(call.w(1) & 0xffff)) this.vmDestroyed(call.w(1) & 0xffff);
        return res.ret(OPTEE_RET.OK);
      case OPTEE_SMC.GET_THREAD_COUNT:
        res.ret(OPTEE_RET.OK);
        return res.set(1, this.threads.length);
      case OPTEE_SMC.BOOT_SECONDARY:
        // entry_fast.c without CFG_BOOT_SECONDARY_REQUEST: every core is started by PSCI.
        return res.ret(OPTEE_RET.ENOTAVAIL);
    }
    res.ret(OPTEE_RET.UNKNOWN_FUNCTION);
  }

  private words(res: SmcResult, w: readonly number[]): void {
    for (let i = 0; i < 4; i++) res.set(i, w[i]!);
  }

  /**
   * A new guest (virt_guest_created): BAD_PARAMETERS for ID 0 (the hypervisor) or an ID that is a guest
   * already, through either ABI; OUT_OF_MEMORY when the OS holds as many guests as it can.
   */
  private vmCreated(id: number, abi: GuestAbi, memory: NormalMemory, ffa: FfaShmTable | null): number {
    if (id === 0 || this.guests.has(id)) return TEEC.ERROR_BAD_PARAMETERS;
    if (this.guests.size >= this.maxGuests) return TEEC.ERROR_OUT_OF_MEMORY;
    const g: Guest = { id, abi, memory, ffa, sessions: new Map(), nextSession: 1, shm: new Map(), rpcCache: new Map(), shmCacheEnabled: false, contentKey: null, env: this.env(id, () => g.contentKey, 0) };
    this.guests.set(id, g);
    return TEEC.SUCCESS;
  }

  /** Everything the guest had goes: sessions (their TAs are told), threads, registrations, cached buffers. */
  private vmDestroyed(id: number): void {
    const g = this.guests.get(id);
    this.threads.forEach((t, i) => {
      if (t?.guest === id) {
        t.gen?.return({ result: TEEC.ERROR_TARGET_DEAD });
        this.threads[i] = null;
      }
    });
    if (!g) return;
    for (const s of g.sessions.values()) s.ta.close(s.state);
    g.sessions.clear();
    g.shm.clear();
    g.rpcCache.clear();
    // Every region the guest shared goes back to the SPMC, so that it can be reclaimed.
    g.ffa?.clear();
    this.guests.delete(id);
  }

  private disableShmCache(client: number, res: SmcResult): void {
    const g = client === 0 ? undefined : this.smcGuest(client);
    if (!g) return res.ret(OPTEE_RET.ENOTAVAIL);
    if (this.threads.some((t) => t?.guest === client)) return res.ret(OPTEE_RET.EBUSY);
    g.shmCacheEnabled = false;
    // Hand back one cached buffer per call until none is left (optee_smc.h DISABLE_SHM_CACHE).
    for (const b of g.rpcCache.values()) {
      g.rpcCache.delete(b.cookie);
      res.ret(OPTEE_RET.OK);
      res.set(1, b.hi);
      return res.set(2, b.lo);
    }
    res.ret(OPTEE_RET.ENOTAVAIL);
  }

  // --- yielding calls ---------------------------------------------------------------------------------

  /** `client` is -1 for the hypervisor itself. */
  private yielding(fid: number, client: number, call: SmcCall, res: SmcResult): void {
    const g = this.smcGuest(client);
    // Yielding calls need a created guest: the hypervisor itself (a7 = 0) gets ENOTAVAIL too.
    if (!g) return res.ret(OPTEE_RET.ENOTAVAIL);
    if (fid === OPTEE_SMC.RETURN_FROM_RPC) return this.returnFromRpc(g, call, res);
    // Any other yielding call takes a thread first, then std_smc_entry refuses what is not CALL_WITH_ARG
    // (thread_optee_smc.c): EBADCMD, CALL_WITH_RPC_ARG and CALL_WITH_REGD_ARG included (no RPC_ARG capability).
    return this.callWithArg(g, fid, call.w(1), call.w(2), res);
  }

  private callWithArg(g: Guest, fid: number, argHi: number, argLo: number, res: SmcResult): void {
    const slot = this.threads.indexOf(null);
    if (slot < 0) {
      this.threadLimitHits++;
      return res.ret(OPTEE_RET.ETHREAD_LIMIT);
    }
    if (fid !== OPTEE_SMC.CALL_WITH_ARG) return res.ret(OPTEE_RET.EBADCMD);
    if ((argLo & 7) !== 0) return res.ret(OPTEE_RET.EBADADDR);
    const argPa = (BigInt(argHi) << 32n) | BigInt(argLo);
    // The thread copies the argument once: the header, then exactly the parameters it announces, and works
    // on its copy (num_params is read once, from the copy).
    const msg = this.msgBufs[slot]!;
    if (!readPieces(g.memory, g.id, [{ pa: argPa, length: MSG_HEADER_SIZE }], MSG_HEADER_SIZE, 0, msg.bytes)) return res.ret(OPTEE_RET.EBADADDR);
    const n = msg.u32(MSG_NUM_PARAMS_OFFSET);
    if (n > MAX_PARAMS) return res.ret(OPTEE_RET.EBADADDR);
    // The whole argument must be normal memory; only the parameters are copied this time.
    const argAt = [{ pa: argPa, length: msgSize(n) }];
    if (n > 0 && !readPieces(g.memory, g.id, argAt, msgSize(n), MSG_HEADER_SIZE, msg.bytes)) return res.ret(OPTEE_RET.EBADADDR);
    msg.numParams = n;
    // entry_std.c: a command it does not know is an SMC-level error; the message is left as it was.
    if (msg.cmd > MSG_CMD.UNREGISTER_SHM) return res.ret(OPTEE_RET.EBADCMD);
    const t = this.newThread(slot, "smc", g, argAt, null, null);
    this.run(g, t, null, res);
  }

  private newThread(slot: number, abi: GuestAbi, g: Guest, argAt: readonly Piece[], argShm: FfaShm | null, rpcArg: RpcBuffer | null): Thread {
    const t: Thread = { id: slot, abi, guest: g.id, argAt, argShm, msg: this.msgBufs[slot]!, gen: null, taParams: [], pieces: [], session: null, step: null, rpcArg, held: [], ffaHeld: [] };
    this.threads[slot] = t;
    return t;
  }

  // --- FF-A: OP-TEE's protocol over direct requests (thread_spmc.c) ----------------------------------

  /**
   * VM_CREATED from the SPMC (a framework message; thread_spmc.c handle_framework_direct_request →
   * virt_guest_created): a guest that reaches the OS over FF-A, whose memory is the regions it shares with
   * OP-TEE, through `port`. SUCCESS, BAD_PARAMETERS (ID 0, or already a guest through either ABI) or
   * OUT_OF_MEMORY (no room).
   */
  ffaVmCreated(id: number, port: FfaMemoryPort): number {
    const table = new FfaShmTable(id, port, this.maxPages);
    return this.vmCreated(id, "ffa", table.memory, table);
  }

  /** VM_DESTROYED from the SPMC: everything the FF-A guest had goes, its regions relinquished. */
  ffaVmDestroyed(id: number): void {
    if (this.guests.get(id)?.abi === "ffa") this.vmDestroyed(id);
  }

  /** Whether `id` is a guest of the FF-A ABI (virt_set_guest for a direct request's sender). */
  isFfaGuest(id: number): boolean {
    return this.guests.get(id)?.abi === "ffa";
  }

  /** OPTEE_FFA_UNREGISTER_SHM (handle_unregister_shm → mobj_ffa_unregister_by_cookie); null: no such FF-A guest. */
  ffaUnregisterShm(id: number, cookie: bigint): FfaUnregister | null {
    const g = this.guests.get(id);
    return g?.abi === "ffa" && g.ffa !== null ? g.ffa.unregister(cookie) : null;
  }

  /**
   * A yielding call that starts a thread (handle_yielding_call → thread_alloc_and_run): TEE_ERROR_BUSY in
   * w3 when no thread is free; then, for OPTEE_FFA_YIELDING_CALL_WITH_ARG (yielding_call_with_arg), the
   * argument at `offset` in the region `cookie` the guest shared, with the RPC argument right after it.
   * Any other service ends at once with FFA_DENIED in w3 (__thread_std_smc_entry). The answer is in `res`
   * w3-w7; the call holds the region until it completes.
   */
  ffaYieldingCall(id: number, service: number, cookie: bigint, offset: number, res: SmcResult): void {
    const g = this.guests.get(id);
    if (g?.abi !== "ffa" || g.ffa === null) return this.ffaAnswer(res, TEEC.ERROR_ITEM_NOT_FOUND);
    const slot = this.threads.indexOf(null);
    if (slot < 0 || this.threadsOf(id) >= this.ffaThreadsPerGuest) {
      this.threadLimitHits++;
      return this.ffaAnswer(res, TEEC.ERROR_BUSY);
    }
    if (service !== OPTEE_FFA.YIELDING_CALL_WITH_ARG) return this.ffaAnswer(res, FFA_RET.DENIED >>> 0);
    const shm = g.ffa.get(cookie, 0);
    if (!shm) return this.ffaAnswer(res, TEEC.ERROR_BAD_PARAMETERS);
    const status = this.ffaReadArg(g, shm, offset, this.msgBufs[slot]!);
    if (typeof status === "number") {
      g.ffa.put(shm);
      return this.ffaAnswer(res, status);
    }
    this.run(g, this.newThread(slot, "ffa", g, status.argAt, shm, { cookie: 0n, hi: 0, lo: 0, at: status.rpcAt }), null, res);
  }

  /**
   * The argument at `offset` of the region, copied once into `msg` (the header, then the parameters it
   * announces), and where it and the RPC argument after it are; a TEE result instead when they do not lie
   * inside the region or num_params is too large (BAD_PARAMETERS), or the command is one OP-TEE over FF-A
   * does not have (NOT_IMPLEMENTED: REGISTER_SHM and UNREGISTER_SHM are FF-A's own business there).
   */
  private ffaReadArg(g: Guest, shm: FfaShm, offset: number, msg: MsgBuf): { argAt: Piece[]; rpcAt: Piece[] } | number {
    const size = FfaShmTable.size(shm);
    const at = shm.pageOffset + offset;
    const header = offset + MSG_HEADER_SIZE <= size ? piecesOf(shm.runs, at, MSG_HEADER_SIZE) : null;
    if (header === null || !readPieces(g.memory, g.id, header, MSG_HEADER_SIZE, 0, msg.bytes)) return TEEC.ERROR_BAD_PARAMETERS;
    const n = msg.u32(MSG_NUM_PARAMS_OFFSET);
    if (n > MAX_PARAMS || offset + msgSize(n) + FFA_RPC_ARG_SIZE > size) return TEEC.ERROR_BAD_PARAMETERS;
    const argAt = piecesOf(shm.runs, at, msgSize(n));
    const rpcAt = piecesOf(shm.runs, at + msgSize(n), FFA_RPC_ARG_SIZE);
    if (argAt === null || rpcAt === null || (n > 0 && !readPieces(g.memory, g.id, argAt, msgSize(n), MSG_HEADER_SIZE, msg.bytes))) return TEEC.ERROR_BAD_PARAMETERS;
    msg.numParams = n;
    // entry_std.c __tee_entry_std with CFG_CORE_FFA: the message is left as it was.
    if (msg.cmd > MSG_CMD.CANCEL) return TEE_ERROR_NOT_IMPLEMENTED;
    return { argAt, rpcAt };
  }

  /**
   * OPTEE_FFA_YIELDING_CALL_RESUME (thread_resume_from_rpc): resumes the thread w7 names, which must be
   * this guest's and waiting for the normal world; TEE_ERROR_BAD_PARAMETERS in w3 otherwise.
   */
  ffaResume(id: number, thread: number, res: SmcResult): void {
    const g = this.guests.get(id);
    if (g?.abi !== "ffa") return this.ffaAnswer(res, TEEC.ERROR_ITEM_NOT_FOUND);
    const t = thread < this.threads.length ? this.threads[thread] : undefined;
    if (!t || t.guest !== g.id || t.step === null) return this.ffaAnswer(res, TEEC.ERROR_BAD_PARAMETERS);
    this.resume(g, t, null, res);
  }

  private threadsOf(guest: number): number {
    let n = 0;
    for (const t of this.threads) if (t?.guest === guest) n++;
    return n;
  }

  /** A yielding call's final answer over FF-A: w3 = status, w4 = OPTEE_FFA_YIELDING_CALL_RETURN_DONE. */
  private ffaAnswer(res: SmcResult, status: number): void {
    res.set(3, status);
    res.set(4, OPTEE_FFA_YIELDING_CALL_RETURN.DONE);
    res.set(5, 0);
    res.set(6, 0);
    res.set(7, 0);
  }

  /**
   * Runs a thread until it completes or needs the normal world. `reply` is the normal world's answer to
   * the RPC the thread was waiting for (null on the first run).
   */
  private run(g: Guest, t: Thread, reply: RpcReply | null, res: SmcResult): void {
    if (t.gen === null) {
      const outcome = this.start(g, t, t.msg, res);
      if (outcome === WAITING) return;
      if (outcome !== null) return this.complete(g, t, outcome, res);
    }
    const r = reply === null ? t.gen!.next() : t.gen!.next(reply);
    if (r.done) return this.complete(g, t, r.value, res);
    const req = r.value;
    if (req.kind === "preempt") {
      t.step = { kind: "preempt" };
      return this.rpc(t, res, OPTEE_RPC_FUNC.FOREIGN_INTR, 0, 0);
    }
    // A command for the normal world needs an RPC argument: the one this call already has (over FF-A, the
    // one after its argument), a cached one, or a new allocation.
    if (t.rpcArg !== null) return this.sendCommand(g, t, t.rpcArg, req, res);
    const cached = g.rpcCache.values().next();
    if (!cached.done) {
      g.rpcCache.delete(cached.value.cookie);
      t.rpcArg = cached.value;
      return this.sendCommand(g, t, cached.value, req, res);
    }
    t.step = { kind: "alloc-rpc-arg", then: req };
    return this.rpc(t, res, OPTEE_RPC_FUNC.ALLOC, RPC_ARG_SIZE, 0);
  }

  /**
   * Starts the work of a message; returns its result now if it needs no TA invocation, or WAITING when
   * the thread went to the normal world to wait (`res` holds that RPC).
   */
  private start(g: Guest, t: Thread, msg: MsgBuf, res: SmcResult): TaResult | null | typeof WAITING {
    const n = msg.numParams;
    switch (msg.cmd) {
      case MSG_CMD.OPEN_SESSION: {
        if (n < 2 || !(msg.lo(0, PARAM_ATTR) & ATTR_META) || !(msg.lo(1, PARAM_ATTR) & ATTR_META)) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
        // The TA's UUID: the 16 octets of value a and b of parameter 0, in string order (tee_uuid_from_octets).
        const ta = this.tas.get(uuidFromBytes(msg.bytes, paramOffset(0, PARAM_A)));
        if (!ta) return { result: TEEC.ERROR_ITEM_NOT_FOUND, origin: ORIGIN.TEE };
        // tee_ta_manager.c tee_ta_init_session: a session the guest's heap cannot hold is OUT_OF_MEMORY
        // from the TEE.
        if (g.sessions.size >= this.maxSessions) return { result: TEEC.ERROR_OUT_OF_MEMORY, origin: ORIGIN.TEE };
        const pieces: (Piece[] | null)[] = [];
        const held: ShmReg[] = [];
        const ffaHeld: FfaShm[] = [];
        const params = this.taParams(g, msg, 2, pieces, held, ffaHeld);
        if (typeof params === "number") {
          this.letGo(g, held, ffaHeld);
          return { result: params, origin: ORIGIN.TEE };
        }
        const opened = ta.open(params, this.env(g.id, g.env.contentKey, msg.lo(1, PARAM_C)));
        this.writeOutParams(g, msg, 2, params, pieces);
        this.letGo(g, held, ffaHeld);
        if (opened.result !== TEEC.SUCCESS) return { result: opened.result, origin: ORIGIN.TRUSTED_APP };
        // Session IDs are 32-bit and never 0: past 2^32 opens, one still open is not reused.
        let id = g.nextSession;
        while (id === 0 || g.sessions.has(id)) id = (id + 1) >>> 0;
        g.nextSession = (id + 1) >>> 0;
        g.sessions.set(id, { ta, state: opened.state });
        msg.setU32(MSG_SESSION_OFFSET, id);
        return { result: TEEC.SUCCESS, origin: ORIGIN.TRUSTED_APP };
      }
      case MSG_CMD.INVOKE_COMMAND: {
        const s = g.sessions.get(msg.u32(MSG_SESSION_OFFSET));
        if (!s) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
        const params = this.taParams(g, msg, 0, t.pieces, t.held, t.ffaHeld);
        if (typeof params === "number") return { result: params, origin: ORIGIN.TEE };
        t.taParams = params;
        t.session = s;
        t.gen = s.ta.invoke(s.state, msg.u32(MSG_FUNC_OFFSET), params, g.env);
        return null;
      }
      case MSG_CMD.CLOSE_SESSION: {
        const id = msg.u32(MSG_SESSION_OFFSET);
        const s = g.sessions.get(id);
        if (!s) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
        s.ta.close(s.state);
        g.sessions.delete(id);
        return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
      }
      case MSG_CMD.CANCEL:
        // Nothing the model runs can be cancelled mid-way: the request is acknowledged.
        return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
      case MSG_CMD.REGISTER_SHM:
        return this.registerShm(g, msg);
      case MSG_CMD.UNREGISTER_SHM:
        return this.unregisterShm(g, t, msg, res);
    }
    return { result: TEEC.ERROR_NOT_SUPPORTED, origin: ORIGIN.TEE }; // unreachable: callWithArg refused it
  }

  private registerShm(g: Guest, msg: MsgBuf): TaResult {
    const type = msg.numParams > 0 ? msg.type(0) : -1;
    if (msg.numParams !== 1 || (type !== ATTR.TMEM_INPUT && type !== ATTR.TMEM_OUTPUT && type !== ATTR.TMEM_INOUT) || !(msg.lo(0, PARAM_ATTR) & ATTR_NONCONTIG)) {
      return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
    }
    const cookie = msg.big(0, PARAM_C);
    if (g.shm.has(cookie)) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
    const size = msg.num(0, PARAM_B);
    const pages = this.readPageList(g.id, msg.big(0, PARAM_A), size, this.maxPages - this.pagesOf(g));
    if (typeof pages === "number") return { result: pages, origin: ORIGIN.TEE };
    g.shm.set(cookie, { cookie, pages, offset: msg.lo(0, PARAM_A) & 0xfff, size, runs: pageRuns(pages), users: 0, releasing: false, released: false });
    return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
  }

  /**
   * UNREGISTER_SHM (entry_std.c unregister_shm → mobj_reg_shm_release_by_cookie, core/mm/mobj_dyn_shm.c):
   * a cookie it does not know, or one already being released, is BAD_PARAMETERS; otherwise the buffer
   * goes, but only once its last user lets it go: until then the call waits, and a call that used it
   * still reads and writes its pages. optee_os sleeps on a condition variable (a wait queue, whose sleep is
   * an RPC to the normal world); the model waits by yielding to the normal world with a foreign-interrupt
   * RPC until the buffer is free, which the normal world sees the same way: UNREGISTER_SHM completes after
   * the last call that uses the buffer.
   */
  private unregisterShm(g: Guest, t: Thread, msg: MsgBuf, res: SmcResult): TaResult | typeof WAITING {
    const reg = msg.numParams >= 1 && msg.type(0) === ATTR.RMEM_INPUT ? g.shm.get(msg.big(0, PARAM_C)) : undefined;
    if (!reg || reg.releasing) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
    reg.releasing = true;
    if (reg.users === 0) {
      this.release(g, reg);
      return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
    }
    return this.waitForRelease(t, reg, res);
  }

  private waitForRelease(t: Thread, reg: ShmReg, res: SmcResult): typeof WAITING {
    t.step = { kind: "release-wait", reg };
    this.rpc(t, res, OPTEE_RPC_FUNC.FOREIGN_INTR, 0, 0);
    return WAITING;
  }

  /** The registration is gone (its pages no longer count against the guest). */
  private release(g: Guest, reg: ShmReg): void {
    reg.released = true;
    if (g.shm.get(reg.cookie) === reg) g.shm.delete(reg.cookie);
  }

  /** A call lets go of the registrations its memrefs used (mobj_put); the last user of one being unregistered frees it. */
  private letGo(g: Guest, held: ShmReg[], ffaHeld: FfaShm[]): void {
    for (const reg of held) if (--reg.users === 0 && reg.releasing) this.release(g, reg);
    held.length = 0;
    for (const shm of ffaHeld) g.ffa?.put(shm);
    ffaHeld.length = 0;
  }

  private pagesOf(g: Guest): number {
    let pages = 0;
    for (const r of g.shm.values()) pages += r.pages.length;
    return pages;
  }

  /** Reads a non-contiguous page list (optee_msg.h OPTEE_MSG_ATTR_NONCONTIG) covering `size` bytes. */
  private readPageList(guest: number, bufPtr: bigint, size: number, budget: number): bigint[] | number {
    const offset = Number(bufPtr & 0xfffn);
    const count = Math.ceil((offset + size) / PAGE_SIZE);
    if (size === 0 || count > budget) return size === 0 ? TEEC.ERROR_BAD_PARAMETERS : TEEC.ERROR_OUT_OF_MEMORY;
    const pages: bigint[] = [];
    let list = bufPtr & ~0xfffn;
    while (pages.length < count) {
      // Copied: each entry and the next pointer are read once, from the copy.
      const raw = this.guests.get(guest)?.memory.read(list, PAGE_SIZE, guest) ?? null;
      if (raw === null) return TEEC.ERROR_BAD_PARAMETERS;
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i < PAGELIST_ENTRIES && pages.length < count; i++) pages.push(dv.getBigUint64(8 * i, true));
      list = dv.getBigUint64(8 * PAGELIST_ENTRIES, true);
    }
    return pages;
  }

  private env(guest: number, contentKey: () => Uint8Array | null, login: number): TaEnv {
    return {
      client: { guest, login },
      random: (out) => this.opts.random(out),
      contentKey,
      chacha20: this.opts.chacha20 ?? chacha20,
    };
  }

  /**
   * Message parameters from `first` on to TA parameters. A TEEC error instead when a parameter is bad, or
   * when the memrefs together exceed what a TA may map (checked before anything is mapped or copied: 127
   * memrefs could otherwise name one large registration 127 times).
   *
   * A memref that lies in one physically contiguous piece of memory the OS can view reaches the TA in
   * place, as OP-TEE maps shared memory into a TA: no copy in, none back (its entry in `pieces` is null).
   * Otherwise its contents are copied into a buffer of the OS's own (inputs) and copied back when the call
   * completes (outputs), through the pieces recorded in `pieces`. Each registration an RMEM parameter
   * names is pushed on `held` with one more user, and each FF-A region an FMEM parameter names on
   * `ffaHeld`, until the caller lets them go (letGo).
   *
   * Over FF-A, types 5-7 are FMEM (a region the guest shared, by global handle) and there is no TMEM
   * (entry_std.c copy_in_params with CFG_CORE_FFA).
   */
  private taParams(g: Guest, msg: MsgBuf, first: number, pieces: (Piece[] | null)[], held: ShmReg[], ffaHeld: FfaShm[]): TaParam[] | number {
    const n = msg.numParams;
    let total = 0;
    for (let i = first; i < n; i++) {
      const type = msg.type(i);
      if (TYPE_NAMES[type] === undefined || (g.ffa !== null && type >= ATTR.TMEM_INPUT)) return TEEC.ERROR_BAD_PARAMETERS;
      if (type >= ATTR.RMEM_INPUT) total += msg.num(i, PARAM_B);
    }
    if (total > MAX_MEMREF_BYTES) return TEEC.ERROR_OUT_OF_MEMORY;
    const out: TaParam[] = [];
    for (let i = first; i < n; i++) {
      const type = msg.type(i);
      const kind = TYPE_NAMES[type]!;
      if (type < ATTR.RMEM_INPUT) {
        out.push({ type: kind, a: msg.lo(i, PARAM_A), b: msg.lo(i, PARAM_B), buffer: NO_BYTES, size: 0 });
        pieces.push(null);
        continue;
      }
      const size = msg.lo(i, PARAM_B); // at most MAX_MEMREF_BYTES: checked above
      // A null memref (MEMREF_NULL capability): no buffer, size 0 or a size query. Over FF-A it is the
      // invalid global ID with size 0 (set_fmem_param); the invalid ID with a size is not found.
      if (g.ffa === null ? type >= ATTR.TMEM_INPUT && msg.lo(i, PARAM_A) === 0 && msg.hi(i, PARAM_A) === 0 : msg.big(i, PARAM_C) === OPTEE_MSG_FMEM_INVALID_GLOBAL_ID && msg.num(i, PARAM_B) === 0) {
        out.push({ type: kind, a: 0, b: 0, buffer: NO_BYTES, size });
        pieces.push(null);
        continue;
      }
      const ps = g.ffa === null ? this.memrefPieces(g, type, msg, i, size, held) : this.fmemPieces(g.ffa, msg, i, size, ffaHeld);
      if (typeof ps === "number") return ps;
      const m = g.memory;
      let buffer = ps.length === 1 && m.view ? m.view(ps[0]!.pa, size, g.id) : null;
      if (buffer !== null && buffer.length === size) {
        pieces.push(null);
      } else {
        buffer = this.gather(g, ps, size, type === ATTR.RMEM_INPUT || type === ATTR.RMEM_INOUT || type === ATTR.TMEM_INPUT || type === ATTR.TMEM_INOUT);
        if (buffer === null) return TEEC.ERROR_BAD_PARAMETERS;
        pieces.push(ps);
      }
      out.push({ type: kind, a: 0, b: 0, buffer, size });
    }
    return out;
  }

  /**
   * A buffer of the OS's own for a memref it cannot map in place (pieces in several places, or memory it
   * cannot view): the contents copied in for an input, each piece once (viewed where it can be).
   */
  private gather(g: Guest, ps: readonly Piece[], size: number, input: boolean): Uint8Array | null {
    const buf = new Uint8Array(size);
    return !input || readPieces(g.memory, g.id, ps, size, 0, buf) ? buf : null;
  }

  /**
   * The physical pieces a memref covers: through a registration (RMEM, which it then holds) or directly
   * (TMEM); BAD_PARAMETERS when they are not there.
   */
  private memrefPieces(g: Guest, type: number, msg: MsgBuf, i: number, size: number, held: ShmReg[]): Piece[] | number {
    if (type <= ATTR.RMEM_INOUT) {
      const reg = g.shm.get(msg.big(i, PARAM_C));
      const offs = msg.num(i, PARAM_A);
      if (!reg || offs + size > reg.size) return TEEC.ERROR_BAD_PARAMETERS;
      // mobj_reg_shm_get_by_cookie takes a reference, also of a buffer being unregistered while it has users.
      reg.users++;
      held.push(reg);
      return piecesOf(reg.runs, reg.offset + offs, size) ?? TEEC.ERROR_BAD_PARAMETERS;
    }
    if (msg.lo(i, PARAM_ATTR) & ATTR_NONCONTIG) {
      const pages = this.readPageList(g.id, msg.big(i, PARAM_A), size, OPTEE_DEFAULTS.os.pagesPerGuest);
      return (typeof pages === "number" ? null : piecesOf(pageRuns(pages), msg.lo(i, PARAM_A) & 0xfff, size)) ?? TEEC.ERROR_BAD_PARAMETERS;
    }
    return [{ pa: msg.big(i, PARAM_A), length: size }];
  }

  /**
   * The pieces an FMEM parameter covers (entry_std.c set_fmem_param): the region `global_id`, retrieved
   * now if the OS does not hold it yet and held until the call is done (BAD_PARAMETERS when it is not the
   * guest's, or internal_offs does not fit it); offs_high:offs_low + size must lie inside it
   * (TEE_ERROR_SECURITY otherwise).
   */
  private fmemPieces(table: FfaShmTable, msg: MsgBuf, i: number, size: number, ffaHeld: FfaShm[]): Piece[] | number {
    // offs_high (u16) and internal_offs (u16, FMEM_INTERNAL_OFFS) in one little-endian word.
    const word = msg.u32(paramOffset(i, PARAM_A) + FMEM_OFFS_HIGH);
    const shm = table.get(msg.big(i, PARAM_C), word >>> 16);
    if (!shm) return TEEC.ERROR_BAD_PARAMETERS;
    // cleanup_shm_refs puts the mobj whatever happens after the get.
    ffaHeld.push(shm);
    const offs = (word & 0xffff) * 0x1_0000_0000 + msg.lo(i, PARAM_A);
    if (offs + size > FfaShmTable.size(shm)) return TEE_ERROR_SECURITY;
    return piecesOf(shm.runs, shm.pageOffset + offs, size) ?? TEEC.ERROR_BAD_PARAMETERS;
  }

  /** TA outputs back into the message and normal-world memory: values, memref contents not already in place, sizes. */
  private writeOutParams(g: Guest, msg: MsgBuf, first: number, ta: readonly TaParam[], pieces: readonly (Piece[] | null)[]): void {
    for (let i = first, k = 0; i < msg.numParams; i++, k++) {
      const tp = ta[k]!;
      const type = msg.type(i);
      if (type === ATTR.VALUE_OUTPUT || type === ATTR.VALUE_INOUT) {
        msg.set64(i, PARAM_A, tp.a >>> 0, 0);
        msg.set64(i, PARAM_B, tp.b >>> 0, 0);
      } else if (type === ATTR.RMEM_OUTPUT || type === ATTR.RMEM_INOUT || type === ATTR.TMEM_OUTPUT || type === ATTR.TMEM_INOUT) {
        const ps = pieces[k];
        // Written through the port (the memref could not be viewed in one piece when it was mapped).
        if (ps) writePieces(g.memory, g.id, ps, tp.buffer.subarray(0, Math.min(tp.size, tp.buffer.length)), false);
        msg.set64(i, PARAM_B, tp.size >>> 0, Math.floor(tp.size / 0x1_0000_0000) >>> 0);
      }
    }
  }

  /**
   * The call is done: results into the message (where the caller reads them), the registrations it used
   * let go, then its RPC argument goes back to the normal world (RPC FREE) unless the shm cache keeps it
   * (thread_optee_smc.c call_entry_std), and the thread ends. Over FF-A the RPC argument is the normal
   * world's, after the call's own, and the region holding both is let go (yielding_call_with_arg).
   */
  private complete(g: Guest, t: Thread, outcome: TaResult, res: SmcResult): void {
    const msg = t.msg;
    if (t.gen !== null) this.writeOutParams(g, msg, 0, t.taParams, t.pieces);
    msg.setU32(MSG_RET_OFFSET, outcome.result);
    msg.setU32(MSG_RET_ORIGIN_OFFSET, outcome.origin ?? ORIGIN.TRUSTED_APP);
    // The results go back where the argument came from: the caller reads them there.
    writePieces(g.memory, g.id, t.argAt, msg.used);
    this.letGo(g, t.held, t.ffaHeld);
    if (t.argShm !== null) {
      g.ffa?.put(t.argShm);
      t.argShm = null;
      t.rpcArg = null;
    }
    const arg = t.rpcArg;
    if (arg !== null) {
      t.rpcArg = null;
      if (!g.shmCacheEnabled) {
        t.step = { kind: "free-arg" };
        return this.rpc(t, res, OPTEE_RPC_FUNC.FREE, arg.hi, arg.lo);
      }
      g.rpcCache.set(arg.cookie, arg);
    }
    this.end(t, res);
  }

  private end(t: Thread, res: SmcResult): void {
    this.threads[t.id] = null;
    if (t.abi === "ffa") return this.ffaAnswer(res, TEEC.SUCCESS);
    res.ret(OPTEE_RET.OK);
  }

  /**
   * The thread goes to the normal world with an RPC. SMC ABI: a0 = the RPC function, a1/a2 its words, a3
   * the thread. FF-A: a direct response with w3 = 0, w4 = RETURN_RPC_CMD for a command in the RPC argument
   * (thread_rpc_cmd) or RETURN_INTERRUPT for the normal world's interrupts (thread_foreign_intr_exit), w7
   * the thread to resume; FF-A has no ALLOC or FREE of the RPC argument, which the normal world provides.
   */
  private rpc(t: Thread, res: SmcResult, func: number, a1: number, a2: number): void {
    if (t.abi === "ffa") {
      if (func !== OPTEE_RPC_FUNC.CMD && func !== OPTEE_RPC_FUNC.FOREIGN_INTR) throw new Error(`OP-TEE model: RPC ${func} has no FF-A form`);
      res.set(3, 0);
      res.set(4, func === OPTEE_RPC_FUNC.CMD ? OPTEE_FFA_YIELDING_CALL_RETURN.RPC_CMD : OPTEE_FFA_YIELDING_CALL_RETURN.INTERRUPT);
      res.set(5, 0);
      res.set(6, 0);
      return res.set(7, t.id);
    }
    res.ret((OPTEE_RPC_PREFIX | func) >>> 0);
    res.set(1, a1);
    res.set(2, a2);
    res.set(3, t.id);
  }

  private sendCommand(g: Guest, t: Thread, buffer: RpcBuffer, request: RpcRequest, res: SmcResult): void {
    if (!writePieces(g.memory, g.id, buffer.at, GET_TIME_ARG)) {
      // FF-A: the RPC argument is in the region the call holds, so only a region the OS may not write
      // (shared read-only) gets here; the TA's request fails.
      if (t.abi === "ffa") return this.run(g, t, { kind: "failed", result: TEEC.ERROR_COMMUNICATION }, res);
      // Memory the OS cannot use as an argument goes back to the normal world at once and the request
      // fails with OUT_OF_MEMORY (thread_optee_smc.c thread_rpc_alloc_arg: thread_rpc_free_arg, then NULL).
      t.rpcArg = null;
      t.step = { kind: "free-unusable", request };
      return this.rpc(t, res, OPTEE_RPC_FUNC.FREE, buffer.hi, buffer.lo);
    }
    t.step = { kind: "cmd", buffer, request };
    this.rpc(t, res, OPTEE_RPC_FUNC.CMD, buffer.hi, buffer.lo);
  }

  private returnFromRpc(g: Guest, call: SmcCall, res: SmcResult): void {
    const t = this.threads[call.w(3)];
    if (!t || t.guest !== g.id || t.step === null) return res.ret(OPTEE_RET.ERESUME);
    this.resume(g, t, call, res);
  }

  /** The normal world is back from the thread's RPC (`call`: its RETURN_FROM_RPC, null over FF-A). */
  private resume(g: Guest, t: Thread, call: SmcCall | null, res: SmcResult): void {
    const step = t.step!;
    t.step = null;
    switch (step.kind) {
      case "preempt":
        return this.run(g, t, RESUMED, res);
      case "release-wait":
        // The buffer's last user has let it go, or the thread waits on.
        return step.reg.released ? this.complete(g, t, { result: TEEC.SUCCESS, origin: ORIGIN.TEE }, res) : void this.waitForRelease(t, step.reg, res);
      case "free-arg":
        return this.end(t, res);
      case "free-unusable":
        return this.run(g, t, { kind: "failed", result: TEEC.ERROR_OUT_OF_MEMORY }, res);
      case "alloc-rpc-arg": {
        // Only the SMC ABI allocates RPC arguments (run()), so `call` is its RETURN_FROM_RPC.
        const pa = (BigInt(call!.w(1)) << 32n) | BigInt(call!.w(2));
        // The normal world could not allocate: the TA's request fails, the TA goes on.
        if (pa === 0n) return this.run(g, t, { kind: "failed", result: TEEC.ERROR_OUT_OF_MEMORY }, res);
        const hi = call!.w(4), lo = call!.w(5);
        t.rpcArg = { cookie: (BigInt(hi) << 32n) | BigInt(lo), hi, lo, at: [{ pa, length: RPC_ARG_SIZE }] };
        return this.sendCommand(g, t, t.rpcArg, step.then, res);
      }
      case "cmd": {
        // Copy first, then check: the normal world may still be writing the buffer. Only the one parameter
        // we sent is read back; num_params in the buffer is the normal world's to scribble on. The buffer
        // stays this call's for its next command (get_rpc_arg).
        const m = this.rpcAnswer;
        let reply: RpcReply;
        if (!readPieces(g.memory, g.id, step.buffer.at, RPC_ARG_SIZE, 0, m.bytes)) reply = { kind: "failed", result: TEEC.ERROR_COMMUNICATION };
        else {
          const ret = m.u32(MSG_RET_OFFSET);
          reply = ret === TEEC.SUCCESS ? { kind: "time", seconds: m.lo(0, PARAM_A), nanos: m.lo(0, PARAM_B) } : { kind: "failed", result: ret };
        }
        return this.run(g, t, reply, res);
      }
    }
  }
}

/** start(): the thread went to the normal world to wait; its RPC is in the result. */
const WAITING = Symbol("waiting");

const RESUMED: RpcReply = { kind: "resumed" };

/** TA parameter types by attribute type (attr bits 7:0); undefined for the types that do not exist. */
const TYPE_NAMES: readonly (TaParamType | undefined)[] = [
  "none", // NONE
  "value-in", // VALUE_INPUT
  "value-out", // VALUE_OUTPUT
  "value-inout", // VALUE_INOUT
  undefined,
  "memref-in", // RMEM_INPUT
  "memref-out", // RMEM_OUTPUT
  "memref-inout", // RMEM_INOUT
  undefined,
  "memref-in", // TMEM_INPUT
  "memref-out", // TMEM_OUTPUT
  "memref-inout", // TMEM_INOUT
];
