/**
 * An in-process guest OP-TEE driver: what Linux's drivers/tee/optee does (smc_abi.c for the SMC ABI and
 * RPC loop, core.c for sessions, device.c for the device-enumeration PTA), so tests drive OP-TEE through
 * the hypervisor the way a real guest kernel does.
 *
 * Every operation is a generator that yields once after each SMC it makes (a `GuestStep`). `run()` drives
 * one operation to its end; `interleave()` steps several round-robin, so two VMs' calls (or several calls
 * of one VM) are in OP-TEE at the same time; a test may also step one by hand and change guest memory
 * between two SMCs (a racing vCPU).
 *
 * The driver talks through an `OpteeTransport`: a scripted VM's vCPU (addresses are IPAs, the mediator in
 * between), or OP-TEE directly as the hypervisor would (addresses are platform PAs, a7 = client ID).
 */
import type { ScriptedVm } from "../../src/machine/scripted/machine.js";
import { CALL_SMC, SmcCall, SmcResult } from "../../src/router/call.js";
import type { CallTarget } from "../../src/router/ports.js";
import {
  ATTR,
  ATTR_META,
  ATTR_NONCONTIG,
  isRpc,
  MSG_CMD,
  OPTEE_MSG_UID,
  OPTEE_RET,
  OPTEE_RPC_FUNC,
  OPTEE_SMC,
  PAGE_SIZE,
  PAGELIST_ENTRIES,
  RPC_CMD,
  SEC_CAP,
  TEEC,
} from "../../src/smccc/optee/abi.js";
import { decodeMsg, encodeMsg, headerNumParams, msgSize, uuidToValues, type MsgArg, type MsgParam } from "../../src/smccc/optee/msg.js";
import type { Conduit } from "../../src/smccc/esr.js";

// --- transports ----------------------------------------------------------------------------------------

export interface OpteeTransport {
  readonly name: string;
  /** One SMC: a0..a7 in, a0..a7 out (registers the callee does not write keep their values). */
  smc(regs: readonly number[]): number[];
  /** Memory at the addresses the driver hands out (IPAs for a VM, PAs for OP-TEE directly). */
  read(addr: bigint, length: number): Uint8Array | null;
  write(addr: bigint, data: Uint8Array): boolean;
  /** Wall-clock time for OPTEE_RPC_CMD_GET_TIME, in ns. */
  now(): bigint;
  /** Where the driver may allocate its pages. */
  readonly region: { readonly base: bigint; readonly size: bigint };
}

/** A scripted VM's vCPU: every SMC goes through the router, the policy and the OP-TEE mediator. */
export function vmTransport(vm: ScriptedVm, opts: { vcpu?: number; conduit?: Conduit; region?: { base: bigint; size: bigint } } = {}): OpteeTransport {
  const { base, size } = vm.domain.config.memory;
  return {
    name: vm.name,
    smc(regs) {
      const r = vm.vcpu(opts.vcpu ?? 0).call(opts.conduit ?? "smc", regs[0]!, regs.slice(1));
      return Array.from({ length: 8 }, (_, n) => r.w(n));
    },
    read: (addr, length) => vm.memory.read(addr, length),
    write: (addr, data) => vm.memory.write(addr, data),
    now: () => vm.time.wallClockNs(),
    // The first MiB is the guest's "kernel"; the driver's pages come from the rest.
    region: opts.region ?? { base: base + 0x10_0000n, size: size - 0x10_0000n },
  };
}

/** Platform memory by physical address, for driving OP-TEE without a hypervisor. */
export class FlatMemory {
  readonly bytes: Uint8Array;
  constructor(readonly base: bigint, readonly size: number) {
    this.bytes = new Uint8Array(size);
  }
  read(pa: bigint, length: number): Uint8Array | null {
    if (length < 0 || pa < this.base || pa + BigInt(length) > this.base + BigInt(this.size)) return null;
    const o = Number(pa - this.base);
    return this.bytes.slice(o, o + length);
  }
  write(pa: bigint, data: Uint8Array): boolean {
    if (pa < this.base || pa + BigInt(data.length) > this.base + BigInt(this.size)) return false;
    this.bytes.set(data, Number(pa - this.base));
    return true;
  }
}

/** OP-TEE called directly with a client ID in a7, as the hypervisor's mediator calls it. */
export function directTransport(os: CallTarget, memory: FlatMemory, client: number, region?: { base: bigint; size: bigint }): OpteeTransport {
  return {
    name: `client ${client}`,
    smc(regs) {
      return secureSmc(os, [...regs.slice(0, 7), ...Array<number>(Math.max(0, 7 - regs.length)).fill(0), client]);
    },
    read: (addr, length) => memory.read(addr, length),
    write: (addr, data) => memory.write(addr, data),
    now: () => 1_700_000_000_123_456_789n,
    region: region ?? { base: memory.base, size: BigInt(memory.size) },
  };
}

/** One SMC32 to a secure-world target: a0..a7 in, a0..a7 out; a4-a7 keep their values unless written. */
export function secureSmc(target: CallTarget, regs: readonly number[]): number[] {
  const words = new Uint32Array(36);
  regs.forEach((v, n) => (words[2 * n] = v >>> 0));
  const call = new SmcCall();
  call.load(words, regs[0]! >>> 0, regs[0]! >>> 0, 0, 7, CALL_SMC);
  const res = new SmcResult();
  const pending = target.handle(call, res, { vmId: 0, vmName: "hypervisor", vcpu: 0 });
  if (pending instanceof Promise) throw new Error("the secure world answers synchronously in-process");
  return Array.from({ length: 8 }, (_, n) => (n < res.count ? res.words[2 * n]! : words[2 * n]!));
}

// --- stepping ------------------------------------------------------------------------------------------

export type RpcName = "ALLOC" | "FREE" | "FOREIGN_INTR" | "CMD" | "UNKNOWN";

/** One SMC the driver made, as a scheduler or a test sees it between two steps. */
export interface GuestStep {
  readonly vm: string;
  readonly fid: number;
  /** a0..a7 after the call. */
  readonly regs: readonly number[];
  /** The RPC OP-TEE asked for, if a0 is an RPC return. */
  readonly rpc: RpcName | null;
}

export type GuestOp<T> = Generator<GuestStep, T, void>;

/** Drives one operation to its end; `onStep` sees every SMC (and may change guest memory in between). */
export function run<T>(op: GuestOp<T>, onStep?: (s: GuestStep) => void): T {
  for (;;) {
    const r = op.next();
    if (r.done) return r.value;
    onStep?.(r.value);
  }
}

/** Steps operations round-robin, one SMC each in turn, until all are done; their results in order. */
export function interleave<T>(ops: readonly GuestOp<T>[], onStep?: (s: GuestStep, index: number) => void): T[] {
  const results = new Array<T>(ops.length);
  const live = new Set(ops.keys());
  while (live.size > 0) {
    for (const i of [...live]) {
      const r = ops[i]!.next();
      if (r.done) {
        results[i] = r.value;
        live.delete(i);
      } else onStep?.(r.value, i);
    }
  }
  return results;
}

const RPC_NAMES: Record<number, RpcName> = {
  [OPTEE_RPC_FUNC.ALLOC]: "ALLOC",
  [OPTEE_RPC_FUNC.FREE]: "FREE",
  [OPTEE_RPC_FUNC.FOREIGN_INTR]: "FOREIGN_INTR",
  [OPTEE_RPC_FUNC.CMD]: "CMD",
};

// --- guest pages and shared memory ---------------------------------------------------------------------

/** 4 KiB pages of the driver's region: contiguous runs, or scattered pages for non-contiguous buffers. */
export class GuestPages {
  private readonly used = new Set<number>();
  private readonly count: number;

  constructor(readonly base: bigint, size: bigint) {
    this.count = Number(size / BigInt(PAGE_SIZE));
  }

  get inUse(): number {
    return this.used.size;
  }

  private addr(i: number): bigint {
    return this.base + BigInt(i * PAGE_SIZE);
  }

  /** `n` physically consecutive pages, lowest first. */
  contiguous(n: number): bigint[] {
    for (let start = 0; start + n <= this.count; start++) {
      let ok = true;
      for (let i = start; i < start + n && ok; i++) ok = !this.used.has(i);
      if (!ok) continue;
      const out: bigint[] = [];
      for (let i = start; i < start + n; i++) {
        this.used.add(i);
        out.push(this.addr(i));
      }
      return out;
    }
    throw new Error(`guest out of pages (${n} contiguous wanted, ${this.used.size}/${this.count} used)`);
  }

  /** `n` pages no two of which are neighbours, from the top of the region down: a buffer only a page list can describe. */
  scattered(n: number): bigint[] {
    const out: bigint[] = [];
    for (let i = this.count - 1; i >= 0 && out.length < n; i--) {
      if (this.used.has(i) || this.used.has(i + 1) || this.used.has(i - 1)) continue;
      this.used.add(i);
      out.push(this.addr(i));
    }
    if (out.length < n) throw new Error(`guest out of scattered pages (${n} wanted)`);
    return out;
  }

  release(pages: readonly bigint[]): void {
    for (const p of pages) this.used.delete(Number((p - this.base) / BigInt(PAGE_SIZE)));
  }
}

/** A buffer shared with OP-TEE (Linux's tee_shm): pages, the offset into the first, a size and a cookie. */
export class GuestShm {
  registered = false;
  constructor(
    private readonly t: OpteeTransport,
    readonly pages: readonly bigint[],
    readonly offset: number,
    readonly size: number,
    readonly cookie: bigint,
  ) {}

  /** Address of byte `at` of the buffer. */
  addr(at: number): bigint {
    const o = this.offset + at;
    return this.pages[Math.floor(o / PAGE_SIZE)]! + BigInt(o % PAGE_SIZE);
  }

  write(data: Uint8Array, at = 0): void {
    for (let done = 0; done < data.length; ) {
      const o = this.offset + at + done;
      const n = Math.min(PAGE_SIZE - (o % PAGE_SIZE), data.length - done);
      if (!this.t.write(this.addr(at + done), data.subarray(done, done + n))) throw new Error("shm write outside memory");
      done += n;
    }
  }

  read(at = 0, length = this.size - at): Uint8Array {
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const o = this.offset + at + done;
      const n = Math.min(PAGE_SIZE - (o % PAGE_SIZE), length - done);
      out.set(this.t.read(this.addr(at + done), n)!, done);
      done += n;
    }
    return out;
  }
}

// --- message parameters --------------------------------------------------------------------------------

const p = (attr: number, a: bigint | number = 0n, b: bigint | number = 0n, c: bigint | number = 0n): MsgParam => ({ attr: BigInt(attr), a: BigInt(a), b: BigInt(b), c: BigInt(c) });
type Dir = "in" | "out" | "inout";
const TMEM = { in: ATTR.TMEM_INPUT, out: ATTR.TMEM_OUTPUT, inout: ATTR.TMEM_INOUT } as const;
const RMEM = { in: ATTR.RMEM_INPUT, out: ATTR.RMEM_OUTPUT, inout: ATTR.RMEM_INOUT } as const;

/** optee_msg_param builders, as Linux's optee_to_msg_param fills them. */
export const param = {
  none: (): MsgParam => p(ATTR.NONE),
  valueIn: (a: number | bigint, b: number | bigint = 0, c: number | bigint = 0) => p(ATTR.VALUE_INPUT, a, b, c),
  valueOut: () => p(ATTR.VALUE_OUTPUT),
  valueInout: (a: number | bigint, b: number | bigint = 0, c: number | bigint = 0) => p(ATTR.VALUE_INOUT, a, b, c),
  /** A temporary (contiguous) buffer by address; address 0 and size 0 is the null memref. */
  tmem: (dir: Dir, addr: bigint, size: number | bigint) => p(TMEM[dir], addr, size, 0),
  /** A non-contiguous temporary buffer: `listAddr` is the first list page with the offset in its low bits. */
  tmemNoncontig: (dir: Dir, listAddr: bigint, size: number | bigint) => p(TMEM[dir] | ATTR_NONCONTIG, listAddr, size, 0),
  /** A part of a registered buffer. */
  rmem: (dir: Dir, shm: GuestShm, offs = 0, size = shm.size - offs) => p(RMEM[dir], offs, size, shm.cookie),
};

export interface MsgResult {
  /** a0 of the last SMC: OK, or the SMC-level error (ETHREAD_LIMIT, EBADADDR, ...). */
  readonly a0: number;
  /** The message as the guest reads it back afterwards (ret, ret_origin, session, outputs). */
  readonly msg: MsgArg;
}

export interface SessionResult extends MsgResult {
  readonly result: number;
  readonly origin: number;
  readonly session: number;
}

export const LOGIN = { PUBLIC: 0, USER: 1, GROUP: 2, APPLICATION: 4, REE_KERNEL: 0x8000_0000 } as const;

export interface ProbeInfo {
  readonly uidOk: boolean;
  readonly osRevision: readonly number[];
  readonly apiRevision: readonly number[];
  readonly caps: number;
  readonly threads: number;
  readonly shmCache: number;
  readonly devices: readonly string[];
}

export interface OpteeGuestOptions {
  /** ETHREAD_LIMIT answers to retry before giving it to the caller (Linux waits and retries forever). */
  readonly threadLimitRetries?: number;
}

/** What the driver handed OP-TEE through RPC ALLOC and still holds: cookie → its pages. */
interface RpcBuffer {
  readonly pages: bigint[];
  readonly size: number;
}

// --- the driver ----------------------------------------------------------------------------------------

export class OpteeGuest {
  readonly pages: GuestPages;
  /** Buffers OP-TEE allocated from us through RPC ALLOC and has not freed. */
  readonly rpcBuffers = new Map<bigint, RpcBuffer>();
  readonly rpcCounts: Record<RpcName, number> = { ALLOC: 0, FREE: 0, FOREIGN_INTR: 0, CMD: 0, UNKNOWN: 0 };
  /** Commands OP-TEE sent over RPC CMD, in order. */
  readonly rpcCmds: number[] = [];
  /** A test may answer RPC ALLOC itself (a hostile guest, or one out of memory: null → a1:a2 = 0). */
  allocReply: ((size: number) => { addr: bigint; cookie: bigint } | null) | null = null;
  /** Where the last message argument was put (a racing vCPU's target). */
  lastArg = 0n;
  private nextCookie = 0x5eed_0000_0001n;

  constructor(readonly transport: OpteeTransport, private readonly opts: OpteeGuestOptions = {}) {
    this.pages = new GuestPages(transport.region.base, transport.region.size);
  }

  static forVm(vm: ScriptedVm, opts: OpteeGuestOptions & { vcpu?: number; conduit?: Conduit } = {}): OpteeGuest {
    return new OpteeGuest(vmTransport(vm, opts), opts);
  }

  get name(): string {
    return this.transport.name;
  }

  /** One SMC, yielded as one step. */
  *smc(fid: number, ...args: number[]): GuestOp<number[]> {
    const regs = this.transport.smc([fid, ...args]).map((v) => v >>> 0);
    yield { vm: this.name, fid, regs, rpc: isRpc(regs[0]!) ? (RPC_NAMES[regs[0]! & 0xffff] ?? "UNKNOWN") : null };
    return regs;
  }

  // --- fast calls, as optee_probe makes them ---

  *exchangeCapabilities(nsCaps = 0): GuestOp<{ status: number; caps: number; maxNotif: number; rpcParams: number }> {
    const r = yield* this.smc(OPTEE_SMC.EXCHANGE_CAPABILITIES, nsCaps);
    return { status: r[0]!, caps: r[1]!, maxNotif: r[2]!, rpcParams: r[3]! & 0xff };
  }

  /** optee_probe (smc_abi.c): API UID, OS revision, API revision, capabilities, threads, shm cache, devices. */
  *probe(): GuestOp<ProbeInfo> {
    const uid = yield* this.smc(OPTEE_SMC.CALLS_UID);
    const os = yield* this.smc(OPTEE_SMC.CALL_GET_OS_REVISION);
    const api = yield* this.smc(OPTEE_SMC.CALLS_REVISION);
    const caps = yield* this.exchangeCapabilities();
    if (caps.status !== OPTEE_RET.OK || !(caps.caps & SEC_CAP.DYNAMIC_SHM)) throw new Error(`${this.name}: OP-TEE offers no dynamic shared memory (${caps.status}, caps 0x${caps.caps.toString(16)})`);
    const threads = yield* this.smc(OPTEE_SMC.GET_THREAD_COUNT);
    const cache = yield* this.smc(OPTEE_SMC.ENABLE_SHM_CACHE);
    const devices = yield* this.enumerateDevices();
    return {
      uidOk: OPTEE_MSG_UID.every((w, i) => uid[i] === w),
      osRevision: os.slice(0, 3),
      apiRevision: api.slice(0, 2),
      caps: caps.caps,
      threads: threads[0] === OPTEE_RET.OK ? threads[1]! : 0,
      shmCache: cache[0]!,
      devices,
    };
  }

  /** optee_disable_shm_cache: DISABLE_SHM_CACHE until ENOTAVAIL, freeing every buffer OP-TEE hands back. */
  *disableShmCache(): GuestOp<number> {
    for (let n = 0; n < 1024; n++) {
      const r = yield* this.smc(OPTEE_SMC.DISABLE_SHM_CACHE);
      if (r[0] !== OPTEE_RET.OK) return r[0]!;
      this.freeRpcBuffer((BigInt(r[1]!) << 32n) | BigInt(r[2]!));
    }
    throw new Error("DISABLE_SHM_CACHE never ran out of buffers");
  }

  // --- yielding calls ---

  /**
   * CALL_WITH_ARG and the RPC loop (optee_smc_do_call_with_arg, optee_handle_rpc): serve every RPC and
   * resume with RETURN_FROM_RPC, passing a1-a7 back as OP-TEE left them. Returns the final a0.
   */
  *callWithArg(arg: bigint): GuestOp<number> {
    let retries = this.opts.threadLimitRetries ?? 0;
    let regs = yield* this.smc(OPTEE_SMC.CALL_WITH_ARG, Number(arg >> 32n), Number(arg & 0xffff_ffffn), 0);
    for (;;) {
      const a0 = regs[0]!;
      if (a0 === OPTEE_RET.ETHREAD_LIMIT && retries-- > 0) {
        regs = yield* this.smc(OPTEE_SMC.CALL_WITH_ARG, Number(arg >> 32n), Number(arg & 0xffff_ffffn), 0);
        continue;
      }
      if (!isRpc(a0)) return a0;
      const back = this.serveRpc(regs);
      regs = yield* this.smc(OPTEE_SMC.RETURN_FROM_RPC, ...back.slice(1, 8));
    }
  }

  /** Puts a message in a fresh page (or at `opts.arg`), calls OP-TEE and reads the answer back. */
  *message(msg: MsgArg, opts: { arg?: bigint } = {}): GuestOp<MsgResult> {
    const page = opts.arg === undefined ? this.pages.contiguous(1) : [];
    const arg = opts.arg ?? page[0]!;
    this.lastArg = arg;
    this.writeOrThrow(arg, encodeMsg(msg));
    const a0 = yield* this.callWithArg(arg);
    const back = decodeMsg(this.transport.read(arg, msgSize(msg.params.length))!, msg.params.length);
    this.pages.release(page);
    return { a0, msg: back };
  }

  /** OPEN_SESSION with the TA's UUID in params[0] and the client's in params[1] (META values, as Linux's optee_open_session). */
  *openSession(uuid: string, params: MsgParam[] = [], opts: { login?: number; clientUuid?: string } = {}): GuestOp<SessionResult> {
    const [ta0, ta1] = uuidToValues(uuid);
    const [cl0, cl1] = uuidToValues(opts.clientUuid ?? "00000000-0000-0000-0000-000000000000");
    const msg: MsgArg = {
      cmd: MSG_CMD.OPEN_SESSION,
      func: 0,
      session: 0,
      cancelId: 0,
      ret: 0,
      retOrigin: 0,
      params: [p(ATTR.VALUE_INPUT | ATTR_META, ta0, ta1), p(ATTR.VALUE_INPUT | ATTR_META, cl0, cl1, opts.login ?? LOGIN.PUBLIC), ...params],
    };
    const r = yield* this.message(msg);
    return { ...r, result: r.msg.ret, origin: r.msg.retOrigin, session: r.msg.session };
  }

  *invoke(session: number, func: number, params: MsgParam[] = [], opts: { arg?: bigint } = {}): GuestOp<SessionResult> {
    const r = yield* this.message({ cmd: MSG_CMD.INVOKE_COMMAND, func, session, cancelId: 0, ret: 0, retOrigin: 0, params }, opts);
    return { ...r, result: r.msg.ret, origin: r.msg.retOrigin, session };
  }

  *closeSession(session: number): GuestOp<SessionResult> {
    const r = yield* this.message({ cmd: MSG_CMD.CLOSE_SESSION, func: 0, session, cancelId: 0, ret: 0, retOrigin: 0, params: [] });
    return { ...r, result: r.msg.ret, origin: r.msg.retOrigin, session };
  }

  /** A buffer in guest memory: scattered pages unless `contiguous`; `offset` into its first page. */
  allocShm(size: number, opts: { contiguous?: boolean; offset?: number } = {}): GuestShm {
    const offset = opts.offset ?? 0;
    const n = Math.ceil((offset + size) / PAGE_SIZE);
    const pages = opts.contiguous ? this.pages.contiguous(n) : this.pages.scattered(n);
    return new GuestShm(this.transport, pages, offset, size, this.nextCookie++);
  }

  freeShm(shm: GuestShm): void {
    this.pages.release(shm.pages);
  }

  /**
   * A page list for `pages` (optee_fill_pages_list): list pages of 511 entries and the next list page's
   * address; returns the first list page's address with `offset` in its low 12 bits, and the list pages.
   */
  writePageList(pages: readonly bigint[], offset = 0): { addr: bigint; listPages: bigint[] } {
    const n = Math.max(1, Math.ceil(pages.length / PAGELIST_ENTRIES));
    const listPages = this.pages.contiguous(n);
    for (let k = 0; k < n; k++) {
      const out = new Uint8Array(PAGE_SIZE);
      const dv = new DataView(out.buffer);
      pages.slice(k * PAGELIST_ENTRIES, (k + 1) * PAGELIST_ENTRIES).forEach((pa, i) => dv.setBigUint64(8 * i, pa, true));
      if (k + 1 < n) dv.setBigUint64(8 * PAGELIST_ENTRIES, listPages[k + 1]!, true);
      this.writeOrThrow(listPages[k]!, out);
    }
    return { addr: listPages[0]! | BigInt(offset), listPages };
  }

  /** REGISTER_SHM (optee_shm_register): [0] = TMEM_OUTPUT | NONCONTIG, buf_ptr = page list | offset, shm_ref = cookie. */
  *registerShm(shm: GuestShm): GuestOp<SessionResult> {
    const list = this.writePageList(shm.pages, shm.offset);
    const r = yield* this.message({
      cmd: MSG_CMD.REGISTER_SHM,
      func: 0,
      session: 0,
      cancelId: 0,
      ret: 0,
      retOrigin: 0,
      params: [p(ATTR.TMEM_OUTPUT | ATTR_NONCONTIG, list.addr, shm.size, shm.cookie)],
    });
    this.pages.release(list.listPages);
    if (r.a0 === OPTEE_RET.OK && r.msg.ret === TEEC.SUCCESS) shm.registered = true;
    return { ...r, result: r.msg.ret, origin: r.msg.retOrigin, session: 0 };
  }

  /** UNREGISTER_SHM (optee_shm_unregister): [0] = RMEM_INPUT with the cookie. */
  *unregisterShm(shm: GuestShm): GuestOp<SessionResult> {
    const r = yield* this.message({ cmd: MSG_CMD.UNREGISTER_SHM, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [p(ATTR.RMEM_INPUT, 0, 0, shm.cookie)] });
    if (r.a0 === OPTEE_RET.OK && r.msg.ret === TEEC.SUCCESS) shm.registered = false;
    return { ...r, result: r.msg.ret, origin: r.msg.retOrigin, session: 0 };
  }

  /**
   * optee_enumerate_devices (device.c): open the device PTA as the REE kernel, ask GET_DEVICES with a null
   * buffer for the size, again with a registered buffer, close. The UUIDs the PTA listed.
   */
  *enumerateDevices(): GuestOp<string[]> {
    const open = yield* this.openSession("7011a688-ddde-4053-a5a9-7b3c4ddf13b8", [], { login: LOGIN.REE_KERNEL });
    if (open.a0 !== OPTEE_RET.OK || open.result !== TEEC.SUCCESS) return [];
    const PTA_CMD_GET_DEVICES = 0;
    const query = yield* this.invoke(open.session, PTA_CMD_GET_DEVICES, [param.tmem("out", 0n, 0), param.none(), param.none(), param.none()]);
    const size = Number(query.msg.params[0]!.b);
    const out: string[] = [];
    if (query.result === TEEC.ERROR_SHORT_BUFFER && size > 0) {
      const shm = this.allocShm(size);
      yield* this.registerShm(shm);
      const got = yield* this.invoke(open.session, PTA_CMD_GET_DEVICES, [param.rmem("out", shm), param.none(), param.none(), param.none()]);
      if (got.result === TEEC.SUCCESS) {
        const bytes = shm.read(0, Number(got.msg.params[0]!.b));
        for (let i = 0; i + 16 <= bytes.length; i += 16) out.push(uuidString(bytes.subarray(i, i + 16)));
      }
      yield* this.unregisterShm(shm);
      this.freeShm(shm);
    }
    yield* this.closeSession(open.session);
    return out;
  }

  // --- RPC (optee_handle_rpc) ---

  /** Serves one RPC; returns the registers to resume with (a1-a7 as OP-TEE left them, with the answer). */
  private serveRpc(regs: readonly number[]): number[] {
    const back = [...regs];
    const func = regs[0]! & 0xffff;
    switch (func) {
      case OPTEE_RPC_FUNC.ALLOC: {
        this.rpcCounts.ALLOC++;
        const size = regs[1]!;
        const got = this.allocReply ? this.allocReply(size) : this.allocRpcBuffer(size);
        back[1] = got ? Number(got.addr >> 32n) : 0;
        back[2] = got ? Number(got.addr & 0xffff_ffffn) : 0;
        back[4] = got ? Number(got.cookie >> 32n) : 0;
        back[5] = got ? Number(got.cookie & 0xffff_ffffn) : 0;
        break;
      }
      case OPTEE_RPC_FUNC.FREE:
        this.rpcCounts.FREE++;
        this.freeRpcBuffer((BigInt(regs[1]!) << 32n) | BigInt(regs[2]!));
        break;
      case OPTEE_RPC_FUNC.FOREIGN_INTR:
        // The interrupt was taken when the SMC returned; nothing else to do.
        this.rpcCounts.FOREIGN_INTR++;
        break;
      case OPTEE_RPC_FUNC.CMD:
        this.rpcCounts.CMD++;
        this.serveCmd((BigInt(regs[1]!) << 32n) | BigInt(regs[2]!));
        break;
      default:
        this.rpcCounts.UNKNOWN++;
    }
    return back;
  }

  private allocRpcBuffer(size: number): { addr: bigint; cookie: bigint } {
    const pages = this.pages.contiguous(Math.max(1, Math.ceil(size / PAGE_SIZE)));
    const cookie = this.nextCookie++;
    this.rpcBuffers.set(cookie, { pages, size });
    return { addr: pages[0]!, cookie };
  }

  private freeRpcBuffer(cookie: bigint): void {
    const b = this.rpcBuffers.get(cookie);
    if (!b) return;
    this.pages.release(b.pages);
    this.rpcBuffers.delete(cookie);
  }

  /** optee_rpc_cmd: the argument is in the buffer the cookie names; GET_TIME is answered, others refused. */
  private serveCmd(cookie: bigint): void {
    const b = this.rpcBuffers.get(cookie);
    if (!b) return;
    const addr = b.pages[0]!;
    const header = this.transport.read(addr, 32)!;
    const n = headerNumParams(header);
    if (msgSize(n) > b.size) {
      this.transport.write(addr + 20n, u32(TEEC.ERROR_BAD_PARAMETERS));
      return;
    }
    const arg = decodeMsg(this.transport.read(addr, msgSize(n))!, n);
    this.rpcCmds.push(arg.cmd);
    if (arg.cmd === RPC_CMD.GET_TIME && n === 1 && Number(arg.params[0]!.attr & 0xffn) === ATTR.VALUE_OUTPUT) {
      const now = this.transport.now();
      arg.params[0]!.a = now / 1_000_000_000n;
      arg.params[0]!.b = now % 1_000_000_000n;
      arg.ret = TEEC.SUCCESS;
    } else {
      arg.ret = arg.cmd === RPC_CMD.GET_TIME ? TEEC.ERROR_BAD_PARAMETERS : TEEC.ERROR_NOT_SUPPORTED;
    }
    this.writeOrThrow(addr, encodeMsg(arg));
  }

  private writeOrThrow(addr: bigint, data: Uint8Array): void {
    if (!this.transport.write(addr, data)) throw new Error(`${this.name}: 0x${addr.toString(16)} is not the driver's memory`);
  }
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

/** A uuid_t (16 bytes in string order) as a string. */
export function uuidString(b: Uint8Array): string {
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
