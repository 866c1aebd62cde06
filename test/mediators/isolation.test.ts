// What the secure world believes about a caller, and what memory it reaches for it, comes from the
// hypervisor: never from a guest's registers, and never from which address range happens to match first.
// Each test builds the hypervisor from a config that validation would refuse (or that it never sees), so
// the runtime holds on its own.
import { describe, expect, it } from "vitest";
import { OpteeGuest, param, run, secureSmc, vmTransport } from "../support/optee-guest.js";
import { chacha20 } from "../../src/firmware/optee/chacha20.js";
import { CONTENT_DECRYPT_UUID, TA_DECRYPT_CMD_DECRYPT, TA_DECRYPT_CMD_KEY_PRESENT } from "../../src/firmware/optee/tas/content-decrypt.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_INC_VALUE } from "../../src/firmware/optee/tas/hello-world.js";
import { RNG_TA_UUID, TA_CMD_GET_ENTROPY } from "../../src/firmware/optee/tas/rng.js";
import { HEAP_BASE, PAGE } from "../../src/hypervisor/heap.js";
import { ScriptedMachine } from "../../src/machine/scripted/machine.js";
import { parseConfigText, type Config, type VmConfig } from "../../src/policy/load.js";
import { MemoryMap } from "../../src/policy/memory-map.js";
import type { Rule } from "../../src/policy/rules.js";
import { CALL_TYPES } from "../../src/smccc/fid.js";
import { OEN } from "../../src/smccc/owners.js";
import { MSG_CMD, OPTEE_RET as R, OPTEE_SMC, ORIGIN, TEEC } from "../../src/smccc/optee/abi.js";
import { decodeMsg, encodeMsg, msgSize, type MsgArg, type MsgParam } from "../../src/smccc/optee/msg.js";

const KEY = { victim: "5a".repeat(32), a: "a1".repeat(32), b: "b2".repeat(32) };
const IPA = 0x4000_0000n;
const MiB = 0x10_0000n;
const ONES32 = 0xffff_ffffn;
const NONCE = { lo: 0x0102_0304, hi: 0x0506_0708 };

function parsed(text: string): Config {
  const r = parseConfigText(text, "yaml");
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
  return r.value;
}

/** `{ owner: trusted-os, action: forward }` for a VM, as a config that skipped validation would give it. */
function forwardTrustedOs(vm: VmConfig): VmConfig {
  const rule: Rule = {
    index: vm.rules.length,
    path: `vms.${vm.name}.grants[${vm.rules.length}]`,
    label: "forward-trusted-os",
    selector: { kind: "owner", first: OEN.TRUSTED_OS_FIRST, last: OEN.TRUSTED_OS_LAST, calls: CALL_TYPES },
    constraints: [],
    action: { kind: "forward" },
    exclusive: false,
  };
  return { ...vm, rules: [...vm.rules, rule] };
}

const msg = (cmd: number, params: MsgParam[], over: Partial<MsgArg> = {}): MsgArg => ({ cmd, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params, ...over });
const hi = (v: bigint) => Number(v >> 32n);
const lo = (v: bigint) => Number(v & 0xffff_ffffn);
const nonce = () => {
  const n = new Uint8Array(12);
  const dv = new DataView(n.buffer);
  dv.setUint32(0, NONCE.lo, true);
  dv.setUint32(4, NONCE.hi, true);
  return n;
};

describe("a forward grant over Trusted OS calls", () => {
  function setup() {
    const config = parsed(`
platform:
  tee: { os: optee, threads: 8, maxGuests: 2 }
vms:
  victim: { tee: { mediator: optee, contentKey: "${KEY.victim}" }, memory: { base: 0x40000000, size: 4MiB } }
  evil: { memory: { base: 0x40000000, size: 4MiB } }
  evil11: { smccc: "1.1", memory: { base: 0x40000000, size: 4MiB } }
`);
    const vms = config.vms.map((v) => (v.name === "victim" ? v : forwardTrustedOs(v)));
    const m = ScriptedMachine.fromConfig({ ...config, vms });
    const pa = (vm: string, ipa: bigint) => m.vm(vm).domain.config.memory.pa + (ipa - IPA);
    const victim = OpteeGuest.forVm(m.vm("victim"));
    const secretAt = IPA + 3n * MiB;
    const secret = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff);
    m.vm("victim").memory.write(secretAt, secret);
    const session = run(victim.openSession(CONTENT_DECRYPT_UUID)).session;
    expect(run(victim.invoke(session, TA_DECRYPT_CMD_KEY_PRESENT, [param.valueOut()])).msg.params[0]!.a).toBe(1n);
    return { m, pa, victim, session, secretAt, secret, victimId: m.vm("victim").domain.config.id, os: m.hypervisor.optee! };
  }

  it("never reaches OP-TEE: another VM's client ID and physical addresses neither read nor overwrite its RAM", () => {
    const { m, pa, session, secretAt, secret, victimId, os } = setup();
    const evil = m.vm("evil");
    const argAt = IPA + MiB, outAt = IPA + 2n * MiB;
    // Decrypt the victim's secret with the victim's key into evil's RAM: the addresses are platform PAs,
    // as OP-TEE takes them from its caller.
    evil.memory.write(argAt, encodeMsg(msg(MSG_CMD.INVOKE_COMMAND, [param.tmem("in", pa("victim", secretAt), 64), param.tmem("out", pa("evil", outAt), 64), param.valueIn(NONCE.lo, NONCE.hi)], { func: TA_DECRYPT_CMD_DECRYPT, session })));
    const argPa = pa("evil", argAt);
    const read = evil.vcpu(0).smc(OPTEE_SMC.CALL_WITH_ARG, hi(argPa), lo(argPa), 0, 0, 0, 0, victimId);
    expect(read.decision.action).toBe("forward");
    expect(read.x0).toBe(ONES32);
    expect(evil.memory.read(outAt, 64)!.every((b) => b === 0)).toBe(true);
    // Overwrite the secret with random bytes through the RNG TA, as the victim.
    evil.memory.write(argAt, encodeMsg(msg(MSG_CMD.OPEN_SESSION, [param.valueIn(0), param.valueIn(0)])));
    expect(evil.vcpu(0).smc(OPTEE_SMC.CALL_WITH_ARG, hi(argPa), lo(argPa), 0, 0, 0, 0, victimId).x0).toBe(ONES32);
    expect(m.vm("victim").memory.read(secretAt, 64)).toEqual(secret);
    // Nothing ran in OP-TEE for the victim: no thread, no new session.
    expect(os.counters(victimId)).toMatchObject({ sessions: 1, threads: 0 });
    // The trace says why.
    expect(m.trace.events().some((e) => e.vm === "evil" && e.rule === "refused: Trusted OS calls reach the trusted OS only through its mediator")).toBe(true);
  });

  it("cannot pose as the hypervisor (a7 = 0, as SMCCC 1.1 reads it): no VM_DESTROYED or VM_CREATED, the victim's session lives on", () => {
    const { m, victim, session, victimId, os } = setup();
    for (const name of ["evil", "evil11"]) {
      const v = m.vm(name).vcpu(0);
      expect(v.smc(OPTEE_SMC.VM_DESTROYED, victimId, 0, 0, 0, 0, 0, 0).x0, name).toBe(ONES32);
      expect(v.smc(OPTEE_SMC.VM_CREATED, 77, 0, 0, 0, 0, 0, 0).x0, name).toBe(ONES32);
      expect(v.smc(OPTEE_SMC.CALLS_UID).x0, name).toBe(ONES32);
    }
    expect([...os.guests.keys()]).toEqual([victimId]);
    expect(run(victim.invoke(session, TA_DECRYPT_CMD_KEY_PRESENT, [param.valueOut()])).msg.params[0]!.a).toBe(1n);
  });

  it("gives a VM with the TEE nothing beyond its mediator either: its forwarded calls are refused, its mediated ones work", () => {
    const config = parsed(`
platform:
  tee: { os: optee, threads: 8, maxGuests: 2 }
vms:
  a: { tee: { mediator: optee, contentKey: "${KEY.a}" }, memory: { base: 0x40000000, size: 4MiB } }
  b: { tee: { mediator: optee, contentKey: "${KEY.b}" }, memory: { base: 0x40000000, size: 4MiB } }
`);
    const m = ScriptedMachine.fromConfig({ ...config, vms: config.vms.map((v) => (v.name === "b" ? forwardTrustedOs(v) : v)) });
    const b = m.vm("b").vcpu(0);
    // Forwarded (the monitor refuses it) or mediated (the mediator does not offer it): -1 either way.
    expect(b.smc(OPTEE_SMC.VM_DESTROYED, m.vm("a").domain.config.id, 0, 0, 0, 0, 0, 0).x0).toBe(ONES32);
    expect(m.hypervisor.optee!.guests.has(m.vm("a").domain.config.id)).toBe(true);
    const a = OpteeGuest.forVm(m.vm("a"));
    expect(run(a.openSession(HELLO_WORLD_UUID)).result).toBe(TEEC.SUCCESS);
  });
});

describe("the hypervisor's own calls for a VM", () => {
  it("speak for that VM or for the hypervisor: a channel for a that names b in a7 (a mediator passing a guest's a7 on) reaches nothing of b", () => {
    const config = parsed(`
platform:
  tee: { os: optee, threads: 8, maxGuests: 2 }
vms:
  a: { tee: optee, memory: { base: 0x40000000, size: 4MiB } }
  b: { tee: optee, memory: { base: 0x40000000, size: 4MiB } }
`);
    const m = ScriptedMachine.fromConfig(config);
    const [idA, idB] = [m.vm("a").domain.config.id, m.vm("b").domain.config.id];
    const ch = m.hypervisor.router.hypervisorChannel("a mediator with a bug", { vmName: "a", vcpu: 0 });
    const call = (fid: number, a7: number) => {
      ch.regs.fill(0);
      ch.regs[0] = fid;
      ch.regs[14] = a7;
      expect(ch.call()).toBeUndefined();
      return ch.regs[0]!;
    };
    expect(call(OPTEE_SMC.CALLS_COUNT, idA)).toBe(14);
    expect(call(OPTEE_SMC.CALLS_COUNT, idB)).toBe(R.ENOTAVAIL);
    expect(call(OPTEE_SMC.ENABLE_SHM_CACHE, idB)).toBe(R.ENOTAVAIL);
    expect(call(OPTEE_SMC.CALL_WITH_ARG, idB)).toBe(R.ENOTAVAIL);
    expect(m.hypervisor.optee!.counters(idB)).toMatchObject({ threads: 0, rpcBuffers: 0 });
    // The hypervisor speaking for itself (a7 = 0) is still the hypervisor.
    expect(call(OPTEE_SMC.GET_THREAD_COUNT, 0)).toBe(R.OK);
  });
});

describe("VM RAM laid over the hypervisor's heap (placement that skipped validation)", () => {
  /** a's 4 MiB start 2 MiB below the heap: its upper half is at the heap's addresses. */
  function setup() {
    const config = parsed(`
platform:
  tee: { os: optee, threads: 8, maxGuests: 2 }
vms:
  a: { tee: { mediator: optee, contentKey: "${KEY.a}" }, memory: { base: 0x40000000, size: 4MiB } }
  b: { tee: { mediator: optee, contentKey: "${KEY.b}" }, memory: { base: 0x40000000, size: 4MiB } }
`);
    const aPa = HEAP_BASE - 2n * MiB;
    const vms = config.vms.map((v) => (v.name === "a" ? { ...v, memory: { ...v.memory, pa: aPa } } : v));
    const memoryMap = new MemoryMap(config.platform.memoryMap.secure, config.platform.memoryMap.vms.map((v) => (v.vm === "a" ? { ...v, pa: aPa } : v)));
    const m = ScriptedMachine.fromConfig({ ...config, platform: { ...config.platform, memoryMap }, vms });
    expect(m.hypervisor.platform.memoryMap.ipaToPa("a", IPA + 3n * MiB, 16n)).toBe(HEAP_BASE + MiB);
    // a's driver keeps its pages in the lower half, which is RAM.
    const a = new OpteeGuest(vmTransport(m.vm("a"), { region: { base: IPA + MiB, size: MiB } }));
    const b = OpteeGuest.forVm(m.vm("b"));
    // b's call suspended in OP-TEE (in its first RPC): its checked message waits in a heap page.
    const secret = 0x5ec2_e7d0;
    const sb = run(b.openSession(HELLO_WORLD_UUID)).session;
    const held = b.invoke(sb, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(secret)]);
    expect(held.next().value).toMatchObject({ rpc: "ALLOC" });
    const heap = m.hypervisor.heap;
    let shadow = -1n;
    for (let i = 0n; i < 16n && shadow < 0n; i++) {
      const bytes = heap.read(HEAP_BASE + i * BigInt(PAGE), msgSize(1));
      if (bytes && decodeMsg(bytes, 1).params[0]?.a === BigInt(secret)) shadow = HEAP_BASE + i * BigInt(PAGE);
    }
    expect(shadow).toBeGreaterThanOrEqual(HEAP_BASE);
    const sa = run(a.openSession(CONTENT_DECRYPT_UUID)).session;
    return { m, a, b, sa, held, secret, shadow, aPa, heap, ipaOf: (pa: bigint) => IPA + (pa - aPa) };
  }

  it("the mediator gives OP-TEE no address of a's RAM that is the heap's: a cannot read b's in-flight shadow message", () => {
    const { m, a, sa, held, shadow, ipaOf } = setup();
    const out = a.allocShm(64, { contiguous: true });
    out.write(new Uint8Array(64));
    const r = run(a.invoke(sa, TA_DECRYPT_CMD_DECRYPT, [param.tmem("in", ipaOf(shadow), 64), param.tmem("out", out.addr(0), 64), param.valueIn(NONCE.lo, NONCE.hi)]));
    expect(r.msg).toMatchObject({ ret: TEEC.ERROR_BAD_PARAMETERS, retOrigin: ORIGIN.COMMS });
    expect(out.read().every((x) => x === 0)).toBe(true);
    // A page list naming that page is refused too.
    const list = a.writePageList([ipaOf(shadow)]);
    expect(run(a.invoke(sa, TA_DECRYPT_CMD_DECRYPT, [param.tmemNoncontig("in", list.addr, 64), param.tmem("out", out.addr(0), 64), param.valueIn(0)])).msg.ret).toBe(TEEC.ERROR_BAD_PARAMETERS);
    // b's call completes with its own result.
    expect(run(held).msg.params[0]!.a).toBe(0x5ec2_e7d1n);
    expect(m.hypervisor.heap.inUse).toBe(0);
  });

  it("OP-TEE's memory port reaches, for a's calls, a's RAM and a's heap pages only: not b's shadow page, nor b's RAM, even at addresses the mediator never gave", () => {
    const { m, sa, held, secret, shadow, aPa } = setup();
    const os = m.hypervisor.optee!;
    const idA = m.vm("a").domain.config.id;
    const mem = m.vm("a").memory;
    // In the first MiB, which a's driver does not use.
    const argIpa = IPA + 0x8_0000n, outIpa = argIpa + 0x1000n, inIpa = argIpa + 0x2000n;
    const own = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
    mem.write(inIpa, own);
    /** a's DECRYPT of 64 bytes at `input` into a's RAM, sent to OP-TEE directly as the hypervisor would, a7 = a. */
    const decrypt = (input: bigint) => {
      mem.write(outIpa, new Uint8Array(64));
      mem.write(argIpa, encodeMsg(msg(MSG_CMD.INVOKE_COMMAND, [param.tmem("in", input, 64), param.tmem("out", aPa + (outIpa - IPA), 64), param.valueIn(NONCE.lo, NONCE.hi)], { func: TA_DECRYPT_CMD_DECRYPT, session: sa })));
      const argPa = aPa + (argIpa - IPA);
      expect(secureSmc(os, [OPTEE_SMC.CALL_WITH_ARG, hi(argPa), lo(argPa), 0, 0, 0, 0, idA])[0]).toBe(R.OK);
      return { ret: decodeMsg(mem.read(argIpa, msgSize(3))!, 3).ret, out: mem.read(outIpa, 64)! };
    };
    // Its own RAM: decrypted with its own key.
    const mine = decrypt(aPa + (inIpa - IPA));
    expect(mine.ret).toBe(TEEC.SUCCESS);
    const expected = new Uint8Array(64);
    chacha20(Buffer.from(KEY.a, "hex"), nonce(), 0, own, expected);
    expect(mine.out).toEqual(expected);
    // b's shadow page, at an address inside a's RAM as the map lays it out: not a's.
    const stolen = decrypt(shadow);
    expect(stolen.ret).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(stolen.out.every((x) => x === 0)).toBe(true);
    // b's RAM by its platform address.
    expect(decrypt(m.vm("b").domain.config.memory.pa + MiB).ret).toBe(TEEC.ERROR_BAD_PARAMETERS);
    expect(run(held).msg.params[0]!.a).toBe(BigInt(secret + 1));
  });

  it("the monitor does not read the heap for a VM either (PM_FPGA_LOAD from a's RAM at the heap's addresses)", () => {
    const { m, shadow } = setup();
    expect(m.hypervisor.readForSecureWorld("a", shadow, 64)).toMatch(/hypervisor's memory/);
    expect(m.hypervisor.readForSecureWorld("a", HEAP_BASE - MiB, 64)).toBeInstanceOf(Uint8Array);
  });
});

describe("the RNG TA through a forward grant (write path)", () => {
  it("writes nothing anywhere: RNG output aimed at another VM's RAM by physical address", () => {
    const config = parsed(`
platform:
  tee: { os: optee, threads: 8, maxGuests: 2 }
vms:
  victim: { tee: optee, memory: { base: 0x40000000, size: 4MiB } }
  evil: { memory: { base: 0x40000000, size: 4MiB } }
`);
    const m = ScriptedMachine.fromConfig({ ...config, vms: config.vms.map((v) => (v.name === "evil" ? forwardTrustedOs(v) : v)) });
    const victim = OpteeGuest.forVm(m.vm("victim"));
    const s = run(victim.openSession(RNG_TA_UUID)).session;
    const target = m.vm("victim").domain.config.memory.pa + 3n * MiB;
    const argAt = IPA + MiB;
    const argPa = m.vm("evil").domain.config.memory.pa + MiB;
    m.vm("evil").memory.write(argAt, encodeMsg(msg(MSG_CMD.INVOKE_COMMAND, [param.tmem("out", target, 4096)], { func: TA_CMD_GET_ENTROPY, session: s })));
    expect(m.vm("evil").vcpu(0).smc(OPTEE_SMC.CALL_WITH_ARG, hi(argPa), lo(argPa), 0, 0, 0, 0, m.vm("victim").domain.config.id).x0).toBe(ONES32);
    expect(m.vm("victim").memory.read(IPA + 3n * MiB, 4096)!.every((x) => x === 0)).toBe(true);
  });
});
