/**
 * A model of the OP-TEE trusted OS that speaks its real SMC and message ABI (optee_smc.h, optee_msg.h):
 * the fast calls, yielding calls served by a pool of threads (ETHREAD_LIMIT when all are busy), the
 * message protocol (open, invoke, close, cancel, register and unregister shared memory), dynamic shared
 * memory with non-contiguous page lists, RPC to the normal world (shared-memory allocate and free, foreign
 * interrupts, commands) and virtualization: client IDs in a7, VM_CREATED and VM_DESTROYED, a guest limit.
 *
 * It reads and writes normal-world memory only by physical address, through the NormalMemory port, as the
 * real OS does; it never sees a VM's addresses. The hypervisor's mediator is its only caller.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import {
  ATTR,
  ATTR_META,
  ATTR_NONCONTIG,
  ATTR_TYPE_MASK,
  MAX_PARAMS,
  MSG_CMD,
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
import { decodeMsg, encodeMsg, headerNumParams, msgSize, uuidFromValues, type MsgArg, type MsgParam } from "../../smccc/optee/msg.js";
import type { RpcReply, RpcRequest, TaEnv, TaParam, TaParamType, TaResult, TrustedApp } from "./ta.js";

/** Normal-world memory by physical address (VM RAM or the hypervisor's own pages), never secure memory. */
export interface NormalMemory {
  read(pa: bigint, length: number): Uint8Array | null;
  write(pa: bigint, data: Uint8Array): boolean;
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
}

/** OS revision reported by CALL_GET_OS_REVISION. */
export const OS_REVISION = { major: 4, minor: 0, build: 0x5356 } as const;

/** Memref bytes one message may carry in all: what a TA may have mapped at once. */
export const MAX_MEMREF_BYTES = 64 << 20;

/** The RPC argument OP-TEE allocates for its commands: a header and four parameters (THREAD_RPC_MAX_NUM_PARAMS). */
const RPC_ARG_SIZE = msgSize(4);

interface ShmReg {
  readonly pages: readonly bigint[];
  readonly offset: number;
  readonly size: bigint;
}

interface Session {
  readonly ta: TrustedApp<unknown>;
  readonly state: unknown;
}

interface Guest {
  readonly id: number;
  readonly sessions: Map<number, Session>;
  nextSession: number;
  readonly shm: Map<bigint, ShmReg>;
  /** RPC argument buffers the normal world allocated for us and we keep (the shm cache): cookie → PA. */
  readonly rpcCache: Map<bigint, bigint>;
  shmCacheEnabled: boolean;
  contentKey: Uint8Array | null;
}

type ThreadStep =
  | { kind: "alloc-rpc-arg"; then: RpcRequest }
  | { kind: "cmd"; cookie: bigint; pa: bigint; request: RpcRequest }
  | { kind: "free"; cookie: bigint; reply: RpcReply }
  | { kind: "preempt" };

interface Thread {
  readonly id: number;
  guest: number;
  /** PA of the message argument of the call this thread serves. */
  argPa: bigint;
  msg: MsgArg | null;
  /** The TA invocation in progress, resumed when the normal world returns from RPC. */
  gen: Generator<RpcRequest, TaResult, RpcReply> | null;
  taParams: TaParam[];
  session: Session | null;
  step: ThreadStep | null;
}

export class OpteeOs implements CallTarget {
  readonly guests = new Map<number, Guest>();
  private readonly threads: (Thread | null)[];
  private readonly maxGuests: number;
  private readonly maxPages: number;
  private readonly tas = new Map<string, TrustedApp<unknown>>();
  /** Yielding calls answered ETHREAD_LIMIT, for tests and benchmarks. */
  threadLimitHits = 0;

  constructor(private readonly opts: OpteeOsOptions) {
    this.threads = new Array<Thread | null>(opts.threads ?? 8).fill(null);
    this.maxGuests = opts.maxGuests ?? 4;
    this.maxPages = opts.maxPagesPerGuest ?? 16384;
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
    let pages = 0;
    for (const r of g.shm.values()) pages += r.pages.length;
    return { sessions: g.sessions.size, threads, registrations: g.shm.size, pages, rpcBuffers: g.rpcCache.size };
  }

  get busyThreads(): number {
    return this.threads.filter((t) => t !== null).length;
  }

  handle(call: SmcCall, res: SmcResult, _origin: CallOrigin): void {
    const fid = call.fid;
    const client = call.w(7) & 0xffff;
    if ((fid & 0x8000_0000) !== 0) return this.fast(fid, client, call, res);
    return this.yielding(fid, client, call, res);
  }

  // --- fast calls -------------------------------------------------------------------------------------

  private fast(fid: number, client: number, call: SmcCall, res: SmcResult): void {
    // With virtualization, only the hypervisor (client 0) and created guests may call, whatever the call
    // (thread_optee_smc.c thread_handle_fast_smc: virt_set_guest fails → ENOTAVAIL).
    if (client !== 0 && !this.guests.has(client)) return res.ret(OPTEE_RET.ENOTAVAIL);
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
        res.set(1, SEC_CAP.DYNAMIC_SHM | SEC_CAP.VIRTUALIZATION | SEC_CAP.MEMREF_NULL);
        res.set(2, 0); // max notification value: no asynchronous notifications
        return res.set(3, 0); // RPC parameter count: no RPC_ARG, so the shm cache is used
      case OPTEE_SMC.DISABLE_SHM_CACHE:
        return this.disableShmCache(client, res);
      case OPTEE_SMC.ENABLE_SHM_CACHE: {
        const g = this.guests.get(client);
        if (!g) return res.ret(OPTEE_RET.ENOTAVAIL);
        if (this.threads.some((t) => t?.guest === client)) return res.ret(OPTEE_RET.EBUSY);
        g.shmCacheEnabled = true;
        return res.ret(OPTEE_RET.OK);
      }
      case OPTEE_SMC.VM_CREATED:
        return res.ret(client !== 0 ? OPTEE_RET.ENOTAVAIL : this.vmCreated(call.w(1)));
      case OPTEE_SMC.VM_DESTROYED:
        if (client !== 0) return res.ret(OPTEE_RET.ENOTAVAIL);
        this.vmDestroyed(call.w(1));
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

  private vmCreated(id: number): number {
    if (id === 0 || this.guests.has(id) || this.guests.size >= this.maxGuests) return OPTEE_RET.ENOTAVAIL;
    this.guests.set(id, { id, sessions: new Map(), nextSession: 1, shm: new Map(), rpcCache: new Map(), shmCacheEnabled: false, contentKey: null });
    return OPTEE_RET.OK;
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
    this.guests.delete(id);
  }

  private disableShmCache(client: number, res: SmcResult): void {
    const g = this.guests.get(client);
    if (!g) return res.ret(OPTEE_RET.ENOTAVAIL);
    if (this.threads.some((t) => t?.guest === client)) return res.ret(OPTEE_RET.EBUSY);
    g.shmCacheEnabled = false;
    // Hand back one cached buffer per call until none is left (optee_smc.h DISABLE_SHM_CACHE).
    for (const [cookie] of g.rpcCache) {
      g.rpcCache.delete(cookie);
      res.ret(OPTEE_RET.OK);
      res.set(1, Number(cookie >> 32n));
      return res.set(2, Number(cookie & 0xffff_ffffn));
    }
    res.ret(OPTEE_RET.ENOTAVAIL);
  }

  // --- yielding calls ---------------------------------------------------------------------------------

  private yielding(fid: number, client: number, call: SmcCall, res: SmcResult): void {
    const g = this.guests.get(client);
    // Yielding calls need a created guest: the hypervisor itself (client 0) gets ENOTAVAIL too.
    if (!g) return res.ret(OPTEE_RET.ENOTAVAIL);
    if (fid === OPTEE_SMC.RETURN_FROM_RPC) return this.returnFromRpc(g, call, res);
    // Any other yielding call takes a thread first, then std_smc_entry refuses what is not CALL_WITH_ARG
    // (thread_optee_smc.c): EBADCMD, CALL_WITH_RPC_ARG and CALL_WITH_REGD_ARG included (no RPC_ARG capability).
    return this.callWithArg(g, fid, (BigInt(call.w(1)) << 32n) | BigInt(call.w(2)), res);
  }

  private callWithArg(g: Guest, fid: number, argPa: bigint, res: SmcResult): void {
    const slot = this.threads.indexOf(null);
    if (slot < 0) {
      this.threadLimitHits++;
      return res.ret(OPTEE_RET.ETHREAD_LIMIT);
    }
    if (fid !== OPTEE_SMC.CALL_WITH_ARG) return res.ret(OPTEE_RET.EBADCMD);
    const header = this.opts.memory.read(argPa, 32);
    if (header === null || (argPa & 7n) !== 0n) return res.ret(OPTEE_RET.EBADADDR);
    const n = headerNumParams(header);
    if (n > MAX_PARAMS) return res.ret(OPTEE_RET.EBADADDR);
    const bytes = this.opts.memory.read(argPa, msgSize(n));
    if (bytes === null) return res.ret(OPTEE_RET.EBADADDR);
    const msg = decodeMsg(bytes, n);
    // entry_std.c: a command it does not know is an SMC-level error; the message is left as it was.
    if (!KNOWN_CMDS.has(msg.cmd)) return res.ret(OPTEE_RET.EBADCMD);
    const t: Thread = { id: slot, guest: g.id, argPa, msg, gen: null, taParams: [], session: null, step: null };
    this.threads[slot] = t;
    this.run(g, t, null, res);
  }

  /**
   * Runs a thread until it completes or needs the normal world. `reply` is the normal world's answer to
   * the RPC the thread was waiting for (null on the first run).
   */
  private run(g: Guest, t: Thread, reply: RpcReply | null, res: SmcResult): void {
    const msg = t.msg!;
    if (t.gen === null) {
      const outcome = this.start(g, t, msg);
      if (outcome !== null) return this.finish(g, t, outcome, res);
    }
    const r = reply === null ? t.gen!.next() : t.gen!.next(reply);
    if (r.done) return this.finish(g, t, r.value, res);
    const req = r.value;
    if (req.kind === "preempt") {
      t.step = { kind: "preempt" };
      return this.rpc(res, OPTEE_RPC_FUNC.FOREIGN_INTR, 0, 0, t.id);
    }
    // A command for the normal world needs an RPC argument buffer: a cached one, or a new allocation.
    const cached = g.rpcCache.entries().next();
    if (!cached.done) {
      const [cookie, pa] = cached.value;
      g.rpcCache.delete(cookie);
      return this.sendCommand(t, cookie, pa, req, res);
    }
    t.step = { kind: "alloc-rpc-arg", then: req };
    return this.rpc(res, OPTEE_RPC_FUNC.ALLOC, RPC_ARG_SIZE, 0, t.id);
  }

  /** Starts the work of a message; returns its result now if it needs no TA invocation. */
  private start(g: Guest, t: Thread, msg: MsgArg): TaResult | null {
    switch (msg.cmd) {
      case MSG_CMD.OPEN_SESSION: {
        const [p0, p1] = msg.params;
        if (!p0 || !p1 || !(p0.attr & BigInt(ATTR_META)) || !(p1.attr & BigInt(ATTR_META))) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
        const ta = this.tas.get(uuidFromValues(p0.a, p0.b));
        if (!ta) return { result: TEEC.ERROR_ITEM_NOT_FOUND, origin: ORIGIN.TEE };
        const params = this.taParams(g, msg.params.slice(2));
        if (typeof params === "number") return { result: params, origin: ORIGIN.TEE };
        const opened = ta.open(params, this.env(g, Number(p1.c & 0xffff_ffffn)));
        this.writeOutParams(g, msg.params.slice(2), params);
        if (opened.result !== TEEC.SUCCESS) return { result: opened.result, origin: ORIGIN.TRUSTED_APP };
        const id = g.nextSession++;
        g.sessions.set(id, { ta, state: opened.state });
        msg.session = id;
        return { result: TEEC.SUCCESS, origin: ORIGIN.TRUSTED_APP };
      }
      case MSG_CMD.INVOKE_COMMAND: {
        const s = g.sessions.get(msg.session);
        if (!s) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
        const params = this.taParams(g, msg.params);
        if (typeof params === "number") return { result: params, origin: ORIGIN.TEE };
        t.taParams = params;
        t.session = s;
        t.gen = s.ta.invoke(s.state, msg.func, params, this.env(g, 0));
        return null;
      }
      case MSG_CMD.CLOSE_SESSION: {
        const s = g.sessions.get(msg.session);
        if (!s) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
        s.ta.close(s.state);
        g.sessions.delete(msg.session);
        return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
      }
      case MSG_CMD.CANCEL:
        // Nothing the model runs can be cancelled mid-way: the request is acknowledged.
        return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
      case MSG_CMD.REGISTER_SHM:
        return this.registerShm(g, msg);
      case MSG_CMD.UNREGISTER_SHM: {
        const p = msg.params[0];
        if (!p || Number(p.attr & BigInt(ATTR_TYPE_MASK)) !== ATTR.RMEM_INPUT || !g.shm.delete(p.c)) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
        return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
      }
    }
    return { result: TEEC.ERROR_NOT_SUPPORTED, origin: ORIGIN.TEE }; // unreachable: callWithArg refused it
  }

  private registerShm(g: Guest, msg: MsgArg): TaResult {
    const p = msg.params[0];
    const type = p ? Number(p.attr & BigInt(ATTR_TYPE_MASK)) : -1;
    if (!p || msg.params.length !== 1 || (type !== ATTR.TMEM_INPUT && type !== ATTR.TMEM_OUTPUT && type !== ATTR.TMEM_INOUT) || !(p.attr & BigInt(ATTR_NONCONTIG))) {
      return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
    }
    if (g.shm.has(p.c)) return { result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE };
    const pages = this.readPageList(p.a, p.b, this.maxPages - this.counters(g.id).pages);
    if (typeof pages === "number") return { result: pages, origin: ORIGIN.TEE };
    g.shm.set(p.c, { pages, offset: Number(p.a & 0xfffn), size: p.b });
    return { result: TEEC.SUCCESS, origin: ORIGIN.TEE };
  }

  /** Reads a non-contiguous page list (optee_msg.h OPTEE_MSG_ATTR_NONCONTIG) covering `size` bytes. */
  private readPageList(bufPtr: bigint, size: bigint, budget: number): bigint[] | number {
    const offset = bufPtr & 0xfffn;
    const count = Number((offset + size + BigInt(PAGE_SIZE - 1)) / BigInt(PAGE_SIZE));
    if (size === 0n || count > budget) return size === 0n ? TEEC.ERROR_BAD_PARAMETERS : TEEC.ERROR_OUT_OF_MEMORY;
    const pages: bigint[] = [];
    let list = bufPtr & ~0xfffn;
    while (pages.length < count) {
      const raw = this.opts.memory.read(list, PAGE_SIZE);
      if (raw === null) return TEEC.ERROR_BAD_PARAMETERS;
      const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      for (let i = 0; i < PAGELIST_ENTRIES && pages.length < count; i++) pages.push(dv.getBigUint64(8 * i, true));
      list = dv.getBigUint64(8 * PAGELIST_ENTRIES, true);
    }
    return pages;
  }

  private env(g: Guest, login: number): TaEnv {
    return {
      client: { guest: g.id, login },
      random: (out) => this.opts.random(out),
      contentKey: () => g.contentKey,
    };
  }

  /**
   * Message parameters to TA parameters, copying memref contents out of normal-world memory. A TEEC error
   * instead when a parameter is bad, or when the memrefs together exceed what a TA may map (checked before
   * anything is copied: 127 memrefs could otherwise name one large registration 127 times).
   */
  private taParams(g: Guest, params: readonly MsgParam[]): TaParam[] | number {
    let total = 0n;
    for (const p of params) {
      const kind = TYPE_NAMES[Number(p.attr & BigInt(ATTR_TYPE_MASK))];
      if (kind === undefined) return TEEC.ERROR_BAD_PARAMETERS;
      if (kind.startsWith("memref")) total += p.b;
    }
    if (total > BigInt(MAX_MEMREF_BYTES)) return TEEC.ERROR_OUT_OF_MEMORY;
    const out: TaParam[] = [];
    for (const p of params) {
      const type = Number(p.attr & BigInt(ATTR_TYPE_MASK));
      const kind = TYPE_NAMES[type]!;
      if (kind === "none" || kind.startsWith("value")) {
        out.push({ type: kind, a: Number(p.a & 0xffff_ffffn), b: Number(p.b & 0xffff_ffffn), buffer: new Uint8Array(0), size: 0 });
        continue;
      }
      const data = this.readMemref(g, type, p);
      if (data === null) return TEEC.ERROR_BAD_PARAMETERS;
      out.push({ type: kind, a: 0, b: 0, buffer: data, size: Number(p.b) });
    }
    return out;
  }

  private readMemref(g: Guest, type: number, p: MsgParam): Uint8Array | null {
    const size = Number(p.b);
    // A null memref (MEMREF_NULL capability): no buffer, size 0 or a size query.
    if (type >= ATTR.TMEM_INPUT && p.a === 0n) return new Uint8Array(0);
    const input = type === ATTR.RMEM_INPUT || type === ATTR.RMEM_INOUT || type === ATTR.TMEM_INPUT || type === ATTR.TMEM_INOUT;
    const ranges = this.memrefRanges(g, type, p);
    if (ranges === null) return null;
    const buf = new Uint8Array(size);
    if (input) {
      let off = 0;
      for (const [pa, len] of ranges) {
        const chunk = this.opts.memory.read(pa, len);
        if (chunk === null) return null;
        buf.set(chunk, off);
        off += len;
      }
    }
    return buf;
  }

  /** The physical ranges a memref covers: through a registration (RMEM) or directly (TMEM). */
  private memrefRanges(g: Guest, type: number, p: MsgParam): [bigint, number][] | null {
    const size = Number(p.b);
    if (type >= ATTR.RMEM_INPUT && type <= ATTR.RMEM_INOUT) {
      const reg = g.shm.get(p.c);
      if (!reg || p.a + p.b > reg.size) return null;
      return splitPages(reg.pages, reg.offset + Number(p.a), size);
    }
    if (p.attr & BigInt(ATTR_NONCONTIG)) {
      const pages = this.readPageList(p.a, p.b, 16384);
      return typeof pages === "number" ? null : splitPages(pages, Number(p.a & 0xfffn), size);
    }
    return [[p.a, size]];
  }

  /** TA outputs back into the message and normal-world memory: values, memref contents and sizes. */
  private writeOutParams(g: Guest, params: MsgParam[], ta: TaParam[]): void {
    params.forEach((p, i) => {
      const tp = ta[i]!;
      const type = Number(p.attr & BigInt(ATTR_TYPE_MASK));
      if (type === ATTR.VALUE_OUTPUT || type === ATTR.VALUE_INOUT) {
        p.a = BigInt(tp.a >>> 0);
        p.b = BigInt(tp.b >>> 0);
      } else if (type === ATTR.RMEM_OUTPUT || type === ATTR.RMEM_INOUT || type === ATTR.TMEM_OUTPUT || type === ATTR.TMEM_INOUT) {
        // Only a TMEM with address 0 is the null memref; an RMEM's `a` is an offset, and 0 is the usual one.
        const isNull = type >= ATTR.TMEM_INPUT && p.a === 0n;
        const ranges = isNull ? null : this.memrefRanges(g, type, p);
        const n = Math.min(tp.size, tp.buffer.length);
        if (ranges !== null) {
          let off = 0;
          for (const [pa, len] of ranges) {
            if (off >= n) break;
            const take = Math.min(len, n - off);
            this.opts.memory.write(pa, tp.buffer.subarray(off, off + take));
            off += take;
          }
        }
        p.b = BigInt(tp.size);
      }
    });
  }

  private finish(g: Guest, t: Thread, outcome: TaResult, res: SmcResult): void {
    const msg = t.msg!;
    if (t.gen !== null) this.writeOutParams(g, msg.params, t.taParams);
    msg.ret = outcome.result >>> 0;
    msg.retOrigin = outcome.origin ?? ORIGIN.TRUSTED_APP;
    // The results go back where the argument came from: the caller reads them there.
    this.opts.memory.write(t.argPa, encodeMsg(msg));
    this.threads[t.id] = null;
    res.ret(OPTEE_RET.OK);
  }

  private rpc(res: SmcResult, func: number, a1: number, a2: number, thread: number): void {
    res.ret((OPTEE_RPC_PREFIX | func) >>> 0);
    res.set(1, a1);
    res.set(2, a2);
    res.set(3, thread);
  }

  private sendCommand(t: Thread, cookie: bigint, pa: bigint, request: RpcRequest, res: SmcResult): void {
    const arg: MsgArg = { cmd: RPC_CMD.GET_TIME, func: 0, session: 0, cancelId: 0, ret: TEEC.ERROR_GENERIC, retOrigin: 0, params: [{ attr: BigInt(ATTR.VALUE_OUTPUT), a: 0n, b: 0n, c: 0n }] };
    if (!this.opts.memory.write(pa, encodeMsg(arg))) {
      t.step = null;
      return this.failThread(t, res);
    }
    t.step = { kind: "cmd", cookie, pa, request };
    this.rpc(res, OPTEE_RPC_FUNC.CMD, Number(cookie >> 32n), Number(cookie & 0xffff_ffffn), t.id);
  }

  private failThread(t: Thread, res: SmcResult): void {
    const g = this.guests.get(t.guest)!;
    t.gen?.return({ result: TEEC.ERROR_COMMUNICATION });
    t.gen = null;
    this.finish(g, t, { result: TEEC.ERROR_COMMUNICATION, origin: ORIGIN.COMMS }, res);
  }

  private returnFromRpc(g: Guest, call: SmcCall, res: SmcResult): void {
    const t = this.threads[call.w(3)];
    if (!t || t.guest !== g.id || t.step === null) return res.ret(OPTEE_RET.ERESUME);
    const step = t.step;
    t.step = null;
    switch (step.kind) {
      case "preempt":
        return this.run(g, t, { kind: "resumed" }, res);
      case "alloc-rpc-arg": {
        const pa = (BigInt(call.w(1)) << 32n) | BigInt(call.w(2));
        const cookie = (BigInt(call.w(4)) << 32n) | BigInt(call.w(5));
        // The normal world could not allocate: the TA's request fails, the TA goes on.
        if (pa === 0n) return this.run(g, t, { kind: "failed", result: TEEC.ERROR_OUT_OF_MEMORY }, res);
        return this.sendCommand(t, cookie, pa, step.then, res);
      }
      case "cmd": {
        const bytes = this.opts.memory.read(step.pa, RPC_ARG_SIZE);
        // Copy first, then check: the normal world may still be writing the buffer. Only the one parameter
        // we sent is read back; num_params in the buffer is the normal world's to scribble on.
        const reply: RpcReply =
          bytes === null
            ? { kind: "failed", result: TEEC.ERROR_COMMUNICATION }
            : ((m) => (m.ret === TEEC.SUCCESS && m.params[0] ? { kind: "time", seconds: Number(m.params[0].a & 0xffff_ffffn), nanos: Number(m.params[0].b & 0xffff_ffffn) } : { kind: "failed", result: m.ret }))(decodeMsg(bytes, 1));
        if (g.shmCacheEnabled) {
          g.rpcCache.set(step.cookie, step.pa);
          return this.run(g, t, reply, res);
        }
        // Without the cache the buffer goes back to the normal world at once.
        t.step = { kind: "free", cookie: step.cookie, reply };
        return this.rpc(res, OPTEE_RPC_FUNC.FREE, Number(step.cookie >> 32n), Number(step.cookie & 0xffff_ffffn), t.id);
      }
      case "free":
        return this.run(g, t, step.reply, res);
    }
  }
}

const KNOWN_CMDS = new Set<number>([MSG_CMD.OPEN_SESSION, MSG_CMD.INVOKE_COMMAND, MSG_CMD.CLOSE_SESSION, MSG_CMD.CANCEL, MSG_CMD.REGISTER_SHM, MSG_CMD.UNREGISTER_SHM]);

const TYPE_NAMES: Readonly<Record<number, TaParamType>> = {
  [ATTR.NONE]: "none",
  [ATTR.VALUE_INPUT]: "value-in",
  [ATTR.VALUE_OUTPUT]: "value-out",
  [ATTR.VALUE_INOUT]: "value-inout",
  [ATTR.RMEM_INPUT]: "memref-in",
  [ATTR.RMEM_OUTPUT]: "memref-out",
  [ATTR.RMEM_INOUT]: "memref-inout",
  [ATTR.TMEM_INPUT]: "memref-in",
  [ATTR.TMEM_OUTPUT]: "memref-out",
  [ATTR.TMEM_INOUT]: "memref-inout",
};

/** [PA, length] pieces of `size` bytes starting `offset` bytes into a list of 4 KiB pages. */
function splitPages(pages: readonly bigint[], offset: number, size: number): [bigint, number][] | null {
  const out: [bigint, number][] = [];
  let page = Math.floor(offset / PAGE_SIZE), inPage = offset % PAGE_SIZE, left = size;
  while (left > 0) {
    const pa = pages[page];
    if (pa === undefined) return null;
    const len = Math.min(left, PAGE_SIZE - inPage);
    out.push([pa + BigInt(inPage), len]);
    left -= len;
    page++;
    inPage = 0;
  }
  return out;
}

