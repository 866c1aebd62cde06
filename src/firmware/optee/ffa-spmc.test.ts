// OP-TEE's partition behind the modelled SPMC itself: the hypervisor's FF-A calls (MEM_SHARE in its TX
// buffer, DIRECT_REQ with the VM as sender, MEM_RECLAIM, VM_CREATED/VM_DESTROYED framework messages)
// reach the same OpteeOs, which retrieves and relinquishes through the SPMC's partition context.
import { describe, expect, it } from "vitest";
import {
  FFA_FRAMEWORK_MSG,
  FFA_MEM_ATTR_NORMAL_WB_IS,
  FFA_MEM_PERM,
  FFA_MSG_FLAG_FRAMEWORK,
  FFA_RET,
  FFA_VERSION_1_2,
  ffaEndpoints,
  ffaHandle,
} from "../../smccc/ffa/abi.js";
import { encodeMemTransaction, ffaDescriptorLayout, type FfaMemRange } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { ATTR, ATTR_META, MSG_CMD, PAGE_SIZE, RPC_CMD, TEEC } from "../../smccc/optee/abi.js";
import { decodeMsg, encodeMsg, headerNumParams, msgSize, uuidToValues, type MsgArg, type MsgParam } from "../../smccc/optee/msg.js";
import { FakeSpmcMemory, smc } from "../spmc/harness.js";
import { SpmcModel } from "../spmc/spmc.js";
import { chacha20 } from "./chacha20.js";
import { OpteeFfaPartition } from "./ffa.js";
import { OPTEE_FFA, OPTEE_FFA_YIELDING_CALL_RETURN as RETURN } from "./ffa-abi.js";
import { OpteeOs } from "./os.js";
import { CONTENT_DECRYPT_UUID, TA_DECRYPT_CMD_DECRYPT } from "./tas/content-decrypt.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_INC_VALUE } from "./tas/hello-world.js";
import { defaultTas } from "./tas/index.js";

const OPTEE = 0x8001;
const TX = 0x1000_0000n, RX = 0x1000_1000n;
const RAM = { 1: 0x4000_0000n, 2: 0x5000_0000n } as Record<number, bigint>;
const RAM_PAGES = 200;
const zeros = { sessions: 0, threads: 0, registrations: 0, pages: 0, rpcBuffers: 0 };

function world() {
  const mem = new FakeSpmcMemory();
  mem.give(TX, 1, 0);
  mem.give(RX, 1, 0);
  for (const vm of [1, 2]) mem.give(RAM[vm]!, RAM_PAGES, vm);
  const os = new OpteeOs({ memory: mem, tas: defaultTas(), threads: 4, maxGuests: 4, random: (out) => (out.fill(3), true) });
  const part = new OpteeFfaPartition(os, { name: "optee", id: OPTEE });
  const spmc = new SpmcModel({ memory: mem, partitions: [{ partition: part, vms: [1, 2] }] });
  const call = (fid: number, ...args: (number | bigint)[]) => smc(spmc, fid, args);
  expect(call(F.FFA_VERSION.smc32, FFA_VERSION_1_2)[0]).toBe(BigInt(FFA_VERSION_1_2));
  expect(call(F.FFA_RXTX_MAP.smc64, TX, RX, 1)[0]).toBe(BigInt(F.FFA_SUCCESS.smc32));
  const layout = ffaDescriptorLayout(FFA_VERSION_1_2);

  /** A framework message from the hypervisor to OP-TEE about `vm`: the status in w3. */
  const vmMessage = (vm: number, type: number) => Number(call(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(0, OPTEE), FFA_MSG_FLAG_FRAMEWORK | type, 0, 0, vm)[3]! & 0xffff_ffffn) | 0;
  /** FFA_MEM_SHARE of `ranges` of `vm`'s RAM with OP-TEE (read-write): the handle. */
  const share = (vm: number, ranges: FfaMemRange[]) => {
    const bytes = encodeMemTransaction(
      {
        sender: vm,
        attributes: FFA_MEM_ATTR_NORMAL_WB_IS,
        flags: 0,
        handle: 0n,
        tag: 0n,
        receivers: [{ receiver: OPTEE, permissions: FFA_MEM_PERM.DATA_RW, flags: 0, impdef: [0n, 0n] as const }],
        ranges,
      },
      layout,
    );
    mem.poke(TX, bytes);
    const r = call(F.FFA_MEM_SHARE.smc64, bytes.length, bytes.length, 0, 0);
    expect(r[0]).toBe(BigInt(F.FFA_SUCCESS.smc32));
    return ffaHandle(Number(r[2]), Number(r[3]));
  };
  const reclaim = (handle: bigint) => call(F.FFA_MEM_RECLAIM.smc32, handle & 0xffff_ffffn, handle >> 32n, 0);
  /** A direct request from `vm` to OP-TEE: w3-w7 of the response (or [FFA_ERROR code]). */
  const direct = (vm: number, w3: number, w4 = 0, w5 = 0, w6 = 0, w7 = 0): number[] => {
    const r = call(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(vm, OPTEE), 0, w3, w4, w5, w6, w7);
    if (r[0] !== BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32)) return [Number(r[2]! & 0xffff_ffffn) | 0];
    return [3, 4, 5, 6, 7].map((n) => Number(r[n]! & 0xffff_ffffn));
  };
  const page = (vm: number, i: number) => RAM[vm]! + BigInt(i * PAGE_SIZE);

  /** Linux's optee_ffa_do_call_with_arg and RPC loop, the message at offset 0 of `arg` (page `argPage`). */
  const message = (vm: number, arg: { handle: bigint; pa: bigint }, msg: MsgArg): { status: number; msg: MsgArg; interrupts: number } => {
    mem.poke(arg.pa, encodeMsg(msg));
    let w = direct(vm, OPTEE_FFA.YIELDING_CALL_WITH_ARG, Number(arg.handle & 0xffff_ffffn), Number(arg.handle >> 32n), 0);
    let interrupts = 0;
    for (let rounds = 0; w[0] === 0 && w[1] !== RETURN.DONE; rounds++) {
      if (rounds > 100) throw new Error("no end to the RPCs");
      if (w[1] === RETURN.RPC_CMD) {
        const at = arg.pa + BigInt(msgSize(msg.params.length));
        const n = headerNumParams(mem.peek(at, 32));
        const rpc = decodeMsg(mem.peek(at, msgSize(n)), n);
        expect(rpc.cmd).toBe(RPC_CMD.GET_TIME);
        rpc.params[0]!.a = 1_700_000_000n;
        rpc.ret = TEEC.SUCCESS;
        mem.poke(at, encodeMsg(rpc));
      } else interrupts++;
      w = direct(vm, OPTEE_FFA.YIELDING_CALL_RESUME, 0, 0, 0, w[4]);
    }
    return { status: w[0]!, msg: decodeMsg(mem.peek(arg.pa, msgSize(msg.params.length)), msg.params.length), interrupts };
  };
  const open = (vm: number, arg: { handle: bigint; pa: bigint }, uuid: string) => {
    const [a, b] = uuidToValues(uuid);
    const meta = (x: bigint, y: bigint): MsgParam => ({ attr: BigInt(ATTR.VALUE_INPUT | ATTR_META), a: x, b: y, c: 0n });
    return message(vm, arg, { cmd: MSG_CMD.OPEN_SESSION, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [meta(a, b), meta(0n, 0n)] }).msg;
  };
  const invoke = (vm: number, arg: { handle: bigint; pa: bigint }, session: number, func: number, params: MsgParam[]) =>
    message(vm, arg, { cmd: MSG_CMD.INVOKE_COMMAND, func, session, cancelId: 0, ret: 0, retOrigin: 0, params });
  const fmem = (dir: "in" | "out", handle: bigint, size: number): MsgParam => ({ attr: BigInt(dir === "in" ? ATTR.RMEM_INPUT : ATTR.RMEM_OUTPUT), a: 0n, b: BigInt(size), c: handle });
  return { mem, os, spmc, vmMessage, share, reclaim, direct, page, message, open, invoke, fmem };
}

describe("OP-TEE behind the modelled SPMC", () => {
  it("VM_CREATED makes the VM an FF-A guest; Linux's probe, hello world with its GET_TIME RPC; the argument region held until UNREGISTER_SHM", () => {
    const w = world();
    // Before VM_CREATED the SPMC itself refuses the VM's requests (and OP-TEE would answer ITEM_NOT_FOUND).
    expect(w.direct(2, OPTEE_FFA.GET_API_VERSION)).toEqual([FFA_RET.INVALID_PARAMETERS]);
    expect(w.vmMessage(2, FFA_FRAMEWORK_MSG.VM_CREATED_REQ)).toBe(0);
    expect(w.direct(2, OPTEE_FFA.GET_API_VERSION)).toEqual([1, 0, 0, 0, 0]);
    expect(w.direct(2, OPTEE_FFA.EXCHANGE_CAPABILITIES)).toEqual([0, 4, 1, 0, 0]);
    const arg = { handle: w.share(2, [{ address: w.page(2, 0), pageCount: 1 }]), pa: w.page(2, 0) };
    expect(w.spmc.counters(2).retrieved).toBe(0);
    const s = w.open(2, arg, HELLO_WORLD_UUID);
    expect(s.ret).toBe(TEEC.SUCCESS);
    const r = w.invoke(2, arg, s.session, TA_HELLO_WORLD_CMD_INC_VALUE, [{ attr: BigInt(ATTR.VALUE_INOUT), a: 9n, b: 0n, c: 0n }]);
    expect(r.msg.params[0]!.a).toBe(10n);
    expect(w.spmc.counters(2).retrieved).toBe(1);
    // Held retrieved: the owner cannot reclaim it until OP-TEE lets go.
    expect(Number(w.reclaim(arg.handle)[2]! & 0xffff_ffffn) | 0).toBe(FFA_RET.DENIED);
    expect(w.direct(2, OPTEE_FFA.UNREGISTER_SHM, Number(arg.handle & 0xffff_ffffn), Number(arg.handle >> 32n))[0]).toBe(0);
    expect(w.spmc.counters(2).retrieved).toBe(0);
    expect(w.reclaim(arg.handle)[0]).toBe(BigInt(F.FFA_SUCCESS.smc32));
  });

  it("content-decrypt of 300 KiB through regions of several ranges gives the plaintext; another VM's region is not this VM's to name; VM_DESTROYED lets everything go", () => {
    const w = world();
    for (const vm of [1, 2]) expect(w.vmMessage(vm, FFA_FRAMEWORK_MSG.VM_CREATED_REQ)).toBe(0);
    const key = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
    expect(w.os.provisionKey(2, key)).toBe(true);
    const plain = Uint8Array.from({ length: 300 * 1024 }, (_, i) => (i * 31) & 0xff);
    const cipher = new Uint8Array(plain.length);
    chacha20(key, new Uint8Array(12), 0, plain, cipher);
    const arg = { handle: w.share(2, [{ address: w.page(2, 0), pageCount: 1 }]), pa: w.page(2, 0) };
    // Input in two ranges with a hole between; output in one.
    const input = w.share(2, [
      { address: w.page(2, 2), pageCount: 40 },
      { address: w.page(2, 50), pageCount: 35 },
    ]);
    const output = w.share(2, [{ address: w.page(2, 100), pageCount: 75 }]);
    w.mem.poke(w.page(2, 2), cipher.subarray(0, 40 * PAGE_SIZE));
    w.mem.poke(w.page(2, 50), cipher.subarray(40 * PAGE_SIZE));
    const s = w.open(2, arg, CONTENT_DECRYPT_UUID);
    const r = w.invoke(2, arg, s.session, TA_DECRYPT_CMD_DECRYPT, [w.fmem("in", input, plain.length), w.fmem("out", output, plain.length), { attr: BigInt(ATTR.VALUE_INPUT), a: 0n, b: 0n, c: 0n }]);
    expect(r.status).toBe(0);
    expect(r.msg.ret).toBe(TEEC.SUCCESS);
    expect(r.interrupts).toBe(1);
    const got = w.mem.peek(w.page(2, 100), plain.length);
    expect(got.findIndex((v, i) => v !== plain[i])).toBe(-1);
    expect(w.os.counters(2)).toEqual({ ...zeros, sessions: 1, registrations: 3, pages: 1 + 75 + 75 });

    // VM 1 shared a region with OP-TEE too; VM 2 names it: the SPMC gives it to OP-TEE for VM 1 only.
    const other = w.share(1, [{ address: w.page(1, 0), pageCount: 1 }]);
    const r2 = w.invoke(2, arg, s.session, TA_DECRYPT_CMD_DECRYPT, [w.fmem("in", other, 16), w.fmem("out", output, 16), { attr: BigInt(ATTR.VALUE_INPUT), a: 0n, b: 0n, c: 0n }]);
    expect(r2.msg.ret).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(w.spmc.counters(1).retrieved).toBe(0);

    // VM 2 goes: its session closes, its regions go back; the owner's reclaims then succeed.
    expect(w.vmMessage(2, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ)).toBe(0);
    expect(w.os.counters(2)).toEqual(zeros);
    expect(w.spmc.counters(2).retrieved).toBe(0);
    expect(w.os.isFfaGuest(1)).toBe(true);
  });
});
