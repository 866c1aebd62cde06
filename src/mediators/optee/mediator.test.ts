// The OP-TEE mediator, end to end: scripted VMs whose guest OP-TEE driver (test/support/optee-guest.ts)
// talks through the router and the mediator to the modelled OP-TEE. Exact codes from optee_smc.h and
// optee_msg.h; hostile guests get the documented error and no other VM notices.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { interleave, OpteeGuest, param, run, type GuestShm, type GuestStep } from "../../../test/support/optee-guest.js";
import { chacha20 } from "../../firmware/optee/chacha20.js";
import { CONTENT_DECRYPT_UUID, DECRYPT_PIECE, TA_DECRYPT_CMD_DECRYPT, TA_DECRYPT_CMD_KEY_PRESENT } from "../../firmware/optee/tas/content-decrypt.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_DEC_VALUE, TA_HELLO_WORLD_CMD_INC_VALUE } from "../../firmware/optee/tas/hello-world.js";
import { RNG_TA_UUID, TA_CMD_GET_ENTROPY } from "../../firmware/optee/tas/rng.js";
import { HypervisorHeap } from "../../hypervisor/heap.js";
import { Hypervisor } from "../../hypervisor/hypervisor.js";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import { ArrayGuestMemory } from "../../machine/scripted/memory.js";
import { parseConfigText, type VmConfig } from "../../policy/load.js";
import { CALL_SMC, SmcCall, SmcResult } from "../../router/call.js";
import { OPTEE_FUNCTIONS as F } from "../../smccc/functions/optee.js";
import { ATTR, ATTR_META, ATTR_NONCONTIG, MSG_CMD, OPTEE_MSG_UID, OPTEE_RET as R, OPTEE_SMC, ORIGIN, PAGE_SIZE, PAGELIST_ENTRIES, SEC_CAP, TEEC } from "../../smccc/optee/abi.js";
import { decodeMsg, encodeMsg, msgSize, type MsgArg, type MsgParam } from "../../smccc/optee/msg.js";
import type { MediatorHost } from "../mediator.js";
import { OpteeMediator } from "./mediator.js";

const KEY_A = "a1".repeat(32);
const KEY_B = "b2".repeat(32);
const IPA = 0x4000_0000n;
const RAM = 4n << 20n;
/** Where the config below places each VM's RAM in the platform's physical address space. */
const PA = { a: 0x1_0000_0000n, b: 0x1_0040_0000n, c: 0x1_0080_0000n };
const SECURE = 0x0e00_0000n;
const ONES32 = 0xffff_ffffn;
const ZERO_COUNTERS = { inFlight: 0, pendingRpc: 0, sessions: 0, registrations: 0, pages: 0, rpcBuffers: 0 };

/**
 * Three VMs (a and b with the TEE, c without) on one OP-TEE. `unchecked` sets limits after validation, as a
 * config that bypassed it would have them (calls in flight that overcommit OP-TEE's threads).
 */
function machine(opts: { threads?: number; maxGuests?: number; limits?: string; extraVms?: string; unchecked?: { callsInFlight: number } } = {}) {
  const log: string[] = [];
  const parsed = parseConfigText(
    `
platform:
  secureMemory: [{ name: tee-os, base: 0x0e000000, size: 16MiB }]
  tee: { os: optee, threads: ${opts.threads ?? 8}, maxGuests: ${opts.maxGuests ?? 4}${opts.limits ? `, limits: ${opts.limits}` : ""} }
vms:
  a: { tee: { mediator: optee, contentKey: "${KEY_A}" }, memory: { base: 0x40000000, size: 4MiB } }
  b: { tee: { mediator: optee, contentKey: "${KEY_B}" }, memory: { base: 0x40000000, size: 4MiB } }
  c: { memory: { base: 0x40000000, size: 4MiB } }
${opts.extraVms ?? ""}`,
    "yaml",
  );
  if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
  const tee = parsed.value.platform.tee!;
  const config = opts.unchecked ? { ...parsed.value, platform: { ...parsed.value.platform, tee: { ...tee, limits: { ...tee.limits, ...opts.unchecked } } } } : parsed.value;
  const m = ScriptedMachine.fromConfig(config, { log: (l) => log.push(l) });
  const os = m.hypervisor.optee!;
  const mediator = m.hypervisor.mediators.get("optee")!;
  return { m, os, mediator, log, heap: m.hypervisor.heap, a: OpteeGuest.forVm(m.vm("a")), b: OpteeGuest.forVm(m.vm("b")) };
}

const msg = (cmd: number, params: MsgParam[], over: Partial<MsgArg> = {}): MsgArg => ({ cmd, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params, ...over });
const raw = (attr: number, a: bigint, b: bigint, c = 0n): MsgParam => ({ attr: BigInt(attr), a, b, c });
const u32 = (v: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
};
const u64 = (v: bigint) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
};
/** Whether every byte is zero (a word at a time: the VMs' RAM is scanned whole). */
const allZero = (bytes: Uint8Array) => {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (let i = words.length << 2; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
};
const sessionOf = (g: OpteeGuest, uuid: string) => {
  const r = run(g.openSession(uuid));
  expect(r).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
  return r.session;
};

describe("enabling the TEE for a VM (R11)", () => {
  it("probes OP-TEE once at start-up and creates one OP-TEE guest per VM with the TEE, with its VM ID", () => {
    const { m, os, mediator } = machine();
    expect((mediator as OpteeMediator).present).toBe(true);
    expect([...os.guests.keys()]).toEqual([1, 2]);
    const own = m.trace.events().filter((e) => e.vm === "hypervisor");
    expect(own.map((e) => [e.fid, e.origin])).toEqual([
      [OPTEE_SMC.CALLS_UID, "optee mediator: probe"],
      [OPTEE_SMC.VM_CREATED, "optee mediator: VM_CREATED a"],
      [OPTEE_SMC.VM_CREATED, "optee mediator: VM_CREATED b"],
    ]);
  });

  it("gives the user the guest limit as an error at enable time, with the path vms.<name>.tee", () => {
    expect(() => machine({ maxGuests: 1 })).toThrow("vms.b.tee: cannot enable optee: OP-TEE has no room for another guest (VM_CREATED answered ENOTAVAIL)");
    const parsed = parseConfigText(
      "platform:\n  tee: { os: optee, maxGuests: 2 }\nvms:\n  a: { tee: optee, memory: { size: 1MiB } }\n  b: { tee: optee, memory: { size: 1MiB } }\n  c: { tee: optee, memory: { size: 1MiB } }\n",
      "yaml",
    );
    if (!parsed.ok) throw new Error("config");
    const r = Hypervisor.fromConfig(parsed.value);
    expect(r).toEqual({ ok: false, errors: [{ path: "vms.c.tee", message: "cannot enable optee: OP-TEE has no room for another guest (VM_CREATED answered ENOTAVAIL)" }] });
  });

  it("leaves nothing of a VM whose enabling failed, and enables it once another VM is gone", () => {
    const parsed = parseConfigText("platform:\n  tee: { os: optee, maxGuests: 1 }\nvms:\n  a: { tee: optee, memory: { size: 1MiB } }\n  b: { tee: optee, memory: { size: 1MiB } }\n", "yaml");
    if (!parsed.ok) throw new Error("config");
    const hv = new Hypervisor(parsed.value.platform);
    const [a, b] = parsed.value.vms as [VmConfig, VmConfig];
    expect(hv.createDomain(a).ok).toBe(true);
    const refused = hv.createDomain(b);
    expect(refused).toMatchObject({ ok: false, errors: [{ path: "vms.b.tee" }] });
    expect(hv.domains.has("b")).toBe(false);
    expect(hv.router.getVm("b")).toBeUndefined();
    expect(hv.optee!.guests.has(2)).toBe(false);
    expect(hv.destroyDomain("a")).toBe(true);
    expect(hv.createDomain(b).ok).toBe(true);
    expect([...hv.optee!.guests.keys()]).toEqual([2]);
  });

  it("without OP-TEE in the secure world: the probe says so silently, and enabling is an error", () => {
    const lines: string[] = [];
    const host: MediatorHost = {
      secureCall: () => [0xffff_ffff, 0, 0, 0, 0, 0, 0, 0],
      memory: () => undefined,
      ipaToPa: () => null,
      heap: { alloc: () => null, free: () => {}, read: () => null, write: () => false, inUse: 0 },
      log: (_vm, _key, line) => lines.push(line),
    };
    const med = new OpteeMediator(host);
    expect(med.probe()).toBe(false);
    expect(med.enable({ name: "v", id: 1 } as VmConfig)).toEqual({ ok: false, message: "there is no OP-TEE in the secure world" });
    expect(lines).toEqual([]);
  });
});

describe("a platform without a TEE", () => {
  it("probes silently, and a VM asking for one is a config error with its path", () => {
    const lines: string[] = [];
    const m = ScriptedMachine.fromText("vms:\n  a: { memory: { size: 1MiB } }\n", "yaml", { log: (l) => lines.push(l) });
    expect((m.hypervisor.mediators.get("optee") as OpteeMediator).present).toBe(false);
    expect(m.hypervisor.optee).toBeNull();
    expect(lines).toEqual([]);
    expect(m.vm("a").vcpu(0).smc(OPTEE_SMC.CALLS_UID).x0).toBe(ONES32);
    expect(() => ScriptedMachine.fromText("vms:\n  a: { tee: optee, memory: { size: 1MiB } }\n")).toThrow("vms.a.tee: the platform has no TEE (platform.tee)");
  });
});

describe("a VM without the TEE enabled gets -1 (0xFFFFFFFF as an SMC32 result)", () => {
  it("for every OP-TEE function ID, by SMC and by HVC", () => {
    const { m } = machine();
    const c = m.vm("c").vcpu(0);
    for (const [name, def] of Object.entries(F)) {
      for (const r of [c.smc(def.smc32, 0, 0, 0), c.hvc(def.smc32, 0, 0, 0)]) {
        expect(r.x0, name).toBe(ONES32);
        expect(r.decision.action).toBe("deny");
      }
    }
  });

  it("also when its policy routes the owner to the mediator itself", () => {
    const { m } = machine({ extraVms: '  d:\n    memory: { base: 0x40000000, size: 1MiB }\n    grants: [{ owner: trusted-os, action: "mediate:optee" }]\n' });
    const r = m.vm("d").vcpu(0).smc(OPTEE_SMC.CALLS_UID);
    expect(r.decision.action).toBe("mediate");
    expect(r.x0).toBe(ONES32);
  });
});

describe("fast calls through the mediator", () => {
  it("answers what a guest's driver asks at probe: UID, revisions, capabilities without static SHM or VIRTUALIZATION, threads, devices", () => {
    const { a, m } = machine();
    const info = run(a.probe());
    expect(info).toEqual({
      uidOk: true,
      osRevision: [4, 0, 0x5356],
      apiRevision: [2, 0],
      // OP-TEE says VIRTUALIZATION to the hypervisor; a guest has an OP-TEE of its own (as under Xen).
      caps: SEC_CAP.DYNAMIC_SHM | SEC_CAP.MEMREF_NULL,
      threads: 8,
      shmCache: R.OK,
      devices: [RNG_TA_UUID],
    });
    const v = m.vm("a").vcpu(0);
    expect(v.smc(OPTEE_SMC.CALLS_COUNT).x0).toBe(14n);
    expect(v.smc(OPTEE_SMC.CALLS_UID).regs.slice(0, 4)).toEqual(OPTEE_MSG_UID.map(BigInt));
    expect(v.hvc(OPTEE_SMC.CALL_GET_OS_UUID).regs.slice(0, 4)).toEqual([0x4861_78e0n, 0xe7f8_11e3n, 0xbc5e_0002n, 0xa5d5_c51bn]);
  });

  it("hides static shared memory: GET_SHM_CONFIG is ENOTAVAIL", () => {
    const { m } = machine();
    expect(m.vm("a").vcpu(0).smc(OPTEE_SMC.GET_SHM_CONFIG).regs.slice(0, 4)).toEqual([BigInt(R.ENOTAVAIL), 0n, 0n, 0n]);
  });

  it("refuses with UNKNOWN_FUNCTION what is the hypervisor's or not offered: VM lifecycle, secondary boot, L2CC, notifications, RPC_ARG calls, SMC64", () => {
    const { m, os } = machine();
    const v = m.vm("a").vcpu(0);
    for (const fid of [OPTEE_SMC.VM_CREATED, OPTEE_SMC.VM_DESTROYED, OPTEE_SMC.BOOT_SECONDARY, OPTEE_SMC.L2CC_MUTEX, OPTEE_SMC.ENABLE_ASYNC_NOTIF, OPTEE_SMC.GET_ASYNC_NOTIF_VALUE, F.OPTEE_SMC_GET_PROTMEM_CONFIG.smc32, OPTEE_SMC.CALL_WITH_RPC_ARG, OPTEE_SMC.CALL_WITH_REGD_ARG, 0xf200_0000, 0x7200_0004, 0x3200_0005, 0x0200_0000, 0xbe00_0000]) {
      expect(v.smc(fid, 3).x0, `0x${fid.toString(16)}`).toBe(BigInt(R.UNKNOWN_FUNCTION));
    }
    // A guest cannot destroy another VM's OP-TEE guest.
    expect(os.guests.has(2)).toBe(true);
  });

  it("puts the VM's own client ID in a7, whatever the guest put there", () => {
    const { m, os, a } = machine();
    const v = m.vm("a").vcpu(0);
    v.setX(7, 2); // b's ID
    expect(v.smc(OPTEE_SMC.ENABLE_SHM_CACHE).x0).toBe(0n);
    v.setX(7, 0); // the hypervisor's
    sessionOf(a, HELLO_WORLD_UUID);
    expect(os.counters(1).sessions).toBe(1);
    expect(os.counters(2).sessions).toBe(0);
  });

  it("works the same from an AArch32 VM", () => {
    const { m } = machine({ extraVms: "  d: { aarch32: true, tee: optee, memory: { base: 0x40000000, size: 2MiB } }\n" });
    const d = OpteeGuest.forVm(m.vm("d"));
    expect(run(d.probe()).devices).toEqual([RNG_TA_UUID]);
    const s = sessionOf(d, HELLO_WORLD_UUID);
    expect(run(d.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(9)])).msg.params[0]!.a).toBe(10n);
  });
});

describe("what the mediator changes in the secure world's answers (a fake OP-TEE)", () => {
  function fake(answers: Record<number, number[]>) {
    const seen: number[][] = [];
    const host: MediatorHost = {
      secureCall: (_o, _vm, regs) => {
        seen.push([...regs]);
        return answers[regs[0]!] ?? (regs[0] === OPTEE_SMC.CALLS_UID ? [...OPTEE_MSG_UID] : [R.OK, 0, 0, 0]);
      },
      memory: () => undefined,
      ipaToPa: () => null,
      heap: { alloc: () => null, free: () => {}, read: () => null, write: () => false, inUse: 0 },
      log: () => {},
    };
    const med = new OpteeMediator(host);
    med.probe();
    expect(med.enable({ name: "v", id: 5 } as VmConfig)).toEqual({ ok: true });
    const call = (fid: number, a1 = 0) => {
      const words = new Uint32Array(36);
      words[0] = fid;
      words[2] = a1;
      const c = new SmcCall();
      c.load(words, fid, fid, 0, 7, CALL_SMC);
      const res = new SmcResult();
      med.handle(c, res, { vmId: 5, vmName: "v", vcpu: 0 });
      return [0, 1, 2, 3].map((n) => Number(res.get(n) & 0xffff_ffffn));
    };
    return { call, seen };
  }

  it("tells the guest only DYNAMIC_SHM and MEMREF_NULL: no reserved or unregistered SHM, VIRTUALIZATION, notifications, RPC_ARG or unknown bits; never asks for GET_SHM_CONFIG", () => {
    const all = SEC_CAP.HAVE_RESERVED_SHM | SEC_CAP.UNREGISTERED_SHM | SEC_CAP.DYNAMIC_SHM | SEC_CAP.VIRTUALIZATION | SEC_CAP.MEMREF_NULL | SEC_CAP.ASYNC_NOTIF | SEC_CAP.RPC_ARG | (1 << 7) | (1 << 31);
    const { call, seen } = fake({ [OPTEE_SMC.EXCHANGE_CAPABILITIES]: [R.OK, all >>> 0, 64, 6], [OPTEE_SMC.GET_SHM_CONFIG]: [R.OK, 0x4200_0000, 0x20_0000, 1] });
    expect(call(OPTEE_SMC.EXCHANGE_CAPABILITIES)).toEqual([R.OK, SEC_CAP.DYNAMIC_SHM | SEC_CAP.MEMREF_NULL, 0, 0]);
    expect(call(OPTEE_SMC.GET_SHM_CONFIG)).toEqual([R.ENOTAVAIL, 0, 0, 0]);
    expect(seen.map((r) => r[0])).not.toContain(OPTEE_SMC.GET_SHM_CONFIG);
    // Every call it makes for the VM carries the VM's client ID in a7.
    expect(seen.filter((r) => r[0] === OPTEE_SMC.EXCHANGE_CAPABILITIES).map((r) => r[7])).toEqual([5]);
  });

  it("requires dynamic shared memory: without it the guest gets ENOTAVAIL", () => {
    const { call } = fake({ [OPTEE_SMC.EXCHANGE_CAPABILITIES]: [R.OK, SEC_CAP.HAVE_RESERVED_SHM, 0, 0] });
    expect(call(OPTEE_SMC.EXCHANGE_CAPABILITIES)[0]).toBe(R.ENOTAVAIL);
  });

  it("holds at most one RPC buffer per call in flight for a VM: an OP-TEE that never frees them gets failed allocations beyond that", () => {
    const seen: number[][] = [];
    let thread = 0;
    const mem = new ArrayGuestMemory(IPA, RAM);
    const host: MediatorHost = {
      secureCall: (_o, _vm, regs) => {
        seen.push([...regs]);
        if (regs[0] === OPTEE_SMC.CALLS_UID) return [...OPTEE_MSG_UID, 0, 0, 0, 0];
        // Every call asks for an RPC argument, and completes without freeing it.
        if (regs[0] === OPTEE_SMC.CALL_WITH_ARG) return [(0xffff_0000 | 0) >>> 0, msgSize(4), 0, thread++, 0, 0, 0, 0];
        return [R.OK, 0, 0, 0, 0, 0, 0, 0];
      },
      memory: () => mem,
      ipaToPa: (_vm, ipa, length) => (ipa >= IPA && ipa + length <= IPA + RAM ? ipa - IPA + PA.a : null),
      heap: new HypervisorHeap(),
      log: () => {},
    };
    const med = new OpteeMediator(host, { callsInFlight: 2, registrations: 8, pages: 64, sessions: 8 });
    med.probe();
    expect(med.enable({ name: "v", id: 5 } as VmConfig)).toEqual({ ok: true });
    mem.write(IPA, encodeMsg(msg(MSG_CMD.CANCEL, [])));
    const smc = (...regs: number[]) => {
      const words = new Uint32Array(36);
      regs.forEach((v, n) => (words[2 * n] = v >>> 0));
      const c = new SmcCall();
      c.load(words, regs[0]!, regs[0]!, 0, 7, CALL_SMC);
      const res = new SmcResult();
      med.handle(c, res, { vmId: 5, vmName: "v", vcpu: 0 });
      return [0, 1, 2, 3].map((n) => Number(res.get(n) & 0xffff_ffffn));
    };
    for (let i = 0; i < 10; i++) {
      const rpc = smc(OPTEE_SMC.CALL_WITH_ARG, 0, Number(IPA), 0);
      expect(rpc[0]).toBe(0xffff_0000);
      // The guest answers each ALLOC with a page of its RAM and a new cookie.
      expect(smc(OPTEE_SMC.RETURN_FROM_RPC, 0, Number(IPA + 0x10_0000n + BigInt(i * PAGE_SIZE)), rpc[3]!, 0, 100 + i)[0]).toBe(R.OK);
    }
    expect(med.counters("v")).toMatchObject({ rpcBuffers: 2, inFlight: 0, pendingRpc: 0 });
    const allocAnswers = seen.filter((r) => r[0] === OPTEE_SMC.RETURN_FROM_RPC).map((r) => (r[1]! | r[2]!) !== 0);
    expect(allocAnswers).toEqual([true, true, ...Array<boolean>(8).fill(false)]);
  });

  it("passes OP-TEE's own refusal of the guest's capabilities through", () => {
    const { call } = fake({ [OPTEE_SMC.EXCHANGE_CAPABILITIES]: [R.ENOTAVAIL, 0, 0, 0] });
    expect(call(OPTEE_SMC.EXCHANGE_CAPABILITIES, 2)[0]).toBe(R.ENOTAVAIL);
  });
});

describe("sessions and trusted applications through the mediator", () => {
  it("hello world: open, invoke (INC, DEC), close, with the RPCs translated both ways", () => {
    const { a, mediator, heap } = machine();
    const s = sessionOf(a, HELLO_WORLD_UUID);
    const inc = run(a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(41)]));
    expect(inc).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS, origin: ORIGIN.TRUSTED_APP });
    expect(inc.msg.params[0]!.a).toBe(42n);
    expect(a.rpcCounts).toMatchObject({ ALLOC: 1, CMD: 1, FREE: 1 });
    expect(a.rpcCmds).toEqual([3]);
    expect(run(a.invoke(s, TA_HELLO_WORLD_CMD_DEC_VALUE, [param.valueInout(42)])).msg.params[0]!.a).toBe(41n);
    expect(run(a.closeSession(s))).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
    expect(mediator.counters("a")).toEqual(ZERO_COUNTERS);
    expect(heap.inUse).toBe(0);
  });

  it("RNG TA: entropy lands at the guest's own addresses; the other VM's RAM at the same IPAs is untouched", () => {
    const { a, m } = machine();
    const s = sessionOf(a, RNG_TA_UUID);
    const tmp = a.allocShm(64, { contiguous: true });
    const r = run(a.invoke(s, TA_CMD_GET_ENTROPY, [param.tmem("inout", tmp.addr(0), 64)]));
    expect(r).toMatchObject({ result: TEEC.SUCCESS });
    expect(r.msg.params[0]!.b).toBe(64n);
    // The guest's TMEM address stays its IPA in its argument: the translated PA never comes back.
    expect(r.msg.params[0]!.a).toBe(tmp.addr(0));
    expect(allZero(tmp.read())).toBe(false);
    expect(allZero(m.vm("b").memory.bytes)).toBe(true);
    const shm = a.allocShm(5000, { offset: 200 });
    run(a.registerShm(shm));
    expect(run(a.invoke(s, TA_CMD_GET_ENTROPY, [param.rmem("inout", shm)])).msg.params[0]!.b).toBe(4096n);
    expect(allZero(shm.read(0, 4096))).toBe(false);
    expect(allZero(shm.read(4096))).toBe(true);
  });

  it("content decryption uses the calling VM's key: VM A's key does not decrypt what B's key encrypted", () => {
    const { a, b } = machine();
    const keyA = Buffer.from(KEY_A, "hex"), keyB = Buffer.from(KEY_B, "hex");
    const plain = Uint8Array.from({ length: DECRYPT_PIECE + 20_000 }, (_, i) => (i * 31 + 7) & 0xff);
    const nonce = new Uint8Array(12);
    nonce.set(u32(0x0102_0304), 0);
    nonce.set(u32(0x0506_0708), 4);
    const forB = new Uint8Array(plain.length);
    chacha20(keyB, nonce, 0, plain, forB);
    const decrypt = (g: OpteeGuest) => {
      const s = sessionOf(g, CONTENT_DECRYPT_UUID);
      expect(run(g.invoke(s, TA_DECRYPT_CMD_KEY_PRESENT, [param.valueOut()])).msg.params[0]!.a).toBe(1n);
      const input = g.allocShm(plain.length);
      const output = g.allocShm(plain.length);
      input.write(forB);
      run(g.registerShm(input));
      run(g.registerShm(output));
      const r = run(g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0x0102_0304, 0x0506_0708)]));
      expect(r).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
      expect(r.msg.params[1]!.b).toBe(BigInt(plain.length));
      return output.read();
    };
    expect(decrypt(b)).toEqual(plain);
    const fromA = decrypt(a);
    expect(fromA).not.toEqual(plain);
    const expected = new Uint8Array(plain.length);
    chacha20(keyA, nonce, 0, forB, expected);
    expect(fromA).toEqual(expected);
    expect(a.rpcCounts.FOREIGN_INTR).toBe(1); // a piece and 20,000 bytes: two pieces
  });

  it("a VM with the TEE but no content key is refused decryption (ACCESS_DENIED from the TA)", () => {
    const { m } = machine({ extraVms: "  d: { tee: optee, memory: { base: 0x40000000, size: 2MiB } }\n" });
    const d = OpteeGuest.forVm(m.vm("d"));
    const s = sessionOf(d, CONTENT_DECRYPT_UUID);
    expect(run(d.invoke(s, TA_DECRYPT_CMD_KEY_PRESENT, [param.valueOut()])).msg.params[0]!.a).toBe(0n);
    const buf = d.allocShm(64, { contiguous: true });
    const r = run(d.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.tmem("in", buf.addr(0), 32), param.tmem("out", buf.addr(32), 32), param.valueIn(0)]));
    expect(r).toMatchObject({ result: TEEC.ERROR_ACCESS_DENIED, origin: ORIGIN.TRUSTED_APP });
  });
});

describe("hostile guests: addresses are translated and checked, every refusal is documented and harmless", () => {
  /** A raw message from `g`; the answer and what the guest reads back. */
  const send = (g: OpteeGuest, m: MsgArg) => run(g.message(m));
  const settled = (t: ReturnType<typeof machine>) => {
    expect(t.heap.inUse).toBe(0);
    expect(t.mediator.counters("a")).toMatchObject({ inFlight: 0, pendingRpc: 0 });
    expect(t.os.busyThreads).toBe(0);
  };

  it("a message argument outside the VM's RAM, misaligned, or with more than 127 parameters: EBADADDR", () => {
    const t = machine();
    const v = t.m.vm("a").vcpu(0);
    const call = (ipa: bigint) => v.smc(OPTEE_SMC.CALL_WITH_ARG, Number(ipa >> 32n), Number(ipa & 0xffff_ffffn), 0).x0;
    expect(call(0n)).toBe(BigInt(R.EBADADDR));
    expect(call(PA.a)).toBe(BigInt(R.EBADADDR)); // its own RAM by platform address: not an IPA of it
    expect(call(PA.b)).toBe(BigInt(R.EBADADDR));
    expect(call(SECURE)).toBe(BigInt(R.EBADADDR));
    expect(call(IPA + 4n)).toBe(BigInt(R.EBADADDR));
    t.m.vm("a").memory.write(IPA + 0x1000n, encodeMsg(msg(MSG_CMD.CANCEL, [])));
    t.m.vm("a").memory.write(IPA + 0x1000n + 28n, u32(128));
    expect(call(IPA + 0x1000n)).toBe(BigInt(R.EBADADDR));
    // Header in RAM, parameters past its end.
    const end = IPA + RAM - 40n;
    t.m.vm("a").memory.write(end, encodeMsg(msg(MSG_CMD.CANCEL, [])));
    t.m.vm("a").memory.write(end + 28n, u32(1));
    expect(call(end)).toBe(BigInt(R.EBADADDR));
    settled(t);
  });

  it("reports what a hostile guest does rate-limited, however it varies the details", () => {
    const t = machine();
    const v = t.m.vm("a").vcpu(0);
    const at = IPA + 0x1000n;
    t.m.vm("a").memory.write(at, encodeMsg(msg(MSG_CMD.CANCEL, [])));
    for (let n = 0; n < 3000; n++) {
      t.m.vm("a").memory.write(at + 28n, u32(128 + n));
      expect(v.smc(OPTEE_SMC.CALL_WITH_ARG, 0, Number(at), 0).x0).toBe(BigInt(R.EBADADDR));
      t.m.vm("a").memory.write(at + 28n, u32(0));
      t.m.vm("a").memory.write(at, u32(100 + n));
      expect(v.smc(OPTEE_SMC.CALL_WITH_ARG, 0, Number(at), 0).x0).toBe(BigInt(R.EBADCMD));
    }
    expect(t.log.length).toBeLessThan(40);
    expect(t.log[0]).toBe("smcvisor: optee mediator: a: message argument with 128 parameters");
  });

  it("temporary memrefs outside the VM's own RAM: BAD_PARAMETERS from COMMS, nothing written anywhere", () => {
    const t = machine();
    const s = sessionOf(t.a, RNG_TA_UUID);
    for (const [what, addr, size] of [
      ["outside RAM", 0x5000_0000n, 64n],
      ["running past the end of RAM", IPA + RAM - 32n, 64n],
      ["secure memory by platform address", SECURE, 64n],
      ["the other VM's RAM by platform address", PA.b + 0x10_0000n, 64n],
      ["its own RAM by platform address", PA.a + 0x10_0000n, 64n],
      ["a size that wraps", IPA + 0x10_0000n, (1n << 64n) - 1n],
    ] as const) {
      const r = run(t.a.invoke(s, TA_CMD_GET_ENTROPY, [param.tmem("inout", addr, size)]));
      expect(r.a0, what).toBe(R.OK);
      expect(r.msg, what).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS, retOrigin: ORIGIN.COMMS });
    }
    expect(allZero(t.m.vm("b").memory.bytes)).toBe(true);
    settled(t);
  });

  it("attributes the protocol does not allow: META outside OPEN_SESSION's first two, NONCONTIG on values, unknown types and bits", () => {
    const t = machine();
    const s = sessionOf(t.a, HELLO_WORLD_UUID);
    const buf = t.a.allocShm(64, { contiguous: true }).addr(0);
    for (const p of [
      raw(ATTR.VALUE_INOUT | ATTR_META, 1n, 0n),
      raw(ATTR.VALUE_INOUT | ATTR_NONCONTIG, 1n, 0n),
      raw(4, 0n, 0n),
      raw(8, buf, 64n),
      raw(0xc, buf, 64n),
      raw(ATTR.VALUE_INOUT | (1 << 10), 1n, 0n),
      { attr: (1n << 40n) | BigInt(ATTR.VALUE_INOUT), a: 1n, b: 0n, c: 0n },
      raw(ATTR.RMEM_INOUT, 0n, 16n, 0x5eedn), // a cookie this VM never registered
    ]) {
      const r = send(t.a, msg(MSG_CMD.INVOKE_COMMAND, [p], { session: s, func: TA_HELLO_WORLD_CMD_INC_VALUE }));
      expect(r.msg, `attr 0x${p.attr.toString(16)}`).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS, retOrigin: ORIGIN.COMMS });
    }
    settled(t);
  });

  it("message commands beyond the protocol (notifications, protected memory): EBADCMD, the message untouched", () => {
    const t = machine();
    for (const cmd of [MSG_CMD.DO_BOTTOM_HALF, MSG_CMD.STOP_ASYNC_NOTIF, 8, 9, 10, 11, 0xffff_ffff]) {
      const r = send(t.a, msg(cmd, [], { ret: 0x1234, retOrigin: 0x5678 }));
      expect(r.a0).toBe(R.EBADCMD);
      expect(r.msg).toMatchObject({ ret: 0x1234, retOrigin: 0x5678 });
    }
    settled(t);
  });

  describe("page lists", () => {
    /** REGISTER_SHM of `pages` pages described by the list at `list` (written by the test). */
    const register = (t: ReturnType<typeof machine>, list: bigint, pages: number, cookie = 0x77n) =>
      send(t.a, msg(MSG_CMD.REGISTER_SHM, [raw(ATTR.TMEM_OUTPUT | ATTR_NONCONTIG, list, BigInt(pages * PAGE_SIZE), cookie)]));
    const writeList = (t: ReturnType<typeof machine>, at: bigint, entries: readonly bigint[], next = 0n) => {
      const page = new Uint8Array(PAGE_SIZE);
      const dv = new DataView(page.buffer);
      entries.forEach((e, i) => dv.setBigUint64(8 * i, e, true));
      dv.setBigUint64(8 * PAGELIST_ENTRIES, next, true);
      t.m.vm("a").memory.write(at, page);
    };
    const L1 = IPA + 0x20_0000n, L2 = IPA + 0x20_1000n, P = IPA + 0x30_0000n;
    const full = Array.from({ length: PAGELIST_ENTRIES }, () => P);

    it.each([
      ["whose next pointer loops to itself", (t: ReturnType<typeof machine>) => writeList(t, L1, full, L1), 600],
      ["that loops through two pages", (t: ReturnType<typeof machine>) => (writeList(t, L1, full, L2), writeList(t, L2, full, L1)), 1100],
      ["whose next pointer is not page-aligned", (t: ReturnType<typeof machine>) => writeList(t, L1, full, L1 + 0x10n), 600],
      ["with an entry outside the VM's RAM", (t: ReturnType<typeof machine>) => writeList(t, L1, [P, 0x8000_0000n]), 2],
      ["with an entry in secure memory", (t: ReturnType<typeof machine>) => writeList(t, L1, [SECURE, P]), 2],
      ["with an entry in the other VM's RAM", (t: ReturnType<typeof machine>) => writeList(t, L1, [P, PA.b + 0x30_0000n]), 2],
      ["with an entry in the hypervisor's own pages", (t: ReturnType<typeof machine>) => writeList(t, L1, [t.heap.base]), 1],
      ["with a misaligned entry", (t: ReturnType<typeof machine>) => writeList(t, L1, [P + 0x100n]), 1],
      ["whose second list page is outside the VM's RAM", (t: ReturnType<typeof machine>) => writeList(t, L1, full, 0x9000_0000n), 512],
    ])("a list %s is refused (BAD_PARAMETERS from COMMS), registers nothing, and the other VM carries on", (_what, write, pages) => {
      const t = machine();
      const sb = sessionOf(t.b, HELLO_WORLD_UUID);
      // b has a call suspended in OP-TEE meanwhile.
      const pending = t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(70)]);
      expect(pending.next().value).toMatchObject({ rpc: "ALLOC" });
      write(t);
      const r = register(t, L1, pages);
      expect(r.a0).toBe(R.OK);
      expect(r.msg).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS, retOrigin: ORIGIN.COMMS });
      expect(t.mediator.counters("a")).toEqual(ZERO_COUNTERS);
      expect(t.os.counters(1)).toMatchObject({ registrations: 0, pages: 0 });
      expect(t.log.some((l) => l.includes("optee mediator: a: page list refused"))).toBe(true);
      expect(run(pending).msg.params[0]!.a).toBe(71n);
      expect(t.heap.inUse).toBe(0);
      expect(t.os.busyThreads).toBe(0);
    });

    it("a well-formed list of scattered pages registers and its pages are the VM's own, translated", () => {
      const t = machine();
      const shm = t.a.allocShm(3 * PAGE_SIZE);
      expect(run(t.a.registerShm(shm))).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
      expect(t.mediator.counters("a")).toMatchObject({ registrations: 1, pages: 3 });
      expect(t.os.counters(1)).toMatchObject({ registrations: 1, pages: 3 });
      expect(t.heap.inUse).toBe(0); // the translated list lived as long as the call
    });

    it("a list rewritten after registration changes nothing: OP-TEE keeps the pages checked at registration", () => {
      const t = machine();
      const s = sessionOf(t.a, RNG_TA_UUID);
      const shm = t.a.allocShm(2 * PAGE_SIZE);
      // Register by hand to keep the list page and rewrite it afterwards.
      const list = t.a.writePageList(shm.pages);
      expect(send(t.a, msg(MSG_CMD.REGISTER_SHM, [raw(ATTR.TMEM_OUTPUT | ATTR_NONCONTIG, list.addr, BigInt(shm.size), shm.cookie)])).msg.ret).toBe(TEEC.SUCCESS);
      writeList(t, list.listPages[0]!, [PA.b, SECURE]);
      expect(run(t.a.invoke(s, TA_CMD_GET_ENTROPY, [param.rmem("inout", shm, 0, 2 * PAGE_SIZE)])).result).toBe(TEEC.SUCCESS);
      expect(allZero(shm.read(0, 4096))).toBe(false);
      expect(allZero(t.m.vm("b").memory.bytes)).toBe(true);
    });

    it("another VM's registration cookie is not this VM's: RMEM and UNREGISTER_SHM with it are BAD_PARAMETERS", () => {
      const t = machine();
      const shmA = t.a.allocShm(PAGE_SIZE);
      run(t.a.registerShm(shmA));
      const sb = sessionOf(t.b, RNG_TA_UUID);
      const r = run(t.b.invoke(sb, TA_CMD_GET_ENTROPY, [raw(ATTR.RMEM_INOUT, 0n, 64n, shmA.cookie)]));
      expect(r.msg).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS, retOrigin: ORIGIN.COMMS });
      expect(send(t.b, msg(MSG_CMD.UNREGISTER_SHM, [raw(ATTR.RMEM_INPUT, 0n, 0n, shmA.cookie)])).msg.ret).toBe(TEEC.ERROR_BAD_PARAMETERS);
      expect(allZero(shmA.read())).toBe(true);
      expect(t.os.counters(1).registrations).toBe(1);
      expect(run(t.a.unregisterShm(shmA)).result).toBe(TEEC.SUCCESS);
    });
  });

  describe("RPC", () => {
    it("an RPC ALLOC answered with memory the VM does not own reaches OP-TEE as a failed allocation; the TA goes on", () => {
      for (const addr of [0x5000_0000n, PA.b, SECURE, PA.a, IPA + RAM - 16n]) {
        const t = machine();
        const s = sessionOf(t.a, HELLO_WORLD_UUID);
        t.a.allocReply = () => ({ addr, cookie: 0x99n });
        const r = run(t.a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]));
        expect(r).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
        expect(r.msg.params[0]!.a).toBe(2n);
        expect(t.a.rpcCounts).toMatchObject({ ALLOC: 1, CMD: 0 });
        expect(t.mediator.counters("a").rpcBuffers).toBe(0);
        expect(allZero(t.m.vm("b").memory.bytes)).toBe(true);
        settled(t);
      }
    });

    it("RETURN_FROM_RPC resumes only this VM's own suspended call: another thread ID is ERESUME", () => {
      const t = machine();
      const v = t.m.vm("b").vcpu(0);
      expect(v.smc(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, 0).x0).toBe(BigInt(R.ERESUME));
      const s = sessionOf(t.a, HELLO_WORLD_UUID);
      const op = t.a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(5)]);
      const step = op.next().value as GuestStep;
      expect(step.rpc).toBe("ALLOC");
      expect(v.smc(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, step.regs[3]!).x0).toBe(BigInt(R.ERESUME));
      expect(v.smc(OPTEE_SMC.RETURN_FROM_RPC, 0, 0, 999).x0).toBe(BigInt(R.ERESUME));
      expect(run(op).msg.params[0]!.a).toBe(6n);
      settled(t);
    });
  });

  describe("time of check and time of use", () => {
    it("a message rewritten during an RPC: OP-TEE completes the checked copy, and results go back by the original types", () => {
      const t = machine();
      const s = sessionOf(t.a, HELLO_WORLD_UUID);
      const mem = t.m.vm("a").memory;
      const r = run(t.a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(41)]), (step) => {
        if (step.rpc !== "CMD") return;
        // The guest turns the call into a DEC of 1000 whose parameter is a TMEM into the other VM.
        mem.write(t.a.lastArg, encodeMsg(msg(MSG_CMD.INVOKE_COMMAND, [raw(ATTR.TMEM_OUTPUT, PA.b, 4096n)], { session: s, func: TA_HELLO_WORLD_CMD_DEC_VALUE })));
      });
      expect(r).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
      // value.a/b/c written where the value was; the guest's own attr stays as it left it.
      expect(r.msg.params[0]).toEqual({ attr: BigInt(ATTR.TMEM_OUTPUT), a: 42n, b: 0n, c: 0n });
      expect(allZero(t.m.vm("b").memory.bytes)).toBe(true);
      settled(t);
    });

    it("num_params changed between the mediator's two reads of the argument: the first count stands (no double fetch)", () => {
      const t = machine();
      const s = sessionOf(t.a, HELLO_WORLD_UUID);
      const mem = t.m.vm("a").memory;
      const read = mem.read.bind(mem), view = mem.view.bind(mem);
      let accesses = 0, raced = 0;
      // The mediator's first access to the argument copies the header; before its second (the parameters,
      // by copy or through a view), another vCPU announces 100 parameters.
      const race = (ipa: bigint) => {
        if (ipa !== t.a.lastArg || accesses++ !== 1) return;
        mem.write(ipa + 28n, u32(100));
        raced++;
      };
      mem.read = (ipa, n) => (race(ipa), read(ipa, n));
      mem.view = (ipa, n) => (race(ipa), view(ipa, n));
      // What OP-TEE is given: num_params of the shadow argument it reads.
      const seen: number[] = [];
      const handle = t.os.handle.bind(t.os);
      t.os.handle = (call, res, origin) => {
        if (call.fid === OPTEE_SMC.CALL_WITH_ARG) seen.push(new DataView(t.heap.read((BigInt(call.w(1)) << 32n) | BigInt(call.w(2)), 32)!.buffer).getUint32(28, true));
        return handle(call, res, origin);
      };
      const r = run(t.a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(41)]));
      expect(raced).toBe(1);
      expect(seen).toEqual([1]);
      expect(r).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
      expect(r.msg.params[0]!.a).toBe(42n);
      expect(t.log).toEqual([]);
      settled(t);
    });

    it("an output buffer pointer swapped during a foreign interrupt: the plaintext goes where the checked pointer said", () => {
      const t = machine();
      const key = Buffer.from(KEY_A, "hex");
      const s = sessionOf(t.a, CONTENT_DECRYPT_UUID);
      const n = DECRYPT_PIECE + 40_000;
      const plain = Uint8Array.from({ length: n }, (_, i) => (i * 13) & 0xff);
      const cipher = new Uint8Array(n);
      chacha20(key, new Uint8Array(12), 0, plain, cipher);
      const input = t.a.allocShm(n, { contiguous: true });
      const output = t.a.allocShm(n, { contiguous: true });
      const decoy = t.a.allocShm(n, { contiguous: true });
      input.write(cipher);
      const mem = t.m.vm("a").memory;
      let swapped = false;
      const r = run(t.a.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.tmem("in", input.addr(0), n), param.tmem("out", output.addr(0), n), param.valueIn(0, 0)]), (step) => {
        if (step.rpc !== "FOREIGN_INTR" || swapped) return;
        swapped = true;
        mem.write(t.a.lastArg + 32n + 32n + 8n, u64(decoy.addr(0)));
      });
      expect(swapped).toBe(true);
      expect(r.result).toBe(TEEC.SUCCESS);
      expect(output.read()).toEqual(plain);
      expect(allZero(decoy.read())).toBe(true);
    });
  });
});

describe("the hypervisor's own resources", () => {
  it("DISABLE_SHM_CACHE hands back OP-TEE's cached RPC buffers one by one, and the mediator forgets each", () => {
    const t = machine();
    run(t.a.probe());
    const s = sessionOf(t.a, HELLO_WORLD_UUID);
    run(t.a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]));
    expect(t.mediator.counters("a").rpcBuffers).toBe(1);
    expect(t.os.counters(1).rpcBuffers).toBe(1);
    expect(t.a.rpcBuffers.size).toBe(1);
    expect(run(t.a.disableShmCache())).toBe(R.ENOTAVAIL);
    expect(t.mediator.counters("a").rpcBuffers).toBe(0);
    expect(t.os.counters(1).rpcBuffers).toBe(0);
    expect(t.a.rpcBuffers.size).toBe(0);
  });

  it("no page left for a shadow argument is ENOMEM; none for a page list is OUT_OF_MEMORY; nothing leaks either way", () => {
    const t = machine();
    const s = sessionOf(t.a, RNG_TA_UUID);
    const alloc = t.heap.alloc.bind(t.heap);
    t.heap.alloc = () => null;
    expect(run(t.a.invoke(s, TA_CMD_GET_ENTROPY, [param.valueOut()])).a0).toBe(R.ENOMEM);
    const shm = t.a.allocShm(PAGE_SIZE);
    const r = run(t.a.registerShm(shm));
    expect(r).toMatchObject({ a0: R.OK, result: TEEC.ERROR_OUT_OF_MEMORY, origin: ORIGIN.COMMS });
    // A list page but no shadow.
    let left = 1;
    t.heap.alloc = (owner) => (left-- > 0 ? alloc(owner) : null);
    expect(run(t.a.registerShm(shm)).a0).toBe(R.ENOMEM);
    t.heap.alloc = alloc;
    expect(t.heap.inUse).toBe(0);
    expect(t.mediator.counters("a")).toEqual({ ...ZERO_COUNTERS, sessions: 1 });
    expect(run(t.a.registerShm(shm)).result).toBe(TEEC.SUCCESS);
  });
});

describe("memrefs without copies", () => {
  // A 64 KiB decrypt after one whole piece, so that a foreign interrupt comes between them.
  const n = DECRYPT_PIECE + 64 * 1024;
  const key = Buffer.from(KEY_A, "hex");
  const plain = Uint8Array.from({ length: n }, (_, i) => (i * 29 + 3) & 0xff);
  const cipher = new Uint8Array(n);
  chacha20(key, new Uint8Array(12), 0, plain, cipher);

  /**
   * VM a decrypts 64 KiB from one registered buffer into another; counts the bytes copied in and out of
   * its RAM and hypervisor pages by read and write (GuestMemory, PageHeap) during the invoke.
   */
  function decrypt64k(opts: { views: boolean; contiguous: boolean; onStep?: (step: GuestStep, input: GuestShm) => void }) {
    const t = machine();
    const mem = t.m.vm("a").memory;
    // A backend without views: every access is a copy.
    if (!opts.views) Object.defineProperty(mem, "view", { value: undefined });
    const s = sessionOf(t.a, CONTENT_DECRYPT_UUID);
    const input = t.a.allocShm(n, { contiguous: opts.contiguous }), output = t.a.allocShm(n, { contiguous: opts.contiguous });
    input.write(cipher);
    run(t.a.registerShm(input));
    run(t.a.registerShm(output));
    let copied = 0;
    const read = mem.read.bind(mem), write = mem.write.bind(mem), heapRead = t.heap.read.bind(t.heap), heapWrite = t.heap.write.bind(t.heap);
    mem.read = (ipa, len) => ((copied += len), read(ipa, len));
    mem.write = (ipa, data) => ((copied += data.length), write(ipa, data));
    t.heap.read = (pa, len) => ((copied += len), heapRead(pa, len));
    t.heap.write = (pa, data) => ((copied += data.length), heapWrite(pa, data));
    const r = run(t.a.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)]), (step) => opts.onStep?.(step, input));
    Object.assign(mem, { read, write });
    Object.assign(t.heap, { read: heapRead, write: heapWrite });
    expect(r).toMatchObject({ a0: R.OK, result: TEEC.SUCCESS });
    expect(r.msg.params[1]!.b).toBe(BigInt(n));
    return { copied, output: output.read() };
  }

  it("a 64 KiB decrypt between physically contiguous buffers reads and writes them in place: nothing of them is copied", () => {
    const { copied, output } = decrypt64k({ views: true, contiguous: true });
    expect(output).toEqual(plain);
    // Only messages are copied (the argument into the mediator's copy, OP-TEE's answer): none of the 64 KiB.
    expect(copied).toBeLessThan(1024);
  });

  it("without views (a backend that only copies) or over scattered pages: the same plaintext, through copies", () => {
    for (const [views, contiguous] of [[false, true], [true, false], [false, false]] as const) {
      const { copied, output } = decrypt64k({ views, contiguous });
      expect(output, `views ${views}, contiguous ${contiguous}`).toEqual(plain);
      expect(copied, `views ${views}, contiguous ${contiguous}`).toBeGreaterThanOrEqual(n);
    }
  });

  it("in place, the TA reads the guest's shared memory itself, as OP-TEE maps it into a TA: input rewritten during a foreign interrupt reaches the pieces not yet decrypted", () => {
    const last = n - DECRYPT_PIECE;
    let rewritten = false;
    const { output } = decrypt64k({
      views: true,
      contiguous: true,
      onStep: (step, input) => {
        if (step.rpc !== "FOREIGN_INTR" || rewritten) return;
        rewritten = true;
        // After the first piece: the last piece's ciphertext becomes zeros, so the TA writes the keystream there.
        input.write(new Uint8Array(last), n - last);
      },
    });
    expect(rewritten).toBe(true);
    const keystream = new Uint8Array(n);
    chacha20(key, new Uint8Array(12), 0, new Uint8Array(n), keystream);
    expect(output.subarray(0, n - last)).toEqual(plain.subarray(0, n - last));
    expect(output.subarray(n - last)).toEqual(keystream.subarray(n - last));
  });
});

describe("per-VM limits: one VM cannot starve another", () => {
  /** Starts `n` hello-world invokes on `g`, each left suspended in its first RPC. */
  const suspend = (g: OpteeGuest, s: number, n: number) =>
    Array.from({ length: n }, (_, i) => {
      const op = g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(10 * i)]);
      expect(op.next().value).toMatchObject({ rpc: "ALLOC" });
      return op;
    });

  it("calls in flight beyond the VM's limit get ETHREAD_LIMIT from the mediator, while the other VM still gets threads", () => {
    const t = machine({ threads: 8, limits: "{ callsInFlight: 2 }" });
    const sa = sessionOf(t.a, HELLO_WORLD_UUID);
    const sb = sessionOf(t.b, HELLO_WORLD_UUID);
    const held = suspend(t.a, sa, 2);
    expect(t.mediator.counters("a")).toMatchObject({ inFlight: 2, pendingRpc: 2 });
    expect(run(t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).a0).toBe(R.ETHREAD_LIMIT);
    expect(t.os.threadLimitHits).toBe(0); // OP-TEE was not asked
    const heldB = suspend(t.b, sb, 2);
    expect(t.os.busyThreads).toBe(4);
    expect(interleave([...held, ...heldB]).map((r) => r.msg.params[0]!.a)).toEqual([1n, 11n, 1n, 11n]);
    expect(run(t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).a0).toBe(R.OK);
    expect(t.mediator.counters("a")).toEqual({ ...ZERO_COUNTERS, sessions: 1 });
  });

  it("a full OP-TEE thread pool (limits that overcommit it, past validation) is ETHREAD_LIMIT from OP-TEE itself, and the mediator keeps nothing of the refused call", () => {
    const t = machine({ threads: 2, maxGuests: 2, unchecked: { callsInFlight: 4 } });
    const sa = sessionOf(t.a, HELLO_WORLD_UUID);
    const sb = sessionOf(t.b, HELLO_WORLD_UUID);
    const held = suspend(t.a, sa, 2);
    expect(run(t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).a0).toBe(R.ETHREAD_LIMIT);
    expect(run(t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).a0).toBe(R.ETHREAD_LIMIT);
    expect(t.os.threadLimitHits).toBe(2);
    expect(t.mediator.counters("a")).toMatchObject({ inFlight: 2, pendingRpc: 2 });
    expect(t.mediator.counters("b")).toEqual({ ...ZERO_COUNTERS, sessions: 1 });
    expect(t.heap.inUse).toBe(2); // the two suspended calls' shadows
    interleave(held);
    expect(t.heap.inUse).toBe(0);
  });

  it("a guest that retries ETHREAD_LIMIT, as Linux does, gets every call through with its own result", () => {
    const t = machine({ threads: 8, limits: "{ callsInFlight: 2 }" });
    const retrying = OpteeGuest.forVm(t.m.vm("a"), { threadLimitRetries: 100 });
    const s = sessionOf(retrying, HELLO_WORLD_UUID);
    let limited = 0;
    const out = interleave(
      Array.from({ length: 6 }, (_, i) => retrying.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1000 * i)])),
      (step) => (limited += step.regs[0] === R.ETHREAD_LIMIT ? 1 : 0),
    );
    expect(out.map((r) => r.msg.params[0]!.a)).toEqual([1n, 1001n, 2001n, 3001n, 4001n, 5001n]);
    expect(limited).toBeGreaterThan(0);
  });

  it("the pages of all temporary memrefs of one message count together against the VM's page limit", () => {
    const t = machine({ limits: "{ pages: 8 }" });
    const s = sessionOf(t.a, RNG_TA_UUID);
    const five = t.a.allocShm(5 * PAGE_SIZE, { contiguous: true });
    const scattered = t.a.allocShm(5 * PAGE_SIZE);
    const list = t.a.writePageList(scattered.pages);
    const tmem = param.tmem("inout", five.addr(0), 5 * PAGE_SIZE);
    const nc = param.tmemNoncontig("inout", list.addr, 5 * PAGE_SIZE);
    expect(run(t.a.invoke(s, TA_CMD_GET_ENTROPY, [tmem])).result).toBe(TEEC.SUCCESS);
    expect(run(t.a.invoke(s, TA_CMD_GET_ENTROPY, [nc])).result).toBe(TEEC.SUCCESS);
    for (const params of [[tmem, tmem], [nc, nc], [tmem, nc], [nc, tmem]]) {
      const r = run(t.a.invoke(s, TA_CMD_GET_ENTROPY, params));
      expect(r.msg).toMatchObject({ ret: TEEC.ERROR_OUT_OF_MEMORY, retOrigin: ORIGIN.COMMS });
    }
    expect(t.heap.inUse).toBe(0);
  });

  it("registrations and registered pages per VM: OUT_OF_MEMORY from COMMS beyond them, room again after UNREGISTER_SHM", () => {
    const t = machine({ limits: "{ registrations: 2, pages: 6 }" });
    const [x, y, z] = [t.a.allocShm(PAGE_SIZE), t.a.allocShm(4 * PAGE_SIZE), t.a.allocShm(2 * PAGE_SIZE)];
    expect(run(t.a.registerShm(x)).result).toBe(TEEC.SUCCESS);
    expect(run(t.a.registerShm(y)).result).toBe(TEEC.SUCCESS);
    expect(run(t.a.registerShm(z))).toMatchObject({ result: TEEC.ERROR_OUT_OF_MEMORY, origin: ORIGIN.COMMS });
    expect(run(t.a.unregisterShm(x)).result).toBe(TEEC.SUCCESS);
    // A registration is free again, and 4 + 2 pages is exactly the limit.
    expect(run(t.a.registerShm(z)).result).toBe(TEEC.SUCCESS);
    expect(t.mediator.counters("a")).toMatchObject({ registrations: 2, pages: 6 });
    expect(run(t.a.unregisterShm(z)).result).toBe(TEEC.SUCCESS);
    const big = t.a.allocShm(3 * PAGE_SIZE);
    expect(run(t.a.registerShm(big))).toMatchObject({ result: TEEC.ERROR_OUT_OF_MEMORY, origin: ORIGIN.COMMS });
    expect(t.mediator.counters("a")).toMatchObject({ registrations: 1, pages: 4 });
    expect(t.os.counters(1)).toMatchObject({ registrations: 1, pages: 4 });
    // b's limits are its own.
    expect(run(t.b.registerShm(t.b.allocShm(6 * PAGE_SIZE))).result).toBe(TEEC.SUCCESS);
  });

  it("sessions per VM: OUT_OF_MEMORY from COMMS beyond the limit (a VM cannot hold 50,000), room again after CLOSE_SESSION; the other VM's are its own", () => {
    const t = machine({ limits: "{ sessions: 3 }" });
    const ids = [0, 1, 2].map(() => sessionOf(t.a, HELLO_WORLD_UUID));
    for (let i = 0; i < 200; i++) expect(run(t.a.openSession(HELLO_WORLD_UUID))).toMatchObject({ a0: R.OK, result: TEEC.ERROR_OUT_OF_MEMORY, origin: ORIGIN.COMMS, session: 0 });
    expect(t.os.counters(1).sessions).toBe(3);
    expect(t.mediator.counters("a")).toMatchObject({ sessions: 3, inFlight: 0 });
    sessionOf(t.b, HELLO_WORLD_UUID);
    // A close the OS refuses (not a session of a's) frees nothing; a real close frees one.
    expect(run(t.a.closeSession(0xdead)).result).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(t.mediator.counters("a").sessions).toBe(3);
    expect(run(t.a.closeSession(ids[1]!)).result).toBe(TEEC.SUCCESS);
    expect(t.mediator.counters("a").sessions).toBe(2);
    sessionOf(t.a, HELLO_WORLD_UUID);
    expect(run(t.a.openSession(HELLO_WORLD_UUID)).result).toBe(TEEC.ERROR_OUT_OF_MEMORY);
  });

  it("sessions by default: 256 per VM, the rest refused before OP-TEE holds anything for them", () => {
    const t = machine();
    let refused = 0;
    for (let i = 0; i < 300; i++) if (run(t.a.openSession(HELLO_WORLD_UUID)).result === TEEC.ERROR_OUT_OF_MEMORY) refused++;
    expect(refused).toBe(300 - 256);
    expect(t.os.counters(1).sessions).toBe(256);
    expect(t.heap.inUse).toBe(0);
  });

  it("UNREGISTER_SHM of a buffer in use completes after its last user; the mediator counts the registration until then", () => {
    const t = machine();
    const plain = Uint8Array.from({ length: DECRYPT_PIECE + 4096 }, (_, i) => (i * 7) & 0xff);
    const input = t.a.allocShm(plain.length, { contiguous: true });
    const output = t.a.allocShm(plain.length, { contiguous: true });
    run(t.a.registerShm(input));
    run(t.a.registerShm(output));
    const s = sessionOf(t.a, CONTENT_DECRYPT_UUID);
    const decrypt = t.a.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)]);
    expect(decrypt.next().value).toMatchObject({ rpc: "FOREIGN_INTR" });
    const unregister = t.a.unregisterShm(output);
    expect(unregister.next().value).toMatchObject({ rpc: "FOREIGN_INTR" });
    expect(unregister.next().value).toMatchObject({ rpc: "FOREIGN_INTR" });
    expect(t.mediator.counters("a")).toMatchObject({ registrations: 2, inFlight: 2 });
    expect(run(decrypt).result).toBe(TEEC.SUCCESS);
    expect(run(unregister).result).toBe(TEEC.SUCCESS);
    expect(t.mediator.counters("a")).toMatchObject({ registrations: 1, pages: input.pages.length, inFlight: 0 });
    expect(t.os.counters(1)).toMatchObject({ registrations: 1, threads: 0 });
  });
});

describe("client IDs (the VM IDs OP-TEE believes)", () => {
  it("a VM whose ID is no OP-TEE client ID (0, above 0xFFFF) or is another VM's gets no TEE: the hypervisor refuses the domain (vms.<name>.id), the mediator the enable", () => {
    const t = machine();
    const base = t.m.config.vms.find((v) => v.name === "c")!;
    const withTee = (name: string, id: number): VmConfig => ({ ...base, name, id, tee: { mediator: "optee", contentKey: null } });
    // 0x10001 would be VM 1 (a) to OP-TEE, which keeps 16 bits; 0 is the hypervisor.
    expect(t.m.hypervisor.createDomain(withTee("x", 0x1_0001))).toEqual({ ok: false, errors: [{ path: "vms.x.id", message: "VM ID 65537 is outside 1-0xFFFE (0 is the hypervisor's)" }] });
    expect(t.m.hypervisor.createDomain(withTee("y", 1))).toEqual({ ok: false, errors: [{ path: "vms.y.id", message: "VM ID 1 is already a's" }] });
    expect(t.m.hypervisor.createDomain(withTee("z", 0))).toMatchObject({ ok: false, errors: [{ path: "vms.z.id" }] });
    expect(t.m.hypervisor.createDomain({ ...base, name: "w", id: 0 })).toMatchObject({ ok: false, errors: [{ path: "vms.w.id" }] });
    // The mediator holds on its own, for any host.
    expect(t.mediator.enable(withTee("x", 0x1_0001))).toEqual({ ok: false, message: "VM ID 65537 is not an OP-TEE client ID (1-65535)" });
    expect(t.mediator.enable(withTee("y", 1))).toEqual({ ok: false, message: "VM ID 1 is already the OP-TEE client ID of VM a" });
    expect(t.mediator.enable(withTee("z", 0))).toMatchObject({ ok: false });
    expect([...t.os.guests.keys()]).toEqual([1, 2]);
    // a's session is untouched.
    const s = sessionOf(t.a, HELLO_WORLD_UUID);
    expect(run(t.a.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).msg.params[0]!.a).toBe(2n);
  });
});

describe("destroying a VM in the middle of a session (R11)", () => {
  it("leaves no session, thread, registration, page or shadow behind; the other VM's session keeps working", () => {
    const t = machine();
    run(t.a.probe()); // shm cache enabled, devices enumerated
    const sa = sessionOf(t.a, HELLO_WORLD_UUID);
    const sb = sessionOf(t.b, HELLO_WORLD_UUID);
    run(t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])); // an RPC buffer now cached by OP-TEE
    run(t.a.registerShm(t.a.allocShm(3 * PAGE_SIZE)));
    const atCmd = t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]);
    expect(atCmd.next().value).toMatchObject({ rpc: "CMD" });
    const atAlloc = t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]);
    expect(atAlloc.next().value).toMatchObject({ rpc: "ALLOC" });
    const bPending = t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(100)]);
    expect(bPending.next().value).toMatchObject({ rpc: "ALLOC" });
    expect(t.mediator.counters("a")).toMatchObject({ inFlight: 2, pendingRpc: 2, registrations: 1, pages: 3 });
    expect(t.os.counters(1)).toMatchObject({ sessions: 1, threads: 2, registrations: 1, pages: 3 });
    expect(t.heap.inUse).toBe(3);

    expect(t.m.hypervisor.destroyDomain("a")).toBe(true);
    expect(t.mediator.counters("a")).toEqual(ZERO_COUNTERS);
    expect(t.os.counters(1)).toEqual({ sessions: 0, threads: 0, registrations: 0, pages: 0, rpcBuffers: 0 });
    expect(t.os.guests.has(1)).toBe(false);
    expect(t.os.busyThreads).toBe(1); // b's
    expect(t.heap.inUse).toBe(1); // b's shadow
    expect(t.m.trace.latest()).toMatchObject({ vm: "hypervisor", fid: OPTEE_SMC.VM_DESTROYED, origin: "optee mediator: VM_DESTROYED a" });

    expect(run(bPending).msg.params[0]!.a).toBe(101n);
    expect(run(t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(5)])).msg.params[0]!.a).toBe(6n);
    expect(t.heap.inUse).toBe(0);
    expect(t.os.busyThreads).toBe(0);
  });

  it("gives the VM's OP-TEE guest back: a VM created again starts afresh", () => {
    const t = machine({ maxGuests: 2 });
    sessionOf(t.a, HELLO_WORLD_UUID);
    const config = t.m.hypervisor.domain("a").config;
    t.m.hypervisor.destroyDomain("a");
    const again = t.m.hypervisor.createDomain(config, { memory: t.m.vm("a").memory });
    expect(again.ok).toBe(true);
    expect(t.os.counters(1)).toMatchObject({ sessions: 0 });
    expect(t.mediator.counters("a")).toEqual(ZERO_COUNTERS);
  });
});

describe("resetting a VM (issue 10): VM_DESTROYED then VM_CREATED, as OP-TEE's virtualization expects of a guest that reboots", () => {
  it("frees the calls suspended in OP-TEE, the sessions, registrations and shadows of the VM; the other VM's session and suspended call go on; the VM can use the TEE again", () => {
    const t = machine();
    run(t.a.probe()); // shm cache enabled, devices enumerated
    const sa = sessionOf(t.a, HELLO_WORLD_UUID);
    const sb = sessionOf(t.b, HELLO_WORLD_UUID);
    run(t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])); // an RPC buffer now cached by OP-TEE
    run(t.a.registerShm(t.a.allocShm(3 * PAGE_SIZE)));
    const aSuspended = t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)]);
    expect(aSuspended.next().value).toMatchObject({ rpc: "CMD" });
    const bSuspended = t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(100)]);
    expect(bSuspended.next().value).toMatchObject({ rpc: "ALLOC" });
    expect(t.mediator.counters("a")).toMatchObject({ inFlight: 1, pendingRpc: 1, registrations: 1, pages: 3 });
    expect(t.os.counters(1)).toMatchObject({ sessions: 1, threads: 1, registrations: 1, pages: 3 });
    const heldByB = { mediator: t.mediator.counters("b"), os: t.os.counters(2) };
    expect(t.heap.inUse).toBe(2);

    // The guest reboots: its SYSTEM_RESET has the machine reset the domain.
    const before = t.m.trace.events().length;
    expect(t.m.vm("a").vcpu(0).hvc(0x8400_0009).outcome).toBe("halt");
    expect(t.m.vm("a").power.lastReset).toEqual({ ok: true });
    expect(t.mediator.counters("a")).toEqual(ZERO_COUNTERS);
    expect(t.os.counters(1)).toEqual({ sessions: 0, threads: 0, registrations: 0, pages: 0, rpcBuffers: 0 });
    expect(t.os.guests.has(1)).toBe(true); // created again, empty
    expect(t.heap.inUse).toBe(1); // b's shadow
    expect(t.os.busyThreads).toBe(1); // b's
    expect({ mediator: t.mediator.counters("b"), os: t.os.counters(2) }).toEqual(heldByB);
    const own = t.m.trace.events().slice(before).filter((e) => e.vm === "hypervisor");
    expect(own.map((e) => [e.fid, e.origin])).toEqual([
      [0x8400_0009, "reset a: SYSTEM_RESET of its machine"],
      [OPTEE_SMC.VM_DESTROYED, "optee mediator: VM_DESTROYED a"],
      [OPTEE_SMC.VM_CREATED, "optee mediator: VM_CREATED a"],
    ]);

    // The old boot's suspended call is gone: resuming it is ERESUME.
    expect(run(aSuspended).a0).toBe(R.ERESUME);
    // b's session and suspended call were not touched.
    expect(run(bSuspended).msg.params[0]!.a).toBe(101n);
    expect(run(t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(5)])).msg.params[0]!.a).toBe(6n);
    // The rebooted guest's driver starts afresh, and so does the TEE for it, its content key included.
    const a2 = OpteeGuest.forVm(t.m.vm("a"));
    expect(run(a2.probe()).uidOk).toBe(true);
    const s2 = sessionOf(a2, HELLO_WORLD_UUID);
    expect(run(a2.invoke(s2, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(41)])).msg.params[0]!.a).toBe(42n);
    const sd = sessionOf(a2, CONTENT_DECRYPT_UUID);
    expect(run(a2.invoke(sd, TA_DECRYPT_CMD_KEY_PRESENT, [param.valueOut()])).msg.params[0]!.a).toBe(1n);
    expect(t.os.counters(1)).toMatchObject({ sessions: 2 });
  });

  it("leaks nothing over many reboots, each with a call suspended in RPC", () => {
    const t = machine();
    const sb = sessionOf(t.b, HELLO_WORLD_UUID);
    for (let i = 0; i < 10; i++) {
      const g = OpteeGuest.forVm(t.m.vm("a"));
      const s = sessionOf(g, HELLO_WORLD_UUID);
      run(g.registerShm(g.allocShm(2 * PAGE_SIZE)));
      const suspended = g.invoke(s, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(i)]);
      expect(suspended.next().value).toMatchObject({ rpc: "ALLOC" });
      expect(t.m.hypervisor.resetDomain("a")).toEqual({ ok: true });
      expect(t.mediator.counters("a")).toEqual(ZERO_COUNTERS);
      expect(t.os.counters(1)).toEqual({ sessions: 0, threads: 0, registrations: 0, pages: 0, rpcBuffers: 0 });
      expect(t.heap.inUse).toBe(0);
      expect(t.os.busyThreads).toBe(0);
    }
    expect(run(t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).msg.params[0]!.a).toBe(2n);
  });

  it("a VM without the TEE resets without touching the TEE; resetting a VM the mediator does not know is an error, not a crash", () => {
    const t = machine();
    const sa = sessionOf(t.a, HELLO_WORLD_UUID);
    expect(t.m.hypervisor.resetDomain("c")).toEqual({ ok: true });
    expect(t.os.counters(1)).toMatchObject({ sessions: 1 });
    expect(t.mediator.reset(t.m.hypervisor.domain("c").config)).toEqual({ ok: false, message: "the TEE is not enabled for this VM" });
    expect(run(t.a.invoke(sa, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).msg.params[0]!.a).toBe(2n);
  });
});

describe("two VMs at once", () => {
  it("interleaved sessions and invokes in both VMs each get their own results", () => {
    // Four calls in flight per VM: both VMs together fill OP-TEE's eight threads.
    const t = machine({ maxGuests: 2, limits: "{ callsInFlight: 4 }" });
    const gs = [t.a, t.b];
    const sessions = gs.map((g) => sessionOf(g, HELLO_WORLD_UUID));
    let peak = 0;
    const ops = Array.from({ length: 8 }, (_, i) => gs[i % 2]!.invoke(sessions[i % 2]!, i % 4 < 2 ? TA_HELLO_WORLD_CMD_INC_VALUE : TA_HELLO_WORLD_CMD_DEC_VALUE, [param.valueInout(100 * i)]));
    const out = interleave(ops, () => (peak = Math.max(peak, t.os.busyThreads)));
    expect(out.map((r) => [r.a0, r.result, r.msg.params[0]!.a])).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => [R.OK, TEEC.SUCCESS, BigInt(100 * i + (i % 4 < 2 ? 1 : -1))]));
    expect(peak).toBe(8);
    expect(t.heap.inUse).toBe(0);
    expect(t.mediator.counters("a")).toEqual({ ...ZERO_COUNTERS, sessions: 1 });
  });

  it("whole flows interleave: probe, open, register, decrypt with each VM's own key, close", () => {
    const t = machine();
    const keys = { a: Buffer.from(KEY_A, "hex"), b: Buffer.from(KEY_B, "hex") };
    const plain = Uint8Array.from({ length: 24_000 }, (_, i) => (i * 5 + 1) & 0xff);
    function* flow(g: OpteeGuest, key: Uint8Array) {
      yield* g.probe();
      const s = (yield* g.openSession(CONTENT_DECRYPT_UUID)).session;
      const input = g.allocShm(plain.length);
      const output = g.allocShm(plain.length);
      const c = new Uint8Array(plain.length);
      chacha20(key, new Uint8Array(12), 0, plain, c);
      input.write(c);
      yield* g.registerShm(input);
      yield* g.registerShm(output);
      const r = yield* g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)]);
      yield* g.unregisterShm(input);
      yield* g.unregisterShm(output);
      yield* g.closeSession(s);
      return { result: r.result, out: output.read() };
    }
    const [ra, rb] = interleave([flow(t.a, keys.a), flow(t.b, keys.b)]);
    expect(ra!.result).toBe(TEEC.SUCCESS);
    expect(rb!.result).toBe(TEEC.SUCCESS);
    expect(ra!.out).toEqual(plain);
    expect(rb!.out).toEqual(plain);
    expect(t.mediator.counters("a")).toMatchObject({ registrations: 0, pages: 0, inFlight: 0 });
    expect(t.os.counters(1)).toMatchObject({ sessions: 0, registrations: 0 });
    expect(t.heap.inUse).toBe(0);
  });
});

describe("the guest's argument after a call", () => {
  it("gets back only what OP-TEE may return: ret, origin, session, output values and sizes; inputs and addresses are the guest's", () => {
    const t = machine();
    const s = sessionOf(t.a, RNG_TA_UUID);
    const buf = t.a.allocShm(32, { contiguous: true });
    const arg = t.a.allocShm(PAGE_SIZE, { contiguous: true }).addr(0);
    const sent = msg(MSG_CMD.INVOKE_COMMAND, [param.tmem("inout", buf.addr(0), 32), param.valueIn(7, 8, 9), param.valueOut()], { session: s, func: TA_CMD_GET_ENTROPY, cancelId: 3 });
    const r = run(t.a.message(sent, { arg }));
    const back = decodeMsg(t.m.vm("a").memory.read(arg, msgSize(3))!, 3);
    expect(r.a0).toBe(R.OK);
    expect(back).toEqual({ ...sent, ret: TEEC.SUCCESS, retOrigin: ORIGIN.TRUSTED_APP, params: [sent.params[0], sent.params[1], { attr: BigInt(ATTR.VALUE_OUTPUT), a: 0n, b: 0n, c: 0n }] });
  });
});

describe("any message a guest can write", () => {
  it("never makes the mediator or OP-TEE throw, and leaves no thread, shadow or call in flight behind", () => {
    const t = machine();
    const sa = sessionOf(t.a, HELLO_WORLD_UUID);
    const sr = sessionOf(t.a, RNG_TA_UUID);
    const sb = sessionOf(t.b, HELLO_WORLD_UUID);
    const shm = t.a.allocShm(3 * PAGE_SIZE);
    run(t.a.registerShm(shm));
    // A page list with good and bad entries, and one that loops, at fixed places in a's RAM.
    const good = t.a.writePageList(t.a.allocShm(2 * PAGE_SIZE).pages).addr;
    const mixed = t.a.writePageList([shm.pages[0]!, PA.b, SECURE, 0x5000_0000n]).addr;
    const loop = t.a.writePageList(Array.from({ length: PAGELIST_ENTRIES }, () => shm.pages[1]!)).addr;
    t.m.vm("a").memory.write(loop + 8n * BigInt(PAGELIST_ENTRIES), u64(loop));
    const u64Arb = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
    const addr = fc.oneof(fc.constantFrom(0n, shm.addr(0), shm.addr(100), good, good | 0x10n, mixed, loop, IPA, IPA + RAM - 8n, PA.a, PA.b, SECURE, t.heap.base), u64Arb);
    const size = fc.oneof(fc.constantFrom(0n, 1n, 64n, 4096n, 5000n, 8192n, 600n * 4096n, 1n << 20n, 64n << 20n), u64Arb);
    const cookie = fc.constantFrom(0n, shm.cookie, shm.cookie + 1n, 0x5eedn);
    const attr = fc.oneof(fc.constantFrom(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x101, 0x109, 0x209, 0x20a, 0x20b, 0x205, 0x203, 0x1_0003, 0x7_0009).map(BigInt), u64Arb);
    const paramArb = fc.record({ attr, a: addr, b: size, c: fc.oneof(cookie, u64Arb) });
    const msgArb = fc.record({
      cmd: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.constant(0xffff_ffff)),
      func: fc.integer({ min: 0, max: 2 }),
      session: fc.constantFrom(0, sa, sr, sb, 99),
      cancelId: fc.constant(0),
      ret: fc.constant(0),
      retOrigin: fc.constant(0),
      params: fc.array(paramArb, { maxLength: 5 }),
    });
    const codes = new Set<number>([R.OK, R.EBADADDR, R.EBADCMD, R.ENOMEM, R.ETHREAD_LIMIT]);
    fc.assert(
      fc.property(msgArb, (m) => {
        const r = run(t.a.message(m));
        expect(codes.has(r.a0)).toBe(true);
        expect(t.log.filter((l) => l.includes("failed"))).toEqual([]);
        expect(t.heap.inUse).toBe(0);
        expect(t.mediator.counters("a")).toMatchObject({ inFlight: 0, pendingRpc: 0 });
        expect(t.os.busyThreads).toBe(0);
      }),
      { numRuns: 400 },
    );
    expect(allZero(t.m.vm("b").memory.bytes.subarray(Number(t.b.pages.base - IPA) + 8 * PAGE_SIZE))).toBe(true);
    expect(run(t.b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(1)])).msg.params[0]!.a).toBe(2n);
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
