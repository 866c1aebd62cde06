// OP-TEE behind the SPMC: its FF-A ABI (thread_spmc.c) on the same OpteeOs as the SMC ABI. The partition
// is driven here as the SPMC would (a direct request's sender and payload, a context for memory), by a
// guest driver that does what Linux 6.1's drivers/tee/optee/ffa_abi.c does; a second guest uses the SMC
// ABI against the same OS.
import { describe, expect, it } from "vitest";
import { directTransport, FlatMemory, OpteeGuest, param, run } from "../../../test/support/optee-guest.js";
import { FFA_MEM_PERM, FFA_MEM_TRANSACTION, FFA_RET } from "../../smccc/ffa/abi.js";
import { ATTR, ATTR_META, MSG_CMD, OPTEE_RET as R, OPTEE_SMC, PAGE_SIZE, RPC_CMD, TEEC } from "../../smccc/optee/abi.js";
import { decodeMsg, encodeMsg, headerNumParams, msgSize, uuidToValues, type MsgArg, type MsgParam } from "../../smccc/optee/msg.js";
import type { PartitionContext, RetrieveOptions, RetrieveResult } from "../spmc/partition.js";
import { chacha20 } from "./chacha20.js";
import { OpteeFfaPartition, OPTEE_PARTITION_PROPERTIES } from "./ffa.js";
import {
  OPTEE_FFA,
  OPTEE_FFA_SEC_CAP,
  OPTEE_FFA_UUID,
  OPTEE_FFA_YIELDING_CALL_RETURN as RETURN,
  OPTEE_MSG_FMEM_INVALID_GLOBAL_ID,
  RPC_ARG_SIZE,
  TEE_ERROR_NOT_IMPLEMENTED,
  TEE_ERROR_SECURITY,
  THREAD_RPC_MAX_NUM_PARAMS,
} from "./ffa-abi.js";
import { OpteeOs, OS_REVISION } from "./os.js";
import { CONTENT_DECRYPT_UUID, TA_DECRYPT_CMD_DECRYPT, TA_DECRYPT_CMD_KEY_PRESENT } from "./tas/content-decrypt.js";
import { DEVICE_ENUM_PTA_UUID } from "./tas/device-enum.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_INC_VALUE } from "./tas/hello-world.js";
import { defaultTas } from "./tas/index.js";
import { RNG_TA_UUID } from "./tas/rng.js";

const BASE = 0x1_0000_0000n;
/** Each guest's RAM (ID 1-4 in the platform's 8 MiB). */
const GUEST_RAM = 0x20_0000n;
const OPTEE_ID = 0x8001;
const zeros = { sessions: 0, threads: 0, registrations: 0, pages: 0, rpcBuffers: 0 };
const u32 = (v: number): number => v >>> 0;

/**
 * The SPMC's side of FF-A memory as the partition sees it: regions VMs shared with OP-TEE (by handle, with
 * their lender), retrieved and relinquished through the context, and memory reached by PA only on pages
 * of a region the partition holds retrieved (partition.ts PartitionContext).
 */
class FakeSpmc {
  readonly shares = new Map<bigint, { sender: number; pages: bigint[]; permissions: number; retrieved: number }>();
  private next = 0x10n;
  /** Reads and writes the context refused: a page the partition does not hold. */
  refused = 0;
  readonly ctx: PartitionContext;

  constructor(readonly mem: FlatMemory) {
    this.ctx = {
      self: OPTEE_ID,
      retrieve: (handle, opts) => this.retrieve(handle, opts),
      relinquish: (handle) => {
        const s = this.shares.get(handle);
        if (!s || s.retrieved === 0) return FFA_RET.INVALID_PARAMETERS;
        s.retrieved--;
        return 0;
      },
      read: (pa, length) => (this.held(pa, length) ? mem.read(pa, length) : (this.refused++, null)),
      write: (pa, data) => (this.held(pa, data.length) ? mem.write(pa, data) : (this.refused++, false)),
      notificationSet: () => FFA_RET.NOT_SUPPORTED,
    };
  }

  /** FFA_MEM_SHARE from VM `sender` to OP-TEE: a new handle. */
  share(sender: number, pages: readonly bigint[], permissions: number = FFA_MEM_PERM.DATA_RW): bigint {
    const handle = this.next++;
    this.shares.set(handle, { sender, pages: [...pages], permissions, retrieved: 0 });
    return handle;
  }

  /** FFA_MEM_RECLAIM: DENIED while the partition holds it retrieved. */
  reclaim(sender: number, handle: bigint): number {
    const s = this.shares.get(handle);
    if (!s || s.sender !== sender) return FFA_RET.INVALID_PARAMETERS;
    if (s.retrieved > 0) return FFA_RET.DENIED;
    this.shares.delete(handle);
    return 0;
  }

  get retrieved(): number {
    let n = 0;
    for (const s of this.shares.values()) n += s.retrieved;
    return n;
  }

  private retrieve(handle: bigint, opts?: RetrieveOptions): RetrieveResult {
    const s = this.shares.get(handle);
    if (!s || (opts?.sender !== undefined && opts.sender !== s.sender)) return { ok: false, error: FFA_RET.INVALID_PARAMETERS };
    s.retrieved++;
    const ranges: { address: bigint; pageCount: number }[] = [];
    for (const pa of s.pages) {
      const last = ranges[ranges.length - 1];
      if (last && last.address + BigInt(last.pageCount * PAGE_SIZE) === pa) last.pageCount++;
      else ranges.push({ address: pa, pageCount: 1 });
    }
    const region = { handle, sender: s.sender, transaction: FFA_MEM_TRANSACTION.SHARE, permissions: s.permissions, attributes: 0, tag: 0n, ranges, totalPages: s.pages.length };
    return { ok: true, region };
  }

  /** Whether every page [pa, pa + length) touches is a page of a region the partition holds retrieved. */
  private held(pa: bigint, length: number): boolean {
    const page = BigInt(PAGE_SIZE);
    for (let p = pa - (pa % page); p < pa + BigInt(length); p += page) {
      let found = false;
      for (const s of this.shares.values()) if (s.retrieved > 0 && s.pages.includes(p)) found = true;
      if (!found) return false;
    }
    return true;
  }
}

/** A region the driver shared with OP-TEE (Linux's tee_shm with sec_world_id). */
interface FfaShm {
  readonly handle: bigint;
  readonly pages: bigint[];
  readonly size: number;
}

/**
 * What Linux 6.1's optee FF-A driver does (drivers/tee/optee/ffa_abi.c, call.c): probe with the blocking
 * calls, shares every buffer with OP-TEE (FFA_MEM_SHARE) and names it by handle, puts each message in a
 * shared page at an offset (OPTEE_SHM_ARG_SHARED, since OP-TEE announces ARG_OFFSET) with room for the RPC
 * argument after it, retries TEE_ERROR_BUSY, serves RPC commands in that RPC argument and resumes.
 */
class FfaDriver {
  private nextPage = 0;
  private argShm: FfaShm | null = null;
  rpcCounts = { cmd: 0, interrupt: 0, busy: 0 };
  /** Called after each direct request that returned an RPC (a test may act between two requests). */
  onRpc: ((thread: number) => void) | null = null;

  constructor(
    readonly id: number,
    private readonly part: OpteeFfaPartition,
    private readonly spmc: FakeSpmc,
    private readonly base: bigint,
  ) {}

  /** One FFA_MSG_SEND_DIRECT_REQ (32-bit): w3-w7 of the response, or the FFA_ERROR code. */
  req(w3: number, w4 = 0, w5 = 0, w6 = 0, w7 = 0): number[] {
    const r = this.part.directRequest(this.id, [w3, w4, w5, w6, w7].map((v) => BigInt(u32(v))), false, this.spmc.ctx);
    if (!r.ok) return [r.error];
    return r.args.map((v) => Number(v));
  }

  pages(n: number, scattered = false): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.base + BigInt(this.nextPage * PAGE_SIZE));
      this.nextPage += scattered ? 2 : 1;
    }
    return out;
  }

  /** tee_shm_alloc + optee_ffa_shm_register: pages shared with OP-TEE's endpoint. */
  alloc(size: number, scattered = false): FfaShm {
    const pages = this.pages(Math.max(1, Math.ceil(size / PAGE_SIZE)), scattered);
    return { handle: this.spmc.share(this.id, pages), pages, size };
  }

  write(shm: FfaShm, data: Uint8Array, at = 0): void {
    for (let done = 0; done < data.length; ) {
      const o = at + done;
      const n = Math.min(PAGE_SIZE - (o % PAGE_SIZE), data.length - done);
      this.spmc.mem.write(shm.pages[Math.floor(o / PAGE_SIZE)]! + BigInt(o % PAGE_SIZE), data.subarray(done, done + n));
      done += n;
    }
  }

  read(shm: FfaShm, at = 0, length = shm.size - at): Uint8Array {
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const o = at + done;
      const n = Math.min(PAGE_SIZE - (o % PAGE_SIZE), length - done);
      out.set(this.spmc.mem.read(shm.pages[Math.floor(o / PAGE_SIZE)]! + BigInt(o % PAGE_SIZE), n)!, done);
      done += n;
    }
    return out;
  }

  /** optee_ffa_shm_unregister: UNREGISTER_SHM, then FFA_MEM_RECLAIM; both statuses. */
  free(shm: FfaShm): { unregister: number; reclaim: number } {
    const unregister = this.req(OPTEE_FFA.UNREGISTER_SHM, Number(shm.handle & 0xffff_ffffn), Number(shm.handle >> 32n))[0]!;
    return { unregister, reclaim: this.spmc.reclaim(this.id, shm.handle) };
  }

  /** optee_ffa_api_is_compatbile + optee_ffa_exchange_caps. */
  probe(): { api: number[]; os: number[]; caps: number[] } {
    return { api: this.req(OPTEE_FFA.GET_API_VERSION), os: this.req(OPTEE_FFA.GET_OS_VERSION), caps: this.req(OPTEE_FFA.EXCHANGE_CAPABILITIES) };
  }

  /**
   * optee_ffa_do_call_with_arg: the message at `offset` of the shared argument page, the RPC argument after
   * it; the yielding loop. Returns w3 of the final answer and the message as read back.
   */
  call(msg: MsgArg, offset = 0): { status: number; msg: MsgArg } {
    this.argShm ??= this.alloc(PAGE_SIZE);
    const arg = this.argShm;
    this.write(arg, encodeMsg(msg), offset);
    let w = this.req(OPTEE_FFA.YIELDING_CALL_WITH_ARG, Number(arg.handle & 0xffff_ffffn), Number(arg.handle >> 32n), offset);
    for (let rounds = 0; ; rounds++) {
      if (rounds > 1000) throw new Error(`${this.id}: no end to the RPCs (last answer ${w.join(", ")})`);
      if (w[0] === TEEC.ERROR_BUSY) {
        this.rpcCounts.busy++;
        return { status: w[0], msg };
      }
      if (w[0] !== 0 || w[1] === RETURN.DONE) break;
      if (w[1] === RETURN.RPC_CMD) {
        this.rpcCounts.cmd++;
        this.serveCmd(arg, offset + msgSize(msg.params.length));
      } else this.rpcCounts.interrupt++;
      this.onRpc?.(w[4]!);
      w = this.req(OPTEE_FFA.YIELDING_CALL_RESUME, 0, 0, 0, w[4]!);
    }
    return { status: w[0]!, msg: decodeMsg(this.read(arg, offset, msgSize(msg.params.length)), msg.params.length) };
  }

  /** handle_ffa_rpc_func_cmd → optee_rpc_cmd: GET_TIME answered in the RPC argument. */
  private serveCmd(arg: FfaShm, at: number): void {
    const n = headerNumParams(this.read(arg, at, 32));
    const rpc = decodeMsg(this.read(arg, at, msgSize(n)), n);
    if (rpc.cmd === RPC_CMD.GET_TIME && n === 1) {
      rpc.params[0]!.a = 1_700_000_000n;
      rpc.params[0]!.b = 5n;
      rpc.ret = TEEC.SUCCESS;
    } else rpc.ret = TEEC.ERROR_NOT_SUPPORTED;
    this.write(arg, encodeMsg(rpc), at);
  }

  openSession(uuid: string, login = 0): { status: number; result: number; session: number } {
    const [ta0, ta1] = uuidToValues(uuid);
    const meta = (a: bigint, b: bigint, c = 0n): MsgParam => ({ attr: BigInt(ATTR.VALUE_INPUT | ATTR_META), a, b, c });
    const r = this.call({ cmd: MSG_CMD.OPEN_SESSION, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [meta(ta0, ta1), meta(0n, 0n, BigInt(login))] });
    return { status: r.status, result: r.msg.ret, session: r.msg.session };
  }

  invoke(session: number, func: number, params: MsgParam[], offset = 0): { status: number; result: number; msg: MsgArg } {
    const r = this.call({ cmd: MSG_CMD.INVOKE_COMMAND, func, session, cancelId: 0, ret: 0, retOrigin: 0, params }, offset);
    return { status: r.status, result: r.msg.ret, msg: r.msg };
  }

  closeSession(session: number): number {
    return this.call({ cmd: MSG_CMD.CLOSE_SESSION, func: 0, session, cancelId: 0, ret: 0, retOrigin: 0, params: [] }).msg.ret;
  }
}

type Dir = "in" | "out" | "inout";
const FMEM = { in: ATTR.RMEM_INPUT, out: ATTR.RMEM_OUTPUT, inout: ATTR.RMEM_INOUT } as const;
/** to_msg_param_ffa_mem: offs_low | offs_high << 32 | internal_offs << 48, size, global_id. */
const fmem = (dir: Dir, shm: { handle: bigint; size: number }, offs = 0, size = shm.size - offs, internalOffs = 0): MsgParam => ({
  attr: BigInt(FMEM[dir]),
  a: BigInt(offs) | (BigInt(internalOffs) << 48n),
  b: BigInt(size),
  c: shm.handle,
});
const nullFmem = (dir: Dir, size = 0): MsgParam => ({ attr: BigInt(FMEM[dir]), a: 0n, b: BigInt(size), c: OPTEE_MSG_FMEM_INVALID_GLOBAL_ID });

function setup(opts: { threads?: number; maxGuests?: number; maxPagesPerGuest?: number } = {}) {
  const mem = new FlatMemory(BASE, 8 << 20);
  const os = new OpteeOs({
    memory: mem,
    tas: defaultTas(),
    threads: opts.threads ?? 4,
    maxGuests: opts.maxGuests ?? 3,
    ...(opts.maxPagesPerGuest ? { maxPagesPerGuest: opts.maxPagesPerGuest } : {}),
    random: (out) => (out.fill(7), true),
  });
  const spmc = new FakeSpmc(mem);
  const part = new OpteeFfaPartition(os, { name: "optee", id: OPTEE_ID });
  /** An FF-A guest `id` (VM_CREATED first), its pages in its own 2 MiB. */
  const ffa = (id: number) => {
    expect(part.onVmCreated(id, spmc.ctx)).toBe(0);
    return new FfaDriver(id, part, spmc, BASE + BigInt(id - 1) * GUEST_RAM);
  };
  /** An SMC-ABI guest `id` (the hypervisor's VM_CREATED with a7 = 0 first). */
  const smc = (id: number) => {
    expect(hyp(OPTEE_SMC.VM_CREATED, id)[0]).toBe(R.OK);
    return new OpteeGuest(directTransport(os, mem, id, { base: BASE + BigInt(id - 1) * GUEST_RAM, size: GUEST_RAM }));
  };
  const hyp = (fid: number, a1 = 0): number[] => {
    const g = new OpteeGuest(directTransport(os, mem, 0));
    return run(g.smc(fid, a1));
  };
  return { os, mem, spmc, part, ffa, smc, hyp };
}

describe("the partition (thread_spmc.c)", () => {
  it("is found by OP-TEE's UUID, receives and sends direct requests, wants VM_CREATED/VM_DESTROYED", () => {
    const { part } = setup();
    expect(part.uuid).toBe("486178e0-e7f8-11e3-bc5e-0002a5d5c51b");
    expect(part.uuid).toBe(OPTEE_FFA_UUID);
    expect(part.id).toBe(OPTEE_ID);
    expect(part.properties & 0x3).toBe(0x3);
    expect(part.properties & 0xc0).toBe(0xc0);
    expect(part.properties).toBe(OPTEE_PARTITION_PROPERTIES);
  });

  it("blocking calls: API 1.0, the OS revision, capabilities (4 RPC parameters, ARG_OFFSET, no notifications), unknown: BAD_PARAMETERS", () => {
    const { ffa } = setup();
    const g = ffa(1);
    const p = g.probe();
    expect(p.api).toEqual([1, 0, 0, 0, 0]);
    expect(p.os).toEqual([OS_REVISION.major, OS_REVISION.minor, OS_REVISION.build, 0, 0]);
    expect(p.caps).toEqual([0, THREAD_RPC_MAX_NUM_PARAMS, OPTEE_FFA_SEC_CAP.ARG_OFFSET, 0, 0]);
    for (const service of [4, OPTEE_FFA.ENABLE_ASYNC_NOTIF, OPTEE_FFA.RELEASE_PROTMEM, 0x7fff_ffff]) expect(g.req(service)[0]).toBe(TEEC.ERROR_BAD_PARAMETERS);
  });

  it("DIRECT_REQ2 is NOT_SUPPORTED; a sender the OS does not hold as an FF-A guest gets ITEM_NOT_FOUND for every call", () => {
    const { part, spmc, smc, ffa } = setup();
    ffa(1);
    expect(part.directRequest(1, Array<bigint>(14).fill(0n), true, spmc.ctx)).toEqual({ ok: false, error: FFA_RET.NOT_SUPPORTED });
    smc(2); // a guest of the SMC ABI
    for (const sender of [0, 2, 3, 0x8002]) {
      for (const service of [OPTEE_FFA.GET_API_VERSION, OPTEE_FFA.EXCHANGE_CAPABILITIES, OPTEE_FFA.UNREGISTER_SHM, OPTEE_FFA.YIELDING_CALL_WITH_ARG, OPTEE_FFA.YIELDING_CALL_RESUME]) {
        const r = part.directRequest(sender, [BigInt(service), 0x10n, 0n, 0n, 0n], false, spmc.ctx);
        expect(r).toEqual({ ok: true, args: [BigInt(TEEC.ERROR_ITEM_NOT_FOUND), 0n, 0n, 0n, 0n] });
      }
    }
    expect(spmc.retrieved).toBe(0);
  });

  it("VM_CREATED: OK once; ID 0, a repeated ID or an SMC-ABI guest's ID: INVALID_PARAMETERS; no room: DENIED. VM_DESTROYED: OK for any ID", () => {
    const { part, spmc, smc, os } = setup({ maxGuests: 2 });
    expect(part.onVmCreated(1, spmc.ctx)).toBe(0);
    expect(part.onVmCreated(1, spmc.ctx)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(part.onVmCreated(0, spmc.ctx)).toBe(FFA_RET.INVALID_PARAMETERS);
    smc(2);
    expect(part.onVmCreated(2, spmc.ctx)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(part.onVmCreated(3, spmc.ctx)).toBe(FFA_RET.DENIED);
    // The SPMC's VM_DESTROYED ends FF-A guests only, the hypervisor's SMC one SMC-ABI guests only.
    expect(part.onVmDestroyed(2, spmc.ctx)).toBe(0);
    expect(part.onVmDestroyed(9, spmc.ctx)).toBe(0);
    expect([...os.guests.keys()].sort()).toEqual([1, 2]);
    expect(part.onVmDestroyed(1, spmc.ctx)).toBe(0);
    expect([...os.guests.keys()]).toEqual([2]);
  });

  it("an FF-A guest is nothing to the SMC ABI: its ID in a7 gets ENOTAVAIL, and the hypervisor's VM_DESTROYED leaves it", () => {
    const { os, mem, ffa, hyp } = setup();
    const g = ffa(1);
    const s = g.openSession(HELLO_WORLD_UUID);
    expect(s.result).toBe(TEEC.SUCCESS);
    const viaSmc = new OpteeGuest(directTransport(os, mem, 1, { base: BASE + 3n * GUEST_RAM, size: GUEST_RAM }));
    expect(run(viaSmc.smc(OPTEE_SMC.CALLS_REVISION))[0]).toBe(R.ENOTAVAIL);
    expect(run(viaSmc.closeSession(s.session)).a0).toBe(R.ENOTAVAIL);
    expect(hyp(OPTEE_SMC.VM_DESTROYED, 1)[0]).toBe(R.OK);
    expect(os.counters(1).sessions).toBe(1);
  });
});

describe("yielding calls: the argument in shared memory, RPC by direct response", () => {
  it("opens, invokes and closes hello world: GET_TIME in the RPC argument after the call's (RETURN_RPC_CMD, resumed by thread)", () => {
    const { ffa, spmc, os } = setup();
    const g = ffa(1);
    const s = g.openSession(HELLO_WORLD_UUID);
    expect(s).toMatchObject({ status: 0, result: TEEC.SUCCESS });
    const r = g.invoke(s.session, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 41n, b: 0n, c: 0n }]);
    expect(r).toMatchObject({ status: 0, result: TEEC.SUCCESS });
    expect(r.msg.params[0]!.a).toBe(42n);
    expect(g.rpcCounts.cmd).toBe(1);
    // A second message further into the same page (Linux's shared argument cache): the RPC argument follows it.
    const r2 = g.invoke(s.session, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 7n, b: 0n, c: 0n }], 1024);
    expect(r2.msg.params[0]!.a).toBe(8n);
    expect(g.closeSession(s.session)).toBe(TEEC.SUCCESS);
    // The argument page was retrieved once and is kept (inactive) until UNREGISTER_SHM.
    expect(os.counters(1)).toEqual({ ...zeros, registrations: 1, pages: 1 });
    expect(spmc.retrieved).toBe(1);
  });

  it("device enumeration as Linux's probe does it: a null memref for the size (SHORT_BUFFER), then a shared buffer", () => {
    const { ffa } = setup();
    const g = ffa(1);
    const s = g.openSession(DEVICE_ENUM_PTA_UUID, 0x8000_0000);
    expect(s.result).toBe(TEEC.SUCCESS);
    const query = g.invoke(s.session, 0, [nullFmem("out")]);
    expect(query.result).toBe(TEEC.ERROR_SHORT_BUFFER);
    expect(query.msg.params[0]!.b).toBe(16n);
    const buf = g.alloc(16);
    const got = g.invoke(s.session, 0, [fmem("out", buf)]);
    expect(got.result).toBe(TEEC.SUCCESS);
    expect(got.msg.params[0]!.b).toBe(16n);
    const [a, b] = uuidToValues(RNG_TA_UUID);
    const want = new Uint8Array(16);
    new DataView(want.buffer).setBigUint64(0, a, true);
    new DataView(want.buffer).setBigUint64(8, b, true);
    expect(g.read(buf)).toEqual(want);
  });

  it("a full thread pool answers TEE_ERROR_BUSY in w3 (Linux waits and retries); an unknown yielding service takes a thread and gets FFA_DENIED", () => {
    const { ffa, os } = setup({ threads: 1 });
    const g = ffa(1);
    const s = g.openSession(HELLO_WORLD_UUID).session;
    let inner: number | null = null;
    g.onRpc = () => {
      g.onRpc = null;
      inner = g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 1n, b: 0n, c: 0n }], 2048).status;
      expect(g.req(0x8000_0005)[0]).toBe(TEEC.ERROR_BUSY);
    };
    expect(g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 1n, b: 0n, c: 0n }]).status).toBe(0);
    expect(inner).toBe(TEEC.ERROR_BUSY);
    expect(os.threadLimitHits).toBe(2);
    expect(g.req(0x8000_0005)).toEqual([u32(FFA_RET.DENIED), RETURN.DONE, 0, 0, 0]);
    expect(os.busyThreads).toBe(0);
  });

  it("one FF-A guest holds at most its share of the threads (ffaThreadsPerGuest, default threads / maxGuests): TEE_ERROR_BUSY beyond, another guest still served", () => {
    const { ffa, os } = setup({ threads: 4, maxGuests: 2 });
    const a = ffa(1);
    const b = ffa(2);
    const sa = a.openSession(HELLO_WORLD_UUID).session;
    const sb = b.openSession(HELLO_WORLD_UUID).session;
    const inc = (x: bigint): MsgParam[] => [{ attr: BigInt(ATTR.VALUE_INOUT), a: x, b: 0n, c: 0n }];
    const seen: number[] = [];
    a.onRpc = () => {
      // A's first call waits in an RPC; its second takes A's other thread and waits too.
      a.onRpc = () => {
        a.onRpc = null;
        seen.push(os.counters(1).threads, a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, inc(1n), 2048).status);
        const r = b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, inc(5n));
        seen.push(r.status, Number(r.msg.params[0]!.a));
      };
      seen.push(a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, inc(1n), 1024).status);
    };
    expect(a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, inc(1n)).status).toBe(0);
    expect(seen).toEqual([2, TEEC.ERROR_BUSY, 0, 6, 0]);
    expect(os.busyThreads).toBe(0);
  });

  it("refuses an argument the region does not hold, a bad handle or too many parameters: BAD_PARAMETERS in w3, DONE, no thread, the region let go", () => {
    const { ffa, os, spmc } = setup();
    const g = ffa(1);
    const arg = g.alloc(PAGE_SIZE);
    const call = (handle: bigint, offset: number) => g.req(OPTEE_FFA.YIELDING_CALL_WITH_ARG, Number(handle & 0xffff_ffffn), Number(handle >> 32n), offset);
    const hello = encodeMsg({ cmd: MSG_CMD.CANCEL, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [] });
    g.write(arg, hello, PAGE_SIZE - 32);
    // The header fits, the RPC argument after it does not (yielding_call_with_arg: rpc_arg past the region).
    expect(call(arg.handle, PAGE_SIZE - 32)).toEqual([TEEC.ERROR_BAD_PARAMETERS, RETURN.DONE, 0, 0, 0]);
    expect(call(arg.handle, PAGE_SIZE)).toEqual([TEEC.ERROR_BAD_PARAMETERS, RETURN.DONE, 0, 0, 0]);
    expect(call(arg.handle, 0xffff_fff0)).toEqual([TEEC.ERROR_BAD_PARAMETERS, RETURN.DONE, 0, 0, 0]);
    expect(call(0x9999n, 0)).toEqual([TEEC.ERROR_BAD_PARAMETERS, RETURN.DONE, 0, 0, 0]);
    const header = new Uint8Array(32);
    new DataView(header.buffer).setUint32(28, 128, true);
    g.write(arg, header, 0);
    expect(call(arg.handle, 0)).toEqual([TEEC.ERROR_BAD_PARAMETERS, RETURN.DONE, 0, 0, 0]);
    // The one that fits.
    g.write(arg, hello, PAGE_SIZE - 32 - RPC_ARG_SIZE);
    expect(call(arg.handle, PAGE_SIZE - 32 - RPC_ARG_SIZE)).toEqual([0, RETURN.DONE, 0, 0, 0]);
    expect(os.busyThreads).toBe(0);
    expect(os.counters(1)).toEqual({ ...zeros, registrations: 1, pages: 1 });
    expect(g.free(arg)).toEqual({ unregister: 0, reclaim: 0 });
    expect(spmc.retrieved).toBe(0);
  });

  it("REGISTER_SHM, UNREGISTER_SHM and unknown commands are NOT_IMPLEMENTED in w3 over FF-A, the message untouched (entry_std.c with CFG_CORE_FFA)", () => {
    const { ffa } = setup();
    const g = ffa(1);
    for (const cmd of [MSG_CMD.REGISTER_SHM, MSG_CMD.UNREGISTER_SHM, 6, 42]) {
      const msg: MsgArg = { cmd, func: 0, session: 0, cancelId: 0, ret: 0x1234, retOrigin: 0, params: [{ attr: BigInt(ATTR.TMEM_INPUT), a: 0n, b: 0n, c: 0n }] };
      const r = g.call(msg);
      expect(r.status).toBe(TEE_ERROR_NOT_IMPLEMENTED);
      expect(r.msg.ret).toBe(0x1234);
    }
  });

  it("RESUME of a thread that is not this guest's or not waiting: BAD_PARAMETERS in w3; the owner still resumes it", () => {
    const { ffa } = setup();
    const a = ffa(1);
    const b = ffa(2);
    const s = a.openSession(HELLO_WORLD_UUID).session;
    let tried = false;
    a.onRpc = (thread) => {
      a.onRpc = null;
      tried = true;
      expect(b.req(OPTEE_FFA.YIELDING_CALL_RESUME, 0, 0, 0, thread)).toEqual([TEEC.ERROR_BAD_PARAMETERS, RETURN.DONE, 0, 0, 0]);
      for (const t of [thread + 1, 99, 0xffff_ffff]) expect(a.req(OPTEE_FFA.YIELDING_CALL_RESUME, 0, 0, 0, t)[0]).toBe(TEEC.ERROR_BAD_PARAMETERS);
    };
    const r = a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 1n, b: 0n, c: 0n }]);
    expect(tried).toBe(true);
    expect(r.msg.params[0]!.a).toBe(2n);
  });
});

describe("FMEM parameters: regions retrieved when first used, relinquished on UNREGISTER_SHM (mobj_ffa.c)", () => {
  it("an offset and size past the region: TEE_ERROR_SECURITY; a TMEM (by address): BAD_PARAMETERS; the invalid handle with a size: BAD_PARAMETERS", () => {
    const { ffa } = setup();
    const g = ffa(1);
    const s = g.openSession(CONTENT_DECRYPT_UUID).session;
    const buf = g.alloc(PAGE_SIZE);
    const out = g.alloc(PAGE_SIZE);
    const iv = { attr: BigInt(ATTR.VALUE_INPUT), a: 0n, b: 0n, c: 0n };
    expect(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [fmem("in", buf, 1, PAGE_SIZE), fmem("out", out), iv]).result).toBe(TEE_ERROR_SECURITY);
    expect(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [fmem("in", buf, 0, PAGE_SIZE), fmem("out", out, 0, PAGE_SIZE + 1), iv]).result).toBe(TEE_ERROR_SECURITY);
    // internal_offs past the first page, or another than the region is in use with.
    expect(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [fmem("in", buf, 0, 16, PAGE_SIZE), fmem("out", out), iv]).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    const tmem = { attr: BigInt(ATTR.TMEM_INPUT), a: buf.pages[0]!, b: 16n, c: 0n };
    expect(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [tmem, fmem("out", out), iv]).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [nullFmem("in", 16), fmem("out", out), iv]).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
  });

  it("UNREGISTER_SHM: 0 for a region never used (not retrieved) and for one not in use (relinquished, then reclaimable); FFA_BUSY while a call uses it", () => {
    const { ffa, spmc, os } = setup();
    const g = ffa(1);
    const unused = g.alloc(PAGE_SIZE);
    expect(spmc.retrieved).toBe(0);
    expect(g.free(unused)).toEqual({ unregister: 0, reclaim: 0 });
    const s = g.openSession(CONTENT_DECRYPT_UUID).session;
    const input = g.alloc(600_000);
    const output = g.alloc(600_000, true);
    let busy: number[] = [];
    os.provisionKey(1, new Uint8Array(32).fill(1));
    g.onRpc = () => {
      g.onRpc = null;
      // A region the call suspended in an RPC uses: busy, still held; the normal world's reclaim is refused too.
      busy = [g.req(OPTEE_FFA.UNREGISTER_SHM, Number(input.handle))[0]!, spmc.reclaim(1, input.handle)];
    };
    expect(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [fmem("in", input), fmem("out", output), { attr: BigInt(ATTR.VALUE_INPUT), a: 0n, b: 0n, c: 0n }]).result).toBe(TEEC.SUCCESS);
    expect(busy).toEqual([u32(FFA_RET.BUSY), FFA_RET.DENIED]);
    expect(os.counters(1).registrations).toBe(3); // the argument page, input and output
    expect(g.free(input)).toEqual({ unregister: 0, reclaim: 0 });
    expect(g.free(output)).toEqual({ unregister: 0, reclaim: 0 });
    expect(os.counters(1)).toEqual({ ...zeros, sessions: 1, registrations: 1, pages: 1 });
  });

  it("a guest holds at most maxPagesPerGuest retrieved pages: past it the region is relinquished at once and the parameter is BAD_PARAMETERS", () => {
    const { ffa, spmc, os } = setup({ maxPagesPerGuest: 4 });
    const g = ffa(1);
    const s = g.openSession(CONTENT_DECRYPT_UUID).session; // the argument page: 1
    const input = g.alloc(3 * PAGE_SIZE);
    const output = g.alloc(3 * PAGE_SIZE);
    const r = g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [fmem("in", input), fmem("out", output), { attr: BigInt(ATTR.VALUE_INPUT), a: 0n, b: 0n, c: 0n }]);
    expect(r.result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(os.counters(1)).toMatchObject({ registrations: 2, pages: 4 });
    expect(spmc.shares.get(output.handle)!.retrieved).toBe(0);
    expect(spmc.refused).toBe(0);
  });
});

describe("one OpteeOs, two ABIs: an SMC-ABI guest and an FF-A guest side by side", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 5 + 3);
  const nonce = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]);
  const plain = Uint8Array.from({ length: 256 * 1024 }, (_, i) => (i * 13 + (i >> 9)) & 0xff);
  const cipher = new Uint8Array(plain.length);
  chacha20(key, nonce, 0, plain, cipher);
  const iv = (): MsgParam => ({ attr: BigInt(ATTR.VALUE_INPUT), a: 0x0403_0201n, b: 0x0807_0605n, c: 0n });

  it("content-decrypt gives the same plaintext through both ABIs (256 KiB through shared memory, scattered pages over FF-A)", () => {
    const { os, ffa, smc } = setup();
    const a = smc(1);
    const b = ffa(2);
    expect(os.provisionKey(1, key) && os.provisionKey(2, key)).toBe(true);

    const sa = run(a.openSession(CONTENT_DECRYPT_UUID)).session;
    const inA = a.allocShm(plain.length, { contiguous: true });
    const outA = a.allocShm(plain.length, { contiguous: true });
    inA.write(cipher);
    run(a.registerShm(inA));
    run(a.registerShm(outA));
    expect(run(a.invoke(sa, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", inA), param.rmem("out", outA), param.valueIn(0x0403_0201, 0x0807_0605)])).result).toBe(TEEC.SUCCESS);

    const sb = b.openSession(CONTENT_DECRYPT_UUID);
    expect(sb.result).toBe(TEEC.SUCCESS);
    expect(b.invoke(sb.session, TA_DECRYPT_CMD_KEY_PRESENT, [{ attr: BigInt(ATTR.VALUE_OUTPUT), a: 0n, b: 0n, c: 0n }]).msg.params[0]!.a).toBe(1n);
    const inB = b.alloc(plain.length, true);
    const outB = b.alloc(plain.length);
    b.write(inB, cipher);
    const r = b.invoke(sb.session, TA_DECRYPT_CMD_DECRYPT, [fmem("in", inB), fmem("out", outB), iv()]);
    expect(r).toMatchObject({ status: 0, result: TEEC.SUCCESS });
    expect(r.msg.params[1]!.b).toBe(BigInt(plain.length));
    const firstDiff = (x: Uint8Array, y: Uint8Array) => (x.length !== y.length ? -2 : x.findIndex((v, i) => v !== y[i]));
    expect(firstDiff(b.read(outB), plain)).toBe(-1);
    expect(firstDiff(outA.read(), plain)).toBe(-1);
    // Over 256 KiB at an offset: a RETURN_INTERRUPT between the TA's pieces, resumed.
    const big = b.alloc(plain.length + 2 * PAGE_SIZE);
    const bigOut = b.alloc(plain.length + 2 * PAGE_SIZE);
    b.write(big, cipher, 100);
    b.write(big, cipher.subarray(0, 4000), 100 + plain.length);
    const r2 = b.invoke(sb.session, TA_DECRYPT_CMD_DECRYPT, [fmem("in", big, 100, plain.length + 4000), fmem("out", bigOut, 50, plain.length + 4000), iv()]);
    expect(r2.result).toBe(TEEC.SUCCESS);
    expect(b.rpcCounts.interrupt).toBe(1);
    expect(firstDiff(b.read(bigOut, 50, plain.length), plain)).toBe(-1);
  });

  it("isolation: neither reaches the other's sessions, registrations, threads or memory; each guest's counters go to zero when it is destroyed", () => {
    const { os, ffa, smc, spmc, part, hyp } = setup();
    const a = smc(1);
    const b = ffa(2);
    const c = ffa(3);
    os.provisionKey(1, key);
    os.provisionKey(2, key);
    const sa = run(a.openSession(CONTENT_DECRYPT_UUID)).session;
    const sa2 = run(a.openSession(CONTENT_DECRYPT_UUID)).session;
    const sb = b.openSession(CONTENT_DECRYPT_UUID).session;
    const inA = a.allocShm(PAGE_SIZE, { contiguous: true });
    inA.write(cipher.subarray(0, PAGE_SIZE));
    run(a.registerShm(inA));
    const inB = b.alloc(PAGE_SIZE);
    const outB = b.alloc(PAGE_SIZE);
    b.write(inB, cipher.subarray(0, PAGE_SIZE));
    expect(b.invoke(sb, TA_DECRYPT_CMD_DECRYPT, [fmem("in", inB), fmem("out", outB), iv()]).result).toBe(TEEC.SUCCESS);

    // B names A's registration cookie and A's session: FMEM of B's own handles only; sessions are per guest.
    expect(b.invoke(sb, TA_DECRYPT_CMD_DECRYPT, [fmem("in", { handle: inA.cookie, size: PAGE_SIZE }), fmem("out", outB), iv()]).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(b.invoke(sa2, TA_DECRYPT_CMD_KEY_PRESENT, [{ attr: BigInt(ATTR.VALUE_OUTPUT), a: 0n, b: 0n, c: 0n }]).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    // C names B's handles (regions B shared with OP-TEE): the SPMC gives them to OP-TEE for B only.
    const sc = c.openSession(CONTENT_DECRYPT_UUID).session;
    expect(c.invoke(sc, TA_DECRYPT_CMD_DECRYPT, [fmem("in", inB), fmem("out", outB), iv()]).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(c.free(inB).unregister).toBe(0); // not C's to unregister: B's region stays retrieved for B
    expect(spmc.shares.get(inB.handle)!.retrieved).toBe(1);
    // A (SMC) passes B's handle as an RMEM cookie, and B's memory by address as a TMEM: nothing of B's.
    const outA = a.allocShm(PAGE_SIZE, { contiguous: true });
    run(a.registerShm(outA));
    const rmemB = { attr: BigInt(ATTR.RMEM_INPUT), a: 0n, b: BigInt(PAGE_SIZE), c: inB.handle };
    expect(run(a.invoke(sa, TA_DECRYPT_CMD_DECRYPT, [rmemB, param.rmem("out", outA), param.valueIn(0, 0)])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    // A's memory by address from B: there is no TMEM over FF-A.
    const tmem = { attr: BigInt(ATTR.TMEM_INPUT), a: inA.pages[0]!, b: BigInt(PAGE_SIZE), c: 0n };
    expect(b.invoke(sb, TA_DECRYPT_CMD_DECRYPT, [tmem, fmem("out", outB), iv()]).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(spmc.refused).toBe(0);

    // A call of B suspended in an RPC while A is destroyed and C calls: B's thread goes on after.
    const sb2 = b.openSession(HELLO_WORLD_UUID).session;
    b.onRpc = (thread) => {
      b.onRpc = null;
      expect(c.req(OPTEE_FFA.YIELDING_CALL_RESUME, 0, 0, 0, thread)[0]).toBe(TEEC.ERROR_BAD_PARAMETERS);
      expect(hyp(OPTEE_SMC.VM_DESTROYED, 1)[0]).toBe(R.OK);
    };
    expect(b.invoke(sb2, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 1n, b: 0n, c: 0n }]).msg.params[0]!.a).toBe(2n);
    expect(os.counters(1)).toEqual(zeros);

    // B destroyed in the middle of a call: its thread ends, sessions close, every region goes back.
    b.onRpc = () => {
      b.onRpc = null;
      expect(part.onVmDestroyed(2, spmc.ctx)).toBe(0);
    };
    b.invoke(sb2, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 1n, b: 0n, c: 0n }]);
    expect(os.counters(2)).toEqual(zeros);
    expect(spmc.shares.get(inB.handle)!.retrieved).toBe(0);
    expect(spmc.reclaim(2, inB.handle)).toBe(0);
    expect(spmc.reclaim(2, outB.handle)).toBe(0);
    // C is untouched and goes on; then it goes too.
    expect(c.invoke(sc, TA_DECRYPT_CMD_KEY_PRESENT, [{ attr: BigInt(ATTR.VALUE_OUTPUT), a: 0n, b: 0n, c: 0n }]).msg.params[0]!.a).toBe(0n);
    expect(os.counters(3)).toMatchObject({ sessions: 1, threads: 0 });
    expect(part.onVmDestroyed(3, spmc.ctx)).toBe(0);
    expect(os.counters(3)).toEqual(zeros);
    expect(spmc.retrieved).toBe(0);
    expect(os.busyThreads).toBe(0);
    expect(os.guests.size).toBe(0);
  });
});
