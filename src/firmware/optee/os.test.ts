// The OP-TEE model at its own interface: SMCs with the client ID in a7 and messages at platform physical
// addresses, as the hypervisor's mediator makes them. Exact codes from optee_smc.h / optee_msg.h.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { directTransport, FlatMemory, interleave, OpteeGuest, param, run, secureSmc, type GuestStep } from "../../../test/support/optee-guest.js";
import { OPTEE_FUNCTIONS as F } from "../../smccc/functions/optee.js";
import {
  ATTR,
  ATTR_META,
  ATTR_NONCONTIG,
  MSG_CMD,
  NSEC_CAP_UNIPROCESSOR,
  OPTEE_MSG_UID,
  OPTEE_OS_UUID,
  OPTEE_RET as R,
  OPTEE_SMC,
  ORIGIN,
  PAGE_SIZE,
  SEC_CAP,
  TEEC,
} from "../../smccc/optee/abi.js";
import { CALL_SMC, SmcCall, SmcResult } from "../../router/call.js";
import { decodeMsg, encodeMsg, msgSize, type MsgArg } from "../../smccc/optee/msg.js";
import { chacha20, type ChaCha20 } from "./chacha20.js";
import { hostChaCha20 } from "../../machine/host/chacha20.js";
import { OpteeOs, OS_REVISION } from "./os.js";
import type { TrustedApp } from "./ta.js";
import { CONTENT_DECRYPT_UUID, DECRYPT_PIECE, TA_DECRYPT_CMD_DECRYPT, TA_DECRYPT_CMD_KEY_PRESENT } from "./tas/content-decrypt.js";
import { DEVICE_ENUM_PTA_UUID, PTA_CMD_GET_DEVICES, PTA_CMD_GET_DEVICES_SUPP } from "./tas/device-enum.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_DEC_VALUE, TA_HELLO_WORLD_CMD_INC_VALUE } from "./tas/hello-world.js";
import { defaultTas } from "./tas/index.js";
import { RNG_TA_UUID, TA_CMD_GET_ENTROPY, TA_CMD_GET_RNG_INFO } from "./tas/rng.js";

const BASE = 0x1_0000_0000n;
const MiB = 0x10_0000n;

/** A TA that asks the normal world for the time twice per invoke (two RPC commands in one call). */
const TWO_CLOCKS_UUID = "7c1f0e2a-9b3d-4c5e-8f60-718293a4b5c6";
const twoClocksTa: TrustedApp<null> = {
  uuid: TWO_CLOCKS_UUID,
  name: "two_clocks",
  open: () => ({ result: TEEC.SUCCESS, state: null }),
  *invoke(_state, _cmd, params) {
    const first = yield { kind: "get-time" };
    const second = yield { kind: "get-time" };
    params[0]!.a = first.kind === "time" && second.kind === "time" ? 2 : 0;
    return { result: TEEC.SUCCESS };
  },
  close: () => {},
};

function setup(opts: { threads?: number; maxGuests?: number; maxPagesPerGuest?: number; maxSessionsPerGuest?: number; chacha20?: ChaCha20 } = {}) {
  const mem = new FlatMemory(BASE, 8 << 20);
  let entropy = true;
  let counter = 0;
  const os = new OpteeOs({
    memory: mem,
    tas: [...defaultTas(), twoClocksTa],
    threads: opts.threads ?? 4,
    maxGuests: opts.maxGuests ?? 3,
    ...(opts.maxPagesPerGuest ? { maxPagesPerGuest: opts.maxPagesPerGuest } : {}),
    ...(opts.maxSessionsPerGuest ? { maxSessionsPerGuest: opts.maxSessionsPerGuest } : {}),
    ...(opts.chacha20 ? { chacha20: opts.chacha20 } : {}),
    random: (out) => {
      if (!entropy) return false;
      for (let i = 0; i < out.length; i++) out[i] = (counter++ * 151 + 13) & 0xff;
      return true;
    },
  });
  /** One SMC with a7 = client: a0..a7 back. */
  const as = (client: number) => (fid: number, ...args: number[]) => secureSmc(os, [fid, ...args, ...Array<number>(6 - args.length).fill(0), client]);
  const hyp = as(0);
  /** A guest driver for client `id`, its pages in its own MiB of the platform memory. */
  const guest = (id: number, o: { threadLimitRetries?: number } = {}) => new OpteeGuest(directTransport(os, mem, id, { base: BASE + BigInt(id) * MiB, size: MiB }), o);
  const create = (id: number) => expect(hyp(OPTEE_SMC.VM_CREATED, id)[0]).toBe(R.OK);
  return { os, mem, as, hyp, guest, create, dryEntropy: () => (entropy = false) };
}

const zeros = { sessions: 0, threads: 0, registrations: 0, pages: 0, rpcBuffers: 0 };

/** One SMC that reaches the OS from a VM's origin (a guest's call forwarded as it was): a0..a3 back. */
function fromVm(os: OpteeOs, regs: readonly number[]): number[] {
  const words = new Uint32Array(36);
  regs.forEach((v, n) => (words[2 * n] = v >>> 0));
  const call = new SmcCall();
  call.load(words, regs[0]!, regs[0]!, 0, 17, CALL_SMC);
  const res = new SmcResult();
  os.handle(call, res, { vmId: 2, vmName: "evil", vcpu: 0 });
  return [0, 1, 2, 3].map((n) => Number(res.get(n) & 0xffff_ffffn));
}

describe("who is calling: the path the call took, never a register", () => {
  it("a call from a VM's origin is refused whatever a7 says (UNKNOWN_FUNCTION): no VM_DESTROYED, no thread, no answer", () => {
    const { os, create, mem, guest } = setup();
    create(1);
    const s = run(guest(1).openSession(HELLO_WORLD_UUID)).session;
    mem.write(BASE, encodeMsg({ cmd: MSG_CMD.CLOSE_SESSION, func: 0, session: s, cancelId: 0, ret: 0, retOrigin: 0, params: [] }));
    for (const a7 of [0, 1, 0x1_0001]) {
      expect(fromVm(os, [OPTEE_SMC.VM_DESTROYED, 1, 0, 0, 0, 0, 0, a7])[0]).toBe(R.UNKNOWN_FUNCTION);
      expect(fromVm(os, [OPTEE_SMC.VM_CREATED, 7, 0, 0, 0, 0, 0, a7])[0]).toBe(R.UNKNOWN_FUNCTION);
      expect(fromVm(os, [OPTEE_SMC.CALLS_UID, 0, 0, 0, 0, 0, 0, a7])[0]).toBe(R.UNKNOWN_FUNCTION);
      expect(fromVm(os, [OPTEE_SMC.CALL_WITH_ARG, 1, 0, 0, 0, 0, 0, a7])[0]).toBe(R.UNKNOWN_FUNCTION);
    }
    expect([...os.guests.keys()]).toEqual([1]);
    expect(os.counters(1)).toEqual({ ...zeros, sessions: 1 });
  });

  it("VM_CREATED and VM_DESTROYED take the guest ID as its 16 bits, from a7 = 0 in all 32 bits only (entry_fast.c)", () => {
    const { hyp, as, os } = setup();
    expect(hyp(OPTEE_SMC.VM_CREATED, 0x1_0001)[0]).toBe(R.OK);
    expect([...os.guests.keys()]).toEqual([1]);
    expect(hyp(OPTEE_SMC.VM_CREATED, 1)[0]).toBe(R.ENOTAVAIL);
    expect(hyp(OPTEE_SMC.VM_CREATED, 0x1_0000)[0]).toBe(R.ENOTAVAIL); // guest 0 is the hypervisor
    // a7 = 0x10000 reads as guest 0, but only a7 = 0 is the hypervisor.
    expect(as(0x1_0000)(OPTEE_SMC.VM_CREATED, 5)[0]).toBe(R.ENOTAVAIL);
    expect(as(0x1_0000)(OPTEE_SMC.VM_DESTROYED, 1)[0]).toBe(R.ENOTAVAIL);
    expect(as(0x1_0000)(OPTEE_SMC.CALLS_COUNT)[0]).toBe(R.ENOTAVAIL);
    expect(as(0x1_0001)(OPTEE_SMC.CALLS_COUNT)[0]).toBe(14); // guest 1, as virt_set_guest((uint16_t)a7) has it
    expect(hyp(OPTEE_SMC.VM_DESTROYED, 0x1_0001)[0]).toBe(R.OK);
    expect(os.guests.size).toBe(0);
  });
});

describe("fast calls (entry_fast.c)", () => {
  it("answer the API queries: count 14 with virtualization, the message-API UID, revision 2.0", () => {
    const { hyp, create, as } = setup();
    create(1);
    for (const call of [hyp, as(1)]) {
      expect(call(OPTEE_SMC.CALLS_COUNT)[0]).toBe(14);
      expect(call(OPTEE_SMC.CALLS_UID).slice(0, 4)).toEqual([...OPTEE_MSG_UID]);
      expect(call(OPTEE_SMC.CALLS_UID).slice(0, 4)).toEqual([0x384f_b3e0, 0xe7f8_11e3, 0xaf63_0002, 0xa5d5_c51b]);
      expect(call(OPTEE_SMC.CALLS_REVISION).slice(0, 2)).toEqual([2, 0]);
      expect(call(OPTEE_SMC.CALL_GET_OS_UUID).slice(0, 4)).toEqual([0x4861_78e0, 0xe7f8_11e3, 0xbc5e_0002, 0xa5d5_c51b]);
      expect(call(OPTEE_SMC.CALL_GET_OS_UUID).slice(0, 4)).toEqual([...OPTEE_OS_UUID]);
      expect(call(OPTEE_SMC.CALL_GET_OS_REVISION).slice(0, 3)).toEqual([OS_REVISION.major, OS_REVISION.minor, OS_REVISION.build]);
    }
  });

  it("EXCHANGE_CAPABILITIES: dynamic SHM, virtualization and null memrefs, no notifications, no RPC_ARG; unknown NS bits → ENOTAVAIL", () => {
    const { as, create } = setup();
    create(1);
    const g = as(1);
    expect(g(OPTEE_SMC.EXCHANGE_CAPABILITIES, 0).slice(0, 4)).toEqual([R.OK, SEC_CAP.DYNAMIC_SHM | SEC_CAP.VIRTUALIZATION | SEC_CAP.MEMREF_NULL, 0, 0]);
    expect(g(OPTEE_SMC.EXCHANGE_CAPABILITIES, NSEC_CAP_UNIPROCESSOR)[0]).toBe(R.OK);
    expect(g(OPTEE_SMC.EXCHANGE_CAPABILITIES, 2)[0]).toBe(R.ENOTAVAIL);
    expect(g(OPTEE_SMC.EXCHANGE_CAPABILITIES, 0x8000_0001)[0]).toBe(R.ENOTAVAIL);
  });

  it("GET_SHM_CONFIG: ENOTAVAIL (no reserved shared memory), L2CC_MUTEX: UNKNOWN_FUNCTION (no PL310), BOOT_SECONDARY: ENOTAVAIL", () => {
    const { as, create } = setup();
    create(1);
    expect(as(1)(OPTEE_SMC.GET_SHM_CONFIG)[0]).toBe(R.ENOTAVAIL);
    for (const op of [0, 1, 2, 3, 4]) expect(as(1)(OPTEE_SMC.L2CC_MUTEX, op)[0]).toBe(R.UNKNOWN_FUNCTION);
    expect(as(1)(OPTEE_SMC.BOOT_SECONDARY, 1, 0, 0x4000_0000)[0]).toBe(R.ENOTAVAIL);
  });

  it("GET_THREAD_COUNT: OK with the configured thread count", () => {
    const { hyp } = setup({ threads: 5 });
    expect(hyp(OPTEE_SMC.GET_THREAD_COUNT).slice(0, 2)).toEqual([R.OK, 5]);
  });

  it("asynchronous notifications, protected memory and unknown fast IDs: UNKNOWN_FUNCTION", () => {
    const { as, create } = setup();
    create(1);
    for (const fid of [OPTEE_SMC.ENABLE_ASYNC_NOTIF, OPTEE_SMC.GET_ASYNC_NOTIF_VALUE, F.OPTEE_SMC_GET_PROTMEM_CONFIG.smc32, 0xb200_0015, 0xb200_00ff, 0xbf00_ff02]) {
      expect(as(1)(fid)[0], `0x${fid.toString(16)}`).toBe(R.UNKNOWN_FUNCTION);
    }
  });

  it("a client the OS does not know gets ENOTAVAIL for every fast call (virt_set_guest fails)", () => {
    const { as } = setup();
    for (const [name, def] of Object.entries(F)) {
      if (def.smc32 & 0x8000_0000) expect(as(7)(def.smc32)[0], name).toBe(R.ENOTAVAIL);
    }
  });

  it("VM_CREATED: OK once per guest ID; ENOTAVAIL for ID 0, a repeated ID, a caller other than the hypervisor, or no room", () => {
    const { hyp, as, create } = setup({ maxGuests: 2 });
    create(1);
    expect(hyp(OPTEE_SMC.VM_CREATED, 0)[0]).toBe(R.ENOTAVAIL);
    expect(hyp(OPTEE_SMC.VM_CREATED, 1)[0]).toBe(R.ENOTAVAIL);
    expect(as(1)(OPTEE_SMC.VM_CREATED, 2)[0]).toBe(R.ENOTAVAIL);
    create(2);
    expect(hyp(OPTEE_SMC.VM_CREATED, 3)[0]).toBe(R.ENOTAVAIL);
    // Destroying a guest frees its place.
    expect(hyp(OPTEE_SMC.VM_DESTROYED, 1)[0]).toBe(R.OK);
    create(3);
  });

  it("VM_DESTROYED: OK for any ID, unknown and 0 included (Xen probes with it); ENOTAVAIL from a guest", () => {
    const { hyp, as, create } = setup();
    expect(hyp(OPTEE_SMC.VM_DESTROYED, 0)[0]).toBe(R.OK);
    expect(hyp(OPTEE_SMC.VM_DESTROYED, 42)[0]).toBe(R.OK);
    create(1);
    expect(as(1)(OPTEE_SMC.VM_DESTROYED, 1)[0]).toBe(R.ENOTAVAIL);
    expect(as(1)(OPTEE_SMC.CALLS_COUNT)[0]).toBe(14);
  });

  it("ENABLE/DISABLE_SHM_CACHE: the RPC argument buffer is kept and handed back one cookie per call, then ENOTAVAIL; EBUSY while a thread runs", () => {
    const { as, create, guest, os } = setup();
    create(1);
    const g = guest(1);
    expect(as(1)(OPTEE_SMC.DISABLE_SHM_CACHE)[0]).toBe(R.ENOTAVAIL);
    expect(as(1)(OPTEE_SMC.ENABLE_SHM_CACHE)[0]).toBe(R.OK);
    const s = run(g.openSession(HELLO_WORLD_UUID)).session;
    run(g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]));
    expect(g.rpcCounts).toMatchObject({ ALLOC: 1, CMD: 1, FREE: 0 });
    expect(os.counters(1).rpcBuffers).toBe(1);
    // Cached: the next invoke needs no ALLOC.
    run(g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]));
    expect(g.rpcCounts).toMatchObject({ ALLOC: 1, CMD: 2, FREE: 0 });
    // A call suspended in RPC keeps the cache busy.
    const pending = g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]);
    expect(pending.next().value).toMatchObject({ rpc: "CMD" });
    expect(as(1)(OPTEE_SMC.DISABLE_SHM_CACHE)[0]).toBe(R.EBUSY);
    expect(as(1)(OPTEE_SMC.ENABLE_SHM_CACHE)[0]).toBe(R.EBUSY);
    run(pending);
    const [cookie] = [...g.rpcBuffers.keys()];
    const r = as(1)(OPTEE_SMC.DISABLE_SHM_CACHE);
    expect(r.slice(0, 3)).toEqual([R.OK, Number(cookie! >> 32n), Number(cookie! & 0xffff_ffffn)]);
    expect(as(1)(OPTEE_SMC.DISABLE_SHM_CACHE)[0]).toBe(R.ENOTAVAIL);
    expect(os.counters(1).rpcBuffers).toBe(0);
    // The hypervisor has no cache of its own.
    expect(as(0)(OPTEE_SMC.ENABLE_SHM_CACHE)[0]).toBe(R.ENOTAVAIL);
  });
});

describe("yielding calls (thread_optee_smc.c)", () => {
  it("need a created guest: the hypervisor (client 0) and unknown clients get ENOTAVAIL", () => {
    const { hyp, as, mem } = setup();
    mem.write(BASE, encodeMsg({ cmd: MSG_CMD.CANCEL, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [] }));
    for (const call of [hyp, as(9)]) {
      expect(call(OPTEE_SMC.CALL_WITH_ARG, 1, 0)[0]).toBe(R.ENOTAVAIL);
      expect(call(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, 0)[0]).toBe(R.ENOTAVAIL);
    }
  });

  it("CALL_WITH_ARG refuses an argument that is misaligned, outside normal memory, too long or running off its end: EBADADDR, no thread kept", () => {
    const { as, create, mem, os } = setup();
    create(1);
    const g = as(1);
    const at = BASE + MiB;
    mem.write(at, encodeMsg({ cmd: MSG_CMD.CANCEL, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [] }));
    const call = (pa: bigint) => g(OPTEE_SMC.CALL_WITH_ARG, Number(pa >> 32n), Number(pa & 0xffff_ffffn))[0];
    expect(call(at)).toBe(R.OK);
    expect(call(at + 4n)).toBe(R.EBADADDR);
    expect(call(0x0e00_0000n)).toBe(R.EBADADDR);
    expect(call(0n)).toBe(R.EBADADDR);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, 128, true);
    mem.write(at + 28n, header);
    expect(call(at)).toBe(R.EBADADDR);
    // Two parameters announced, but the message would run past the end of memory.
    const end = BASE + 8n * MiB - 48n;
    mem.write(end, encodeMsg({ cmd: MSG_CMD.CANCEL, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [] }));
    new DataView(header.buffer).setUint32(0, 2, true);
    mem.write(end + 28n, header);
    expect(call(end)).toBe(R.EBADADDR);
    expect(os.busyThreads).toBe(0);
  });

  it("any other yielding function takes a thread and is refused EBADCMD (CALL_WITH_RPC_ARG and CALL_WITH_REGD_ARG: no RPC_ARG capability)", () => {
    const { as, create, os } = setup();
    create(1);
    for (const fid of [OPTEE_SMC.CALL_WITH_RPC_ARG, OPTEE_SMC.CALL_WITH_REGD_ARG, 0x3200_0000, 0x3200_0005, 0x3200_00ff]) expect(as(1)(fid, 0, 0x1000)[0]).toBe(R.EBADCMD);
    expect(os.busyThreads).toBe(0);
  });

  it("a message command OP-TEE does not know is an SMC-level EBADCMD, the message untouched (entry_std.c)", () => {
    const { create, guest } = setup();
    create(1);
    const g = guest(1);
    for (const cmd of [MSG_CMD.DO_BOTTOM_HALF, MSG_CMD.STOP_ASYNC_NOTIF, 8, 11, 0xffff_ffff]) {
      const r = run(g.message({ cmd, func: 0, session: 0, cancelId: 0, ret: 0xdead, retOrigin: 0xbeef, params: [] }));
      expect(r.a0).toBe(R.EBADCMD);
      expect(r.msg).toMatchObject({ ret: 0xdead, retOrigin: 0xbeef });
    }
  });

  it("RETURN_FROM_RPC resumes only a thread suspended for this guest: otherwise ERESUME", () => {
    const { as, create, guest } = setup();
    create(1);
    create(2);
    expect(as(1)(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, 0)[0]).toBe(R.ERESUME);
    expect(as(1)(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, 99)[0]).toBe(R.ERESUME);
    const g = guest(1);
    const s = run(g.openSession(HELLO_WORLD_UUID)).session;
    const op = g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]);
    const step = op.next().value as GuestStep;
    expect(step.rpc).toBe("ALLOC");
    const thread = step.regs[3]!;
    // Another guest cannot resume (or hijack) guest 1's thread.
    expect(as(2)(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, thread)[0]).toBe(R.ERESUME);
    const done = run(op);
    expect(done.msg.params[0]!.a).toBe(2n);
    // Once completed, the thread is not resumable any more.
    expect(as(1)(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, thread)[0]).toBe(R.ERESUME);
  });

  it("a full thread pool answers ETHREAD_LIMIT to anyone until a thread is free", () => {
    const { create, guest, os } = setup({ threads: 2 });
    create(1);
    create(2);
    const [g1, g2] = [guest(1), guest(2)];
    const s1 = run(g1.openSession(HELLO_WORLD_UUID)).session;
    const s2 = run(g2.openSession(HELLO_WORLD_UUID)).session;
    const a = g1.invoke(s1, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(10)]);
    const b = g1.invoke(s1, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(20)]);
    expect(a.next().value).toMatchObject({ rpc: "ALLOC" });
    expect(b.next().value).toMatchObject({ rpc: "ALLOC" });
    expect(os.busyThreads).toBe(2);
    expect(run(g1.invoke(s1, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).a0).toBe(R.ETHREAD_LIMIT);
    expect(run(g2.invoke(s2, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).a0).toBe(R.ETHREAD_LIMIT);
    expect(os.threadLimitHits).toBe(2);
    expect(run(a).msg.params[0]!.a).toBe(11n);
    expect(run(g2.invoke(s2, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).msg.params[0]!.a).toBe(2n);
    expect(run(b).msg.params[0]!.a).toBe(21n);
    expect(os.busyThreads).toBe(0);
  });
});

describe("the message protocol", () => {
  it("opens, invokes and closes a hello-world session: INC/DEC on value a, one GET_TIME RPC per invoke", () => {
    const { create, guest, os } = setup();
    create(1);
    const g = guest(1);
    const open = run(g.openSession(HELLO_WORLD_UUID));
    expect(open).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS, origin: ORIGIN.TRUSTED_APP });
    expect(open.session).toBeGreaterThan(0);
    const steps: string[] = [];
    const inc = run(g.invoke(open.session, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(41, 7, 9)]), (s) => steps.push(`${s.rpc ?? "done"}:${s.regs[1]}`));
    expect(inc).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS, origin: ORIGIN.TRUSTED_APP });
    expect(inc.msg.params[0]).toEqual({ attr: BigInt(ATTR.VALUE_INOUT), a: 42n, b: 7n, c: 9n });
    // No shm cache: ALLOC of one RPC argument (header + 4 params = 160 bytes), CMD, FREE, done.
    expect(steps).toEqual([`ALLOC:${msgSize(4)}`, `CMD:${steps[1]!.split(":")[1]}`, `FREE:${steps[2]!.split(":")[1]}`, "done:0"]);
    expect(g.rpcCmds).toEqual([3]); // OPTEE_RPC_CMD_GET_TIME
    expect(g.rpcBuffers.size).toBe(0);
    expect(run(g.invoke(open.session, TA_HELLO_WORLD_CMD_DEC_VALUE, [param.valueInout(0)])).msg.params[0]!.a).toBe(0xffff_ffffn);
    expect(run(g.invoke(open.session, 7, [param.valueInout(0)])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(run(g.invoke(open.session, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueIn(1)])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(os.counters(1)).toEqual({ ...zeros, sessions: 1 });
    expect(run(g.closeSession(open.session))).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS, origin: ORIGIN.TEE });
    expect(run(g.invoke(open.session, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]))).toMatchObject({ result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE });
    expect(run(g.closeSession(open.session))).toMatchObject({ result: TEEC.ERROR_BAD_PARAMETERS, origin: ORIGIN.TEE });
    expect(os.counters(1)).toEqual(zeros);
  });

  it("OPEN_SESSION: an unknown TA is ITEM_NOT_FOUND, missing META parameters BAD_PARAMETERS, both from the TEE", () => {
    const { create, guest } = setup();
    create(1);
    const g = guest(1);
    expect(run(g.openSession("00000000-1111-2222-3333-444444444444"))).toMatchObject({ a0: R.OK, result: TEEC.ERROR_ITEM_NOT_FOUND, origin: ORIGIN.TEE, session: 0 });
    const plain = (p: MsgArg["params"]) => run(g.message({ cmd: MSG_CMD.OPEN_SESSION, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: p })).msg;
    expect(plain([param.valueIn(1, 2), param.valueIn(0, 0)])).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS, retOrigin: ORIGIN.TEE });
    expect(plain([{ attr: BigInt(ATTR.VALUE_INPUT | ATTR_META), a: 0n, b: 0n, c: 0n }])).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS, retOrigin: ORIGIN.TEE });
    expect(plain([])).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS });
  });

  it("CANCEL is acknowledged", () => {
    const { create, guest } = setup();
    create(1);
    expect(run(guest(1).message({ cmd: MSG_CMD.CANCEL, func: 0, session: 1, cancelId: 5, ret: 0, retOrigin: 0, params: [] })).msg).toMatchObject({ ret: TEEC.SUCCESS, retOrigin: ORIGIN.TEE });
  });

  it("sessions belong to their guest: another guest's session ID is BAD_PARAMETERS", () => {
    const { create, guest } = setup();
    create(1);
    create(2);
    const s = run(guest(1).openSession(HELLO_WORLD_UUID)).session;
    expect(run(guest(2).invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
  });

  it("an RPC ALLOC the normal world cannot serve (a1:a2 = 0) fails the TA's request; the TA goes on", () => {
    const { create, guest } = setup();
    create(1);
    const g = guest(1);
    const s = run(g.openSession(HELLO_WORLD_UUID)).session;
    g.allocReply = () => null;
    expect(run(g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).msg.params[0]!.a).toBe(2n);
    expect(g.rpcCounts).toMatchObject({ ALLOC: 1, CMD: 0 });
  });

  it("an RPC buffer the OS cannot write goes back at once (FREE) and the TA's request fails; the TA goes on (thread_rpc_alloc_arg)", () => {
    const { create, guest, os } = setup();
    create(1);
    const g = guest(1);
    const s = run(g.openSession(HELLO_WORLD_UUID)).session;
    g.allocReply = () => ({ addr: 0x0e00_0000n, cookie: 77n });
    const steps: string[] = [];
    const r = run(g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]), (step) => steps.push(`${step.rpc ?? "done"}:${step.regs[2]}`));
    expect(r.msg).toMatchObject({ ret: TEEC.SUCCESS, retOrigin: ORIGIN.TRUSTED_APP });
    expect(r.msg.params[0]!.a).toBe(2n);
    expect(steps).toEqual([`ALLOC:0`, "FREE:77", "done:0"]);
    expect(os.busyThreads).toBe(0);
  });

  it("reads back only the parameter it sent in an RPC: a num_params the normal world scribbles over changes nothing", () => {
    const { create, guest, mem, os } = setup();
    create(1);
    const g = guest(1);
    const s = run(g.openSession(HELLO_WORLD_UUID)).session;
    const r = run(g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(5)]), (step) => {
      if (step.rpc !== "CMD") return;
      // The driver answered GET_TIME when it resumes; spoil the header now, as a racing vCPU would.
      const buf = [...g.rpcBuffers.values()][0]!.pages[0]!;
      const spoil = new Uint8Array(4);
      new DataView(spoil.buffer).setUint32(0, 0xffff, true);
      mem.write(buf + 28n, spoil);
    });
    expect(r).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
    expect(r.msg.params[0]!.a).toBe(6n);
    expect(os.busyThreads).toBe(0);
  });
});

describe("dynamic shared memory: REGISTER_SHM with page lists", () => {
  it("registers a non-contiguous buffer, serves RMEM parameters through it, and unregisters it", () => {
    const { create, guest, os } = setup();
    create(1);
    const g = guest(1);
    const shm = g.allocShm(3 * PAGE_SIZE - 100, { offset: 100 });
    expect(shm.pages[0]! - shm.pages[1]!).not.toBe(BigInt(PAGE_SIZE)); // really scattered
    expect(run(g.registerShm(shm))).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS, origin: ORIGIN.TEE });
    expect(os.counters(1)).toMatchObject({ registrations: 1, pages: 3 });
    const s = run(g.openSession(RNG_TA_UUID)).session;
    // 5000 bytes from offset 3000: across all three scattered pages.
    const r = run(g.invoke(s, TA_CMD_GET_ENTROPY, [param.rmem("inout", shm, 3000, 4096)]));
    expect(r).toMatchObject({ result: TEEC.SUCCESS });
    expect(r.msg.params[0]!.b).toBe(4096n);
    const got = shm.read(3000, 4096);
    expect(new Set(got).size).toBeGreaterThan(100);
    expect(shm.read(0, 3000).every((b) => b === 0)).toBe(true);
    expect(run(g.invoke(s, TA_CMD_GET_ENTROPY, [param.rmem("inout", shm, 3000, shm.size)])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(run(g.unregisterShm(shm))).toMatchObject({ result: TEEC.SUCCESS });
    expect(os.counters(1)).toMatchObject({ registrations: 0, pages: 0 });
    expect(run(g.unregisterShm(shm)).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(run(g.invoke(s, TA_CMD_GET_ENTROPY, [param.rmem("inout", shm, 0, 16)])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
  });

  it("refuses a repeated cookie, a contiguous or empty buffer, extra parameters, and more pages than the guest may hold", () => {
    const { create, guest } = setup({ maxPagesPerGuest: 4 });
    create(1);
    const g = guest(1);
    const shm = g.allocShm(2 * PAGE_SIZE);
    expect(run(g.registerShm(shm)).result).toBe(TEEC.SUCCESS);
    expect(run(g.registerShm(shm)).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    const reg = (params: MsgArg["params"]) => run(g.message({ cmd: MSG_CMD.REGISTER_SHM, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params })).msg.ret;
    const list = g.writePageList(g.allocShm(PAGE_SIZE).pages);
    expect(reg([param.tmem("out", list.addr, 4096)])).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(reg([{ ...param.tmemNoncontig("out", list.addr, 0), c: 9n }])).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(reg([{ ...param.tmemNoncontig("out", list.addr, 4096), c: 9n }, param.none()])).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(reg([{ ...param.valueIn(0), c: 9n }])).toBe(TEEC.ERROR_BAD_PARAMETERS);
    // Two pages held; three more would exceed four.
    const big = g.allocShm(3 * PAGE_SIZE);
    expect(run(g.registerShm(big)).result).toBe(TEEC.ERROR_OUT_OF_MEMORY);
    const fits = g.allocShm(2 * PAGE_SIZE);
    expect(run(g.registerShm(fits)).result).toBe(TEEC.SUCCESS);
  });

  it("UNREGISTER_SHM of a buffer a call is using waits for the call to end, which still reads and writes it; a second UNREGISTER meanwhile is BAD_PARAMETERS (mobj_reg_shm_release_by_cookie)", () => {
    const { os, create, guest } = setup();
    create(1);
    const key = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
    os.provisionKey(1, key);
    const g = guest(1);
    const plain = Uint8Array.from({ length: DECRYPT_PIECE + 4096 }, (_, i) => (i * 13) & 0xff);
    const cipher = new Uint8Array(plain.length);
    chacha20(key, new Uint8Array(12), 0, plain, cipher);
    const input = g.allocShm(plain.length, { contiguous: true });
    const output = g.allocShm(plain.length, { contiguous: true });
    input.write(cipher);
    run(g.registerShm(input));
    run(g.registerShm(output));
    const s = run(g.openSession(CONTENT_DECRYPT_UUID)).session;
    // The decrypt is preempted after its first piece, holding both buffers.
    const decrypt = g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)]);
    expect(decrypt.next().value).toMatchObject({ rpc: "FOREIGN_INTR" });
    const unregister = g.unregisterShm(output);
    for (let i = 0; i < 3; i++) expect(unregister.next().value, `wait ${i}`).toMatchObject({ rpc: "FOREIGN_INTR" });
    expect(os.counters(1)).toMatchObject({ registrations: 2, threads: 2 });
    expect(run(g.unregisterShm(output)).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    // The user finishes into the buffer; then the unregister completes.
    expect(run(decrypt).result).toBe(TEEC.SUCCESS);
    expect(output.read()).toEqual(plain);
    expect(os.counters(1)).toMatchObject({ registrations: 1 });
    expect(run(unregister)).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS, origin: ORIGIN.TEE });
    expect(os.counters(1)).toMatchObject({ registrations: 1, threads: 0 });
    expect(run(g.unregisterShm(output)).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    // A buffer no call uses goes at once.
    expect(run(g.unregisterShm(input)).result).toBe(TEEC.SUCCESS);
    expect(os.counters(1)).toEqual({ ...zeros, sessions: 1 });
  });

  it("reads only as many list pages as the size needs, so even a looping list ends (the mediator refuses those before)", () => {
    const { create, guest, mem } = setup();
    create(1);
    const g = guest(1);
    const page = g.allocShm(PAGE_SIZE).pages[0]!;
    const list = g.writePageList(Array.from({ length: 511 }, () => page));
    const next = new Uint8Array(8);
    new DataView(next.buffer).setBigUint64(0, list.addr, true);
    mem.write(list.addr + 8n * 511n, next);
    const r = run(g.message({ cmd: MSG_CMD.REGISTER_SHM, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [{ attr: BigInt(ATTR.TMEM_OUTPUT | ATTR_NONCONTIG), a: list.addr, b: 2000n * 4096n, c: 5n }] }));
    expect(r).toMatchObject({ a0: R.OK, msg: { ret: TEEC.SUCCESS } });
  });

  it("bounds what one message makes it copy: memrefs over 64 MiB together are OUT_OF_MEMORY before anything is read", () => {
    const { create, guest, os } = setup();
    create(1);
    const g = guest(1);
    // 40 MiB registered: one page named 10,240 times (OP-TEE does not mind repeats).
    const page = g.allocShm(PAGE_SIZE).pages[0]!;
    const list = g.writePageList(Array.from({ length: 10_240 }, () => page));
    const cookie = 0xb16n;
    expect(run(g.message({ cmd: MSG_CMD.REGISTER_SHM, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [{ attr: BigInt(ATTR.TMEM_OUTPUT | ATTR_NONCONTIG), a: list.addr, b: 40n << 20n, c: cookie }] })).msg.ret).toBe(TEEC.SUCCESS);
    expect(os.counters(1).pages).toBe(10_240);
    const s = run(g.openSession(RNG_TA_UUID)).session;
    const rmem = (size: bigint) => ({ attr: BigInt(ATTR.RMEM_INOUT), a: 0n, b: size, c: cookie });
    const r = run(g.invoke(s, TA_CMD_GET_ENTROPY, [rmem(40n << 20n), rmem(40n << 20n)]));
    expect(r).toMatchObject({ a0: R.OK, result: TEEC.ERROR_OUT_OF_MEMORY, origin: ORIGIN.TEE });
    expect(run(g.invoke(s, TA_CMD_GET_ENTROPY, [rmem(64n), ...Array.from({ length: 126 }, () => rmem(1n << 20n))])).result).toBe(TEEC.ERROR_OUT_OF_MEMORY);
    expect(run(g.invoke(s, TA_CMD_GET_ENTROPY, [rmem(64n), rmem(1n << 20n)])).result).toBe(TEEC.SUCCESS);
    expect(os.busyThreads).toBe(0);
  });

  it("a non-contiguous temporary memref (TMEM | NONCONTIG) is read and written through its list", () => {
    const { create, guest } = setup();
    create(1);
    const g = guest(1);
    const shm = g.allocShm(64);
    const list = g.writePageList(shm.pages, shm.offset);
    const s = run(g.openSession(RNG_TA_UUID)).session;
    const r = run(g.invoke(s, TA_CMD_GET_ENTROPY, [param.tmemNoncontig("inout", list.addr, 64)]));
    expect(r.result).toBe(TEEC.SUCCESS);
    expect(shm.read().some((b) => b !== 0)).toBe(true);
  });
});

describe("the RPC argument (thread_optee_smc.c get_rpc_arg, call_entry_std)", () => {
  it("is allocated once per call and kept for all its commands, then freed when the call is done", () => {
    const { create, guest, os } = setup();
    create(1);
    const g = guest(1);
    const s = run(g.openSession(TWO_CLOCKS_UUID)).session;
    const steps: string[] = [];
    const r = run(g.invoke(s, 0, [param.valueInout(0)]), (step) => steps.push(step.rpc ?? "done"));
    expect(r.msg.params[0]!.a).toBe(2n);
    expect(steps).toEqual(["ALLOC", "CMD", "CMD", "FREE", "done"]);
    expect(g.rpcCmds).toEqual([3, 3]);
    expect(g.rpcBuffers.size).toBe(0);
    expect(os.counters(1)).toEqual({ ...zeros, sessions: 1 });
  });

  it("with the shm cache, is kept by the OS when the call is done and used by the next call: no FREE", () => {
    const { create, guest, os, as } = setup();
    create(1);
    expect(as(1)(OPTEE_SMC.ENABLE_SHM_CACHE)[0]).toBe(R.OK);
    const g = guest(1);
    const s = run(g.openSession(TWO_CLOCKS_UUID)).session;
    run(g.invoke(s, 0, [param.valueInout(0)]));
    run(g.invoke(s, 0, [param.valueInout(0)]));
    expect(g.rpcCounts).toMatchObject({ ALLOC: 1, CMD: 4, FREE: 0 });
    expect(os.counters(1).rpcBuffers).toBe(1);
  });
});

describe("sessions per guest", () => {
  it("beyond what the guest's heap holds: OUT_OF_MEMORY from the TEE (tee_ta_manager.c tee_ta_init_session); room again after a close", () => {
    const { create, guest, os } = setup({ maxSessionsPerGuest: 3 });
    create(1);
    create(2);
    const g = guest(1);
    const ids = [0, 1, 2].map(() => run(g.openSession(HELLO_WORLD_UUID)).session);
    expect(run(g.openSession(HELLO_WORLD_UUID))).toMatchObject({ a0: R.OK, result: TEEC.ERROR_OUT_OF_MEMORY, origin: ORIGIN.TEE, session: 0 });
    expect(os.counters(1).sessions).toBe(3);
    // Another guest has its own.
    expect(run(guest(2).openSession(HELLO_WORLD_UUID)).result).toBe(TEEC.SUCCESS);
    run(g.closeSession(ids[1]!));
    expect(run(g.openSession(HELLO_WORLD_UUID)).result).toBe(TEEC.SUCCESS);
  });
});

describe("the trusted applications", () => {
  it("device-enumeration PTA: GET_DEVICES lists the RNG TA (SHORT_BUFFER with the size first), GET_DEVICES_SUPP none", () => {
    const { create, guest } = setup();
    create(1);
    const g = guest(1);
    expect(run(g.enumerateDevices())).toEqual([RNG_TA_UUID]);
    const s = run(g.openSession(DEVICE_ENUM_PTA_UUID, [], { login: 0x8000_0000 })).session;
    const q = run(g.invoke(s, PTA_CMD_GET_DEVICES, [param.tmem("out", 0n, 0)]));
    expect(q).toMatchObject({ result: TEEC.ERROR_SHORT_BUFFER });
    expect(q.msg.params[0]!.b).toBe(16n);
    const supp = run(g.invoke(s, PTA_CMD_GET_DEVICES_SUPP, [param.tmem("out", 0n, 0)]));
    expect(supp.result).toBe(TEEC.SUCCESS);
    expect(supp.msg.params[0]!.b).toBe(0n);
    expect(run(g.invoke(s, 9, [param.tmem("out", 0n, 0)])).result).toBe(TEEC.ERROR_NOT_SUPPORTED);
    expect(run(g.invoke(s, PTA_CMD_GET_DEVICES, [param.valueOut()])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
  });

  it("RNG TA: GET_ENTROPY fills at most 4 KiB, BUSY when the source is dry; GET_RNG_INFO rate and quality", () => {
    const { create, guest, mem, dryEntropy } = setup();
    create(1);
    const g = guest(1);
    const s = run(g.openSession(RNG_TA_UUID)).session;
    const buf = g.allocShm(6000, { contiguous: true });
    const r = run(g.invoke(s, TA_CMD_GET_ENTROPY, [param.tmem("inout", buf.addr(0), 6000)]));
    expect(r.result).toBe(TEEC.SUCCESS);
    expect(r.msg.params[0]!.b).toBe(4096n);
    expect(mem.read(buf.addr(4096), 6000 - 4096)!.every((b) => b === 0)).toBe(true);
    const info = run(g.invoke(s, TA_CMD_GET_RNG_INFO, [param.valueOut()]));
    expect(info.msg.params[0]).toMatchObject({ a: 1024n * 1024n, b: 900n });
    expect(run(g.invoke(s, 5, [param.valueOut()]))).toMatchObject({ result: TEEC.ERROR_NOT_SUPPORTED, origin: ORIGIN.TRUSTED_APP });
    expect(run(g.invoke(s, TA_CMD_GET_ENTROPY, [param.tmem("in", buf.addr(0), 16)])).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    dryEntropy();
    expect(run(g.invoke(s, TA_CMD_GET_ENTROPY, [param.tmem("inout", buf.addr(0), 16)])).result).toBe(TEEC.ERROR_BUSY);
  });

  it("content decryption: ChaCha20 with the guest's own key, preempted by foreign interrupts every 256 KiB; no key, no decryption", () => {
    const { os, create, guest } = setup();
    create(1);
    create(2);
    const key = Uint8Array.from({ length: 32 }, (_, i) => i * 3 + 1);
    expect(os.provisionKey(1, key)).toBe(true);
    expect(os.provisionKey(1, new Uint8Array(16))).toBe(false);
    expect(os.provisionKey(9, key)).toBe(false);
    const plain = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff);
    const nonce = Uint8Array.from([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0]);
    const cipher = new Uint8Array(plain.length);
    chacha20(key, nonce, 0, plain, cipher);
    for (const id of [1, 2]) {
      const g = guest(id);
      const s = run(g.openSession(CONTENT_DECRYPT_UUID)).session;
      expect(run(g.invoke(s, TA_DECRYPT_CMD_KEY_PRESENT, [param.valueOut()])).msg.params[0]!.a).toBe(id === 1 ? 1n : 0n);
      const input = g.allocShm(plain.length, { contiguous: true });
      const output = g.allocShm(plain.length, { contiguous: true });
      input.write(cipher);
      run(g.registerShm(input));
      run(g.registerShm(output));
      const r = run(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0x4433_2211, 0x8877_6655)]));
      if (id === 2) {
        expect(r.result).toBe(TEEC.ERROR_ACCESS_DENIED);
        continue;
      }
      expect(r.result).toBe(TEEC.SUCCESS);
      expect(r.msg.params[1]!.b).toBe(BigInt(plain.length));
      expect(output.read()).toEqual(plain);
      expect(g.rpcCounts.FOREIGN_INTR).toBe(1); // 300,000 bytes: two pieces of at most 256 KiB
      const short = g.allocShm(100);
      run(g.registerShm(short));
      const sr = run(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", short), param.valueIn(0, 0)]));
      expect(sr.result).toBe(TEEC.ERROR_SHORT_BUFFER);
      expect(sr.msg.params[1]!.b).toBe(BigInt(plain.length));
    }
  });
});

describe("the host's ChaCha20", () => {
  it("is what the content-decryption TA uses when the host gives one (OpenSSL's here), with the same plaintext as the portable one", () => {
    const pieces: number[] = [];
    const { os, create, guest } = setup({ chacha20: (k, n, c, i, o) => (pieces.push(i.length), hostChaCha20(k, n, c, i, o)) });
    create(1);
    const key = Uint8Array.from({ length: 32 }, (_, i) => i ^ 0x5a);
    os.provisionKey(1, key);
    const plain = Uint8Array.from({ length: DECRYPT_PIECE + 4096 }, (_, i) => (i * 29) & 0xff);
    const cipher = new Uint8Array(plain.length);
    chacha20(key, new Uint8Array(12), 0, plain, cipher);
    const g = guest(1);
    const input = g.allocShm(plain.length, { contiguous: true });
    const output = g.allocShm(plain.length, { contiguous: true });
    input.write(cipher);
    run(g.registerShm(input));
    run(g.registerShm(output));
    const s = run(g.openSession(CONTENT_DECRYPT_UUID)).session;
    expect(run(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)])).result).toBe(TEEC.SUCCESS);
    expect(output.read()).toEqual(plain);
    expect(pieces).toEqual([DECRYPT_PIECE, 4096]);
  });
});

describe("guests side by side", () => {
  it("two guests' interleaved invokes each get their own results", () => {
    const { create, guest, os } = setup({ threads: 4 });
    create(1);
    create(2);
    const gs = [guest(1), guest(2)];
    const sessions = gs.map((g) => run(g.openSession(HELLO_WORLD_UUID)).session);
    const ops = [0, 1, 2, 3].map((i) => gs[i % 2]!.invoke(sessions[i % 2]!, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(100 * i)]));
    let peak = 0;
    const out = interleave(ops, () => (peak = Math.max(peak, os.busyThreads)));
    expect(out.map((r) => r.msg.params[0]!.a)).toEqual([1n, 101n, 201n, 301n]);
    expect(peak).toBe(4);
    expect(os.busyThreads).toBe(0);
  });

  it("VM_DESTROYED mid-call frees everything the guest held: sessions, threads, registrations, cached buffers; the other guest goes on", () => {
    const { hyp, as, create, guest, os } = setup();
    create(1);
    create(2);
    const [g1, g2] = [guest(1), guest(2)];
    expect(as(1)(OPTEE_SMC.ENABLE_SHM_CACHE)[0]).toBe(R.OK);
    const s1 = run(g1.openSession(HELLO_WORLD_UUID)).session;
    const s2 = run(g2.openSession(HELLO_WORLD_UUID)).session;
    run(g1.invoke(s1, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]));
    run(g1.registerShm(g1.allocShm(8192)));
    const stuck = g1.invoke(s1, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]);
    stuck.next();
    expect(os.counters(1)).toEqual({ sessions: 1, threads: 1, registrations: 1, pages: 2, rpcBuffers: 0 });
    expect(hyp(OPTEE_SMC.VM_DESTROYED, 1)[0]).toBe(R.OK);
    expect(os.counters(1)).toEqual(zeros);
    expect(os.busyThreads).toBe(0);
    expect(os.guests.has(1)).toBe(false);
    // The destroyed guest's resume finds nobody.
    expect(() => run(stuck)).not.toThrow();
    expect(as(1)(OPTEE_SMC.CALLS_COUNT)[0]).toBe(R.ENOTAVAIL);
    expect(run(g2.invoke(s2, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(8)])).msg.params[0]!.a).toBe(9n);
  });

  it("a decoded copy, not guest memory, is what a suspended thread completes: the argument rewritten during an RPC changes nothing", () => {
    const { create, guest, mem } = setup();
    create(1);
    const g = guest(1);
    const s = run(g.openSession(HELLO_WORLD_UUID)).session;
    const r = run(g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(41)]), (step) => {
      if (step.rpc !== "CMD") return;
      const bytes = mem.read(g.lastArg, msgSize(1))!;
      const m = decodeMsg(bytes, 1);
      m.params[0]!.a = 1000n;
      m.func = TA_HELLO_WORLD_CMD_DEC_VALUE;
      mem.write(g.lastArg, encodeMsg(m));
    });
    expect(r.msg.params[0]!.a).toBe(42n);
  });
});

describe("README.md", () => {
  const readme = readFileSync(join(import.meta.dirname, "README.md"), "utf8");
  it("lists every OP-TEE function ID with its value, and every message command", () => {
    for (const [name, def] of Object.entries(F)) {
      expect(readme, name).toContain(name);
      expect(readme, name).toContain(`0x${def.smc32.toString(16).toUpperCase().padStart(8, "0")}`);
    }
    for (const name of Object.keys(MSG_CMD)) expect(readme, name).toContain(name);
  });
});
