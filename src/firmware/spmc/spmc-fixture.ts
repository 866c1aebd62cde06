/**
 * The SPMC tests' world: a hypervisor with its RX/TX pages, two VMs' RAM, the test partition and a few
 * partitions shaped to provoke each refusal, and helpers that speak FF-A as the hypervisor does.
 */
import { expect } from "vitest";
import {
  FFA_FRAMEWORK_MSG,
  FFA_MEM_ATTR_NORMAL_WB_IS,
  FFA_MEM_PERM,
  FFA_MSG_FLAG_FRAMEWORK,
  FFA_PARTITION_PROP,
  FFA_VERSION_1_2,
  ffaEndpoints,
  ffaHandle,
} from "../../smccc/ffa/abi.js";
import { encodeMemTransaction, ffaDescriptorLayout, type FfaMemRange, type FfaMemTransaction } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { FakeSpmcMemory, smc } from "./harness.js";
import type { SpmcLimits } from "./limits.js";
import type { DirectResult, PartitionContext, SecurePartition } from "./partition.js";
import { TestPartition } from "./partitions/test-sp.js";
import { SpmcModel } from "./spmc.js";

export const SP1 = 0x8001, SP2 = 0x8002, SP3 = 0x8003, SP4 = 0x8004;
export const UUID1 = "5f1a3c9e-2b7d-4e60-9c84-a1d3e5f70b26";
export const UUID2 = "486178e0-e7f8-11e3-bc5e-0002a5d5c51b";
export const UUID3 = "0b3f7a2c-1111-4222-8333-444455556666";
export const UUID4 = "0b3f7a2c-1111-4222-8333-444455556667";
export const VM_A = 1, VM_B = 2, VM_C = 3;
export const TX = 0x1000_0000n, RX = 0x1000_1000n;
export const RAM_A = 0x4000_0000n, RAM_B = 0x5000_0000n, HYP_HEAP = 0x1000_2000n;
export const RAM_PAGES = 64;
export const RW = FFA_MEM_PERM.DATA_RW;

/** A partition whose answer a test writes: it runs `script` with the SPMC's context. */
export class ScriptedPartition implements SecurePartition {
  readonly executionContexts = 1;
  script: (ctx: PartitionContext, sender: number, args: readonly bigint[]) => DirectResult = () => ({ ok: true, args: [] });
  onVmCreated?: (vm: number, ctx: PartitionContext) => number;
  onVmDestroyed?: (vm: number, ctx: PartitionContext) => number;
  constructor(
    readonly name: string,
    readonly id: number,
    readonly uuid: string,
    readonly properties: number,
  ) {}
  directRequest(sender: number, args: readonly bigint[], _is64: boolean, ctx: PartitionContext): DirectResult {
    return this.script(ctx, sender, args);
  }
}

export function world(o: { limits?: Partial<SpmcLimits>; version?: number; sp1Vms?: number[] } = {}) {
  const mem = new FakeSpmcMemory();
  mem.give(TX, 1, 0);
  mem.give(RX, 1, 0);
  mem.give(HYP_HEAP, 4, 0);
  mem.give(RAM_A, RAM_PAGES, VM_A);
  mem.give(RAM_B, RAM_PAGES, VM_B);
  const sp1 = new TestPartition({ id: SP1, uuid: UUID1 });
  // Receives direct requests only: no VM availability messages, no DIRECT_REQ2; serves VM A only.
  const sp2 = new ScriptedPartition("plain", SP2, UUID2, FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.AARCH64);
  // Takes no direct requests at all.
  const sp3 = new ScriptedPartition("mute", SP3, UUID3, FFA_PARTITION_PROP.AARCH64);
  // A partition that keeps what it retrieves, told of VMs created and destroyed.
  const sp4 = new ScriptedPartition("keeper", SP4, UUID4, FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.VM_CREATED_MSG | FFA_PARTITION_PROP.VM_DESTROYED_MSG);
  const scheduled: number[] = [];
  const spmc = new SpmcModel({
    memory: mem,
    partitions: [
      { partition: sp1, vms: o.sp1Vms ?? [VM_A, VM_B] },
      { partition: sp2, vms: [VM_A] },
      { partition: sp3, vms: [VM_A, VM_B] },
      { partition: sp4, vms: [VM_A, VM_B] },
    ],
    ...(o.limits ? { limits: o.limits } : {}),
    scheduleReceiver: (vm) => scheduled.push(vm),
  });
  const call = (fid: number, ...args: (number | bigint)[]) => smc(spmc, fid, args);
  const version = o.version ?? FFA_VERSION_1_2;
  expect(call(F.FFA_VERSION.smc32, version)[0]).toBe(BigInt(FFA_VERSION_1_2));
  const layout = ffaDescriptorLayout(version);

  /** VM_CREATED to partition `sp` for `vm`: the framework response's status. */
  const vmMessage = (sp: number, vm: number, type: number, is64 = false) => {
    const r = call(is64 ? F.FFA_MSG_SEND_DIRECT_REQ.smc64 : F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(0, sp), FFA_MSG_FLAG_FRAMEWORK | type, 0, 0, vm);
    return r;
  };
  const create = (vm: number, sp = SP1) => expectSuccessLike(vmMessage(sp, vm, FFA_FRAMEWORK_MSG.VM_CREATED_REQ), FFA_FRAMEWORK_MSG.VM_CREATED_RESP);
  const destroy = (vm: number, sp = SP1) => expectSuccessLike(vmMessage(sp, vm, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ), FFA_FRAMEWORK_MSG.VM_DESTROYED_RESP);
  const map = () => expectOk(call(F.FFA_RXTX_MAP.smc64, TX, RX, 1));

  /** A transaction of `vm` with these ranges for `receivers`, in the negotiated layout. */
  const tx = (vm: number, ranges: FfaMemRange[], receivers: number[] = [SP1], over: Partial<FfaMemTransaction> = {}): FfaMemTransaction => ({
    sender: vm,
    attributes: FFA_MEM_ATTR_NORMAL_WB_IS,
    flags: 0,
    handle: 0n,
    tag: 0n,
    receivers: receivers.map((receiver) => ({ receiver, permissions: RW, flags: 0, ...(layout === "v1.2" ? { impdef: [0n, 0n] as const } : {}) })),
    ranges,
    ...over,
  });
  /** Puts `bytes` in the TX buffer and sends them whole with `fid`: the registers back. */
  const send = (bytes: Uint8Array, fid: number = F.FFA_MEM_SHARE.smc64) => {
    mem.poke(TX, bytes);
    return call(fid, bytes.length, bytes.length, 0, 0);
  };
  const share = (t: FfaMemTransaction, fid: number = F.FFA_MEM_SHARE.smc64) => {
    const r = send(encodeMemTransaction(t, layout), fid);
    expectOk(r);
    return ffaHandle(Number(r[2]), Number(r[3]));
  };
  /** A direct request from `vm` to `sp` (x3-x7): the registers back. */
  const direct = (vm: number, sp: number, args: (number | bigint)[], fid: number = F.FFA_MSG_SEND_DIRECT_REQ.smc64) =>
    call(fid, ffaEndpoints(vm, sp), 0, ...args);

  return { mem, spmc, sp1, sp2, sp3, sp4, call, create, destroy, vmMessage, map, tx, send, share, direct, layout, scheduled };
}

export const ZERO_COUNTERS = {
  known: false,
  partitions: 0,
  shares: 0,
  fragments: 0,
  pages: 0,
  retrieved: 0,
  bitmaps: 0,
  bindings: 0,
  pendingNotifications: 0,
};

/** x0 = FFA_ERROR and w2 = `code`. */
export function expectError(r: bigint[], code: number): void {
  expect({ x0: r[0], w2: Number(r[2]! & 0xffff_ffffn) | 0 }).toEqual({ x0: BigInt(F.FFA_ERROR.smc32), w2: code });
  // The code is a 32-bit value: the upper half of x2 stays zero.
  expect(r[2]! >> 32n).toBe(0n);
}

export function expectOk(r: bigint[]): void {
  expect(r[0], `FFA_ERROR ${Number(r[2]! & 0xffff_ffffn) | 0}`).toBe(BigInt(F.FFA_SUCCESS.smc32));
}

/** A framework response of `type` with status 0. */
export function expectSuccessLike(r: bigint[], type: number): void {
  expect(r[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32));
  expect(r[2]).toBe(BigInt((FFA_MSG_FLAG_FRAMEWORK | type) >>> 0));
  expect(Number(r[3]! & 0xffff_ffffn) | 0).toBe(0);
}

export function pages(base: bigint, first: number, count: number): FfaMemRange {
  return { address: base + BigInt(first) * 4096n, pageCount: count };
}
