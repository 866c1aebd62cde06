/**
 * Test support for the FF-A mediator (used by its *.test.ts only): a fake MediatorHost with three VMs'
 * RAM (ArrayGuestMemory) at distinct physical addresses and the hypervisor's heap, a small SPMC that speaks
 * the hypervisor↔SPMC instance of FF-A over the host's channels, and a guest-side helper that makes calls
 * as the router does (SMC32 results keep the low 32 bits, unless the answer is an SMC64 FF-A message).
 */
import type { VmConfig } from "../../policy/load.js";
import { CALL_SMC, CALL_SMC64, SmcCall, SmcResult } from "../../router/call.js";
import { FFA_FRAMEWORK_MSG, FFA_MSG_FLAG_FRAMEWORK, FFA_PARTITION_PROP, FFA_RET, ffaEndpoints, ffaHandle, ffaReceiverOf, ffaSenderOf } from "../../smccc/ffa/abi.js";
import { decodeMemTransaction, type FfaMemTransaction } from "../../smccc/ffa/descriptors.js";
import { encodePartitionInfo, type FfaPartitionInfo, ffaUuidWords } from "../../smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { CallTarget, GuestMemory } from "../../router/ports.js";
import type { PageHeap, SecureChannel } from "../mediator.js";
import { FfaMediator, type FfaMediatorOptions } from "./mediator.js";
import type { FfaMediatorHost } from "./spmc-port.js";

export const IPA = 0x4000_0000n;
export const RAM = 4n << 20n;
export const PA: Record<string, bigint> = { a: 0x1_0000_0000n, b: 0x1_0040_0000n, c: 0x1_0080_0000n };
export const ID: Record<string, number> = { a: 1, b: 2, c: 3 };
export const SP1 = 0x8001, SP2 = 0x8002, SP_OTHER = 0x8003;
export const SP1_UUID = "5f1a3c9e-2b7d-4e60-9c84-a1d3e5f70b26";
export const SP2_UUID = "486178e0-e7f8-11e3-bc5e-0002a5d5c51b";
export const SP_OTHER_UUID = "11111111-2222-4333-8444-555555555555";

interface SpmcTransaction {
  bytes: Uint8Array;
  received: number;
  complete: boolean;
  descriptor: FfaMemTransaction | null;
  /** A partition has retrieved it (set by tests): reclaim is DENIED. */
  borrowed: boolean;
}

/**
 * A small SPMC: version 1.2, the hypervisor's RX/TX, three partitions (SP1 subscribes to VM created and
 * destroyed messages), echoing direct requests, memory transactions with fragments, notification bitmaps.
 */
export class FakeSpmc {
  readonly partitions: FfaPartitionInfo[] = [
    { id: SP1, executionContexts: 1, properties: FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.VM_CREATED_MSG | FFA_PARTITION_PROP.VM_DESTROYED_MSG | FFA_PARTITION_PROP.AARCH64 | FFA_PARTITION_PROP.NOTIFICATION_RECV, uuid: SP1_UUID },
    { id: SP2, executionContexts: 1, properties: FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.AARCH64, uuid: SP2_UUID },
    { id: SP_OTHER, executionContexts: 1, properties: FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.AARCH64, uuid: SP_OTHER_UUID },
  ];
  tx = 0n;
  rx = 0n;
  rxBusy = false;
  readonly bitmaps = new Set<number>();
  readonly vmMessages: string[] = [];
  readonly transactions = new Map<bigint, SpmcTransaction>();
  private nextHandle = 0x10n;
  /** Every call, "fid w1" for tests that check what reached the SPMC. */
  readonly calls: number[] = [];
  /** Answers VM_CREATED with this status (tests of a refused enable). */
  createdStatus = 0;
  pendingNotifications = new Set<number>();

  constructor(private readonly heap: PageHeap) {}

  /** What the SPMC holds: tests check it is unchanged by a refused call. */
  counters(): { transactions: number; incomplete: number } {
    const all = [...this.transactions.values()];
    return { transactions: all.filter((t) => t.complete).length, incomplete: all.filter((t) => !t.complete).length };
  }

  handle(r: Uint32Array): void {
    const fid = r[0]!, w = (n: number) => r[2 * n]!, x = (n: number) => (BigInt(r[2 * n + 1]!) << 32n) | BigInt(r[2 * n]!);
    this.calls.push(fid);
    const out = (...v: (number | bigint)[]) => {
      r.fill(0);
      v.forEach((value, n) => {
        const u = BigInt.asUintN(64, BigInt(value));
        r[2 * n] = Number(u & 0xffff_ffffn);
        r[2 * n + 1] = Number(u >> 32n);
      });
    };
    const error = (code: number) => out(F.FFA_ERROR.smc32, 0, code);
    const success = (...v: (number | bigint)[]) => out(F.FFA_SUCCESS.smc32, 0, ...v);
    switch (fid) {
      case F.FFA_VERSION.smc32:
        return out(0x1_0002);
      case F.FFA_RXTX_MAP.smc64:
        this.tx = x(1);
        this.rx = x(2);
        return success();
      case F.FFA_SPM_ID_GET.smc32:
        return success(0x8000);
      case F.FFA_FEATURES.smc32:
        return w(1) === F.FFA_NOTIFICATION_BITMAP_CREATE.smc32 ? success() : error(FFA_RET.NOT_SUPPORTED);
      case F.FFA_PARTITION_INFO_GET.smc32: {
        const uuid = [w(1), w(2), w(3), w(4)];
        const found = uuid.every((v) => v === 0) ? this.partitions : this.partitions.filter((p) => ffaUuidWords(p.uuid).every((v, i) => v === uuid[i]));
        if (found.length === 0) return error(FFA_RET.INVALID_PARAMETERS);
        if (this.rxBusy) return error(FFA_RET.BUSY);
        this.heap.write(this.rx, encodePartitionInfo(found, 0x1_0002));
        this.rxBusy = true;
        return success(found.length, 24);
      }
      case F.FFA_RX_RELEASE.smc32:
        this.rxBusy = false;
        return success();
      case F.FFA_NOTIFICATION_BITMAP_CREATE.smc32:
        this.bitmaps.add(w(1));
        return success();
      case F.FFA_NOTIFICATION_BITMAP_DESTROY.smc32:
        this.bitmaps.delete(w(1));
        return success();
      case F.FFA_MSG_SEND_DIRECT_REQ.smc32:
      case F.FFA_MSG_SEND_DIRECT_REQ.smc64: {
        const sender = ffaSenderOf(w(1)), receiver = ffaReceiverOf(w(1));
        if (!this.partitions.some((p) => p.id === receiver)) return error(FFA_RET.INVALID_PARAMETERS);
        const resp = fid === F.FFA_MSG_SEND_DIRECT_REQ.smc32 ? F.FFA_MSG_SEND_DIRECT_RESP.smc32 : F.FFA_MSG_SEND_DIRECT_RESP.smc64;
        if ((w(2) & FFA_MSG_FLAG_FRAMEWORK) !== 0) {
          const type = w(2) & 0xff;
          this.vmMessages.push(`${type === FFA_FRAMEWORK_MSG.VM_CREATED_REQ ? "created" : "destroyed"} ${w(5)} at 0x${receiver.toString(16)}`);
          return out(resp, ffaEndpoints(receiver, sender), (FFA_MSG_FLAG_FRAMEWORK | (type + 1)) >>> 0, type === FFA_FRAMEWORK_MSG.VM_CREATED_REQ ? this.createdStatus : 0);
        }
        // Echo: x3 + 1, x4-x7 as given.
        return out(resp, ffaEndpoints(receiver, sender), 0, x(3) + 1n, x(4), x(5), x(6), x(7));
      }
      case F.FFA_MSG_SEND_DIRECT_REQ2.smc64: {
        const sender = ffaSenderOf(w(1)), receiver = ffaReceiverOf(w(1));
        const v: bigint[] = [BigInt(F.FFA_MSG_SEND_DIRECT_RESP2.smc64), BigInt(ffaEndpoints(receiver, sender)), 0n, 0n];
        for (let n = 4; n <= 17; n++) v.push(x(n) + 1n);
        return out(...v);
      }
      case F.FFA_MEM_SHARE.smc32:
      case F.FFA_MEM_LEND.smc32:
        return this.memSend(w(1), w(2), out, error, success);
      case F.FFA_MEM_FRAG_TX.smc32:
        return this.fragTx(ffaHandle(w(1), w(2)), w(3), out, error, success);
      case F.FFA_MEM_RECLAIM.smc32: {
        const t = this.transactions.get(ffaHandle(w(1), w(2)));
        if (!t) return error(FFA_RET.INVALID_PARAMETERS);
        if (t.borrowed) return error(FFA_RET.DENIED);
        this.transactions.delete(ffaHandle(w(1), w(2)));
        return success();
      }
      case F.FFA_NOTIFICATION_BIND.smc32:
      case F.FFA_NOTIFICATION_UNBIND.smc32:
      case F.FFA_NOTIFICATION_SET.smc32:
        return success();
      case F.FFA_NOTIFICATION_GET.smc32:
        return success(0x5, 0, 0, 0, 0, 0);
      case F.FFA_NOTIFICATION_INFO_GET.smc64: {
        const ids = [...this.pendingNotifications];
        this.pendingNotifications.clear();
        if (ids.length === 0) return error(FFA_RET.NO_DATA);
        const regs = [0n, 0n, 0n, 0n];
        ids.forEach((id, k) => (regs[k >> 2]! |= BigInt(id) << BigInt(16 * (k & 3))));
        return out(F.FFA_SUCCESS.smc64, 0, ids.length << 7, ...regs);
      }
    }
    error(FFA_RET.NOT_SUPPORTED);
  }

  private memSend(total: number, length: number, out: (...v: (number | bigint)[]) => void, error: (c: number) => void, success: (...v: (number | bigint)[]) => void): void {
    const bytes = new Uint8Array(total);
    bytes.set(this.heap.read(this.tx, length)!);
    const handle = this.nextHandle++;
    const t: SpmcTransaction = { bytes, received: length, complete: false, descriptor: null, borrowed: false };
    this.transactions.set(handle, t);
    this.progress(handle, t, out, error, success);
  }

  private fragTx(handle: bigint, length: number, out: (...v: (number | bigint)[]) => void, error: (c: number) => void, success: (...v: (number | bigint)[]) => void): void {
    const t = this.transactions.get(handle);
    if (!t || t.complete || t.received + length > t.bytes.length) return error(FFA_RET.INVALID_PARAMETERS);
    t.bytes.set(this.heap.read(this.tx, length)!, t.received);
    t.received += length;
    this.progress(handle, t, out, error, success);
  }

  private progress(handle: bigint, t: SpmcTransaction, out: (...v: (number | bigint)[]) => void, error: (c: number) => void, success: (...v: (number | bigint)[]) => void): void {
    if (t.received < t.bytes.length) return out(F.FFA_MEM_FRAG_RX.smc32, handle & 0xffff_ffffn, handle >> 32n, t.received);
    const d = decodeMemTransaction(t.bytes, "v1.2", { composite: "required" });
    if (!d.ok) {
      this.transactions.delete(handle);
      return error(d.error.ffaError);
    }
    t.descriptor = d.value;
    t.complete = true;
    success(handle & 0xffff_ffffn, handle >> 32n);
  }
}

/** A secure world that takes the channel's registers and leaves its answer in them. */
export type SecureWorld = (regs: Uint32Array) => void;

function channel(world: SecureWorld): SecureChannel {
  const regs = new Uint32Array(36);
  return { regs, call: () => world(regs) };
}

/**
 * A CallTarget (the real SPMC model) as the secure world, called as the router's hypervisor channels call
 * the monitor: origin the hypervisor, x0-x17, SMC32 results with their upper halves cleared.
 */
export function worldOf(target: CallTarget): SecureWorld {
  const call = new SmcCall(), res = new SmcResult();
  return (regs) => {
    const fid = regs[0]!, smc64 = (fid & 0x4000_0000) !== 0;
    call.load(regs, fid, fid, 0, 17, (smc64 ? CALL_SMC64 : 0) | CALL_SMC);
    res.reset();
    void target.handle(call, res, { vmId: 0, vmName: "hypervisor", vcpu: 0 });
    for (let i = 0; i < res.count * 2; i++) regs[i] = smc64 || i % 2 === 0 ? res.words[i]! : 0;
  };
}

export interface Rig {
  mediator: FfaMediator;
  spmc: FakeSpmc;
  heap: PageHeap;
  memory: Record<string, GuestMemory>;
  log: string[];
  vm(name: string, peers?: string[], aarch32?: boolean): VmConfig;
}

/** What the tests give the rig (the layers above mediators/: the hypervisor's heap, the scripted machine's RAM). */
export interface RigParts {
  readonly heap: PageHeap;
  readonly ram: (base: bigint, size: bigint) => GuestMemory;
}

/** Three VMs a, b, c; SP1 and SP2 usable by a and b, SP_OTHER by c only. The test SPMC unless `world` says otherwise. */
export function rig(parts: RigParts, opts: Partial<FfaMediatorOptions> = {}, world?: SecureWorld): Rig {
  const heap = parts.heap;
  const spmc = new FakeSpmc(heap);
  const secure = world ?? ((regs: Uint32Array) => spmc.handle(regs));
  const memory: Record<string, GuestMemory> = { a: parts.ram(IPA, RAM), b: parts.ram(IPA, RAM), c: parts.ram(IPA, RAM) };
  const log: string[] = [];
  const host: FfaMediatorHost = {
    secureCall: () => {
      throw new Error("the FF-A mediator uses channels");
    },
    secureChannel: () => channel(secure),
    hypervisorChannel: () => channel(secure),
    memory: (vm) => memory[vm],
    ipaToPa: (vm, ipa, length) => (PA[vm] !== undefined && length > 0n && ipa >= IPA && ipa + length <= IPA + RAM ? PA[vm]! + (ipa - IPA) : null),
    heap,
    log: (_vm, _key, line) => log.push(line),
  };
  const partitions = opts.partitions ?? [
    { id: SP1, vms: ["a", "b"] },
    { id: SP2, vms: ["a", "b"] },
    { id: SP_OTHER, vms: ["c"] },
  ];
  const mediator = new FfaMediator(host, { partitions, ...(opts.limits ? { limits: opts.limits } : {}) });
  const vm = (name: string, peers: string[] = [], aarch32 = false) =>
    ({ name, id: ID[name]!, vcpus: 2, aarch32, memory: { base: IPA, size: RAM, pa: PA[name]! }, ffa: { peers } }) as unknown as VmConfig;
  return { mediator, spmc, heap, memory, log, vm };
}

/**
 * A VM's FF-A calls as the router makes them: x0..x17 in (numbers are 32-bit words, bigints 64-bit), the
 * results x0..x7 out as bigints, SMC32 results with their upper halves cleared.
 */
export class Guest {
  private readonly regs = new Uint32Array(36);
  private readonly call = new SmcCall();
  private readonly res = new SmcResult();

  constructor(private readonly mediator: FfaMediator, readonly name: string) {}

  smc(fid: number, ...args: (number | bigint)[]): bigint[] {
    const r = this.start(fid, ...args);
    if (r instanceof Promise) throw new Error(`0x${fid.toString(16)} did not complete: use start()`);
    return r;
  }

  /** A call that may wait for another VM (direct messages between peers): its results now, or when it completes. */
  start(fid: number, ...args: (number | bigint)[]): bigint[] | Promise<bigint[]> {
    const r = this.regs;
    r.fill(0);
    r[0] = fid >>> 0;
    args.forEach((a, i) => {
      const u = BigInt.asUintN(64, BigInt(a));
      r[2 * (i + 1)] = Number(u & 0xffff_ffffn);
      r[2 * (i + 1) + 1] = Number(u >> 32n);
    });
    const smc64 = (fid & 0x4000_0000) !== 0;
    this.call.load(r, fid >>> 0, fid >>> 0, 0, 17, (smc64 ? CALL_SMC64 : 0) | CALL_SMC);
    this.res.reset();
    const pending = this.mediator.handle(this.call, this.res, { vmId: ID[this.name] ?? 0, vmName: this.name, vcpu: 0 });
    const results = () => {
      // An SMC32 call's results are W registers, unless the answer is an SMC64 FF-A message (a 64-bit
      // direct request delivered to a VM waiting in FFA_MSG_WAIT): the answer's function ID sets the
      // convention (DEN0077 §15.2). The router must do the same for FF-A (README, "For the lead").
      const wide = smc64 || (this.res.words[0]! & 0x7f00_0000) === 0x4400_0000;
      const out: bigint[] = [];
      for (let n = 0; n < Math.max(this.res.count, 8); n++) out.push(wide ? this.res.get(n) : this.res.get(n) & 0xffff_ffffn);
      return out;
    };
    return pending instanceof Promise ? pending.then(results) : results();
  }

  /** w2 of an FFA_ERROR as the signed 32-bit code, or 0 for any other answer. */
  static code(r: bigint[]): number {
    return r[0] === BigInt(F.FFA_ERROR.smc32) ? Number(BigInt.asIntN(32, r[2]!)) : 0;
  }
}
