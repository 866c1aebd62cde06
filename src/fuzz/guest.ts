/**
 * The fuzzing guests: what every VM of a campaign calls, and with what. Function IDs are drawn from the
 * services' claims and the standard interfaces (Arm Architecture, PSCI, TRNG, PV time, hypervisor
 * queries), from the IDs the policy names (exact IDs, range ends and their neighbours, owner grants, the
 * values of argument constraints and their 64-bit variants), from the OP-TEE SMC ABI with message
 * arguments built in guest RAM, from the EEMI-shaped SiP interface, and at random or as a known ID with
 * bits flipped. Arguments favour what an attacker would try: the VM's own RAM and its edges, another VM's
 * addresses (IPA and physical), secure memory, the hypervisor's heap, other VMs' OP-TEE sessions, cookies,
 * threads and client IDs.
 *
 * The OP-TEE part is a small stateful driver (as Linux's drivers/tee/optee would be): it opens sessions to
 * the modelled TAs, invokes them with value and memory parameters, registers shared memory through page
 * lists, answers OP-TEE's RPCs (ALLOC, CMD, FREE, FOREIGN_INTR) with RETURN_FROM_RPC, and mutates some of
 * what it builds (fields, counts, attributes, addresses) so that the mediator's checks are tried.
 */
import type { ServiceClaim } from "../policy/compile.js";
import type { Config, VmConfig } from "../policy/load.js";
import { HYPERVISOR_HEAP } from "../policy/memory-map.js";
import { FUNCTION_TABLES } from "../smccc/names.js";
import { ATTR, ATTR_META, ATTR_NONCONTIG, MSG_CMD, MSG_HEADER_SIZE, MSG_PARAM_SIZE, OPTEE_SMC, PAGE_SIZE, PAGELIST_ENTRIES } from "../smccc/optee/abi.js";
import { MSG_NUM_PARAMS_OFFSET, MSG_RET_OFFSET, MSG_SESSION_OFFSET } from "../smccc/optee/msg.js";
import { uuidBytes } from "../smccc/uuid.js";
import { PM_API, PM_SIP_SVC } from "../firmware/monitor/eemi.js";
import { CONTENT_DECRYPT_UUID } from "../firmware/optee/tas/content-decrypt.js";
import { DEVICE_ENUM_PTA_UUID } from "../firmware/optee/tas/device-enum.js";
import { HELLO_WORLD_UUID } from "../firmware/optee/tas/hello-world.js";
import { RNG_TA_UUID } from "../firmware/optee/tas/rng.js";
import { mpidrOf } from "../services/psci/topology.js";
import type { Random } from "./random.js";

/** What a generated call is, for the campaign's checks and for the guest's own bookkeeping afterwards. */
export interface CallPlan {
  conduit: "smc" | "hvc";
  /** The caller is in AArch32 state (always for an AArch32 VM; now and then for an AArch64 one). */
  aarch32: boolean;
  /** The SMC/HVC immediate (SMCCC calls use #0). */
  imm: number;
  /** AArch32 SMC only: the condition of a conditional SMC, or -1. */
  cond: number;
  /** NZCV in PSTATE at the call. */
  nzcv: number;
  /** What the guest does with the answer (OP-TEE bookkeeping). */
  kind: number;
  /** For OP-TEE calls: the message argument's IPA, its command, and the thread resumed. */
  argIpa: bigint;
  cmd: number;
  thread: number;
  /** OPEN_SESSION: the TA asked for (an index into TA_UUIDS), so that its session gets that TA's commands. */
  ta: number;
}

const KIND_PLAIN = 0;
const KIND_OPTEE_ARG = 1;
const KIND_OPTEE_RESUME = 2;

/** The driver's pages in each VM's RAM: arguments, page lists, buffers, RPC buffers (one page each). */
const ARENA_PAGES = 8;
const PAGE_ARGS = 0;
const PAGE_LISTS = 2;
const PAGE_DATA = 3;
const DATA_PAGES = 4;
const PAGE_RPC = 7;

/** PSCI calls that stop the vCPU or the VM: rare, so that VMs mostly run. */
const STOPPING = new Set([0x8400_0002, 0x8400_0008, 0x8400_0009, 0x8400_0015, 0xc400_0015, 0x8400_0012, 0xc400_0012, 0x8400_0001, 0xc400_0001, 0x8400_000b, 0x8400_000c, 0xc400_000c, 0x8400_000e, 0xc400_000e, 0x95c1_ba5e, 0x95c1_ba5f]);

const MEM_PROTECT = 0x8400_0013;
/** Edge values as 64-bit words: all ones in 32 and 64 bits, the sign bits, 2^32. */
const EDGES_LO = [0xffff_ffff, 0xffff_ffff, 0x8000_0000, 0, 0, 1];
const EDGES_HI = [0, 0xffff_ffff, 0, 1, 0x8000_0000, 1];

const TA_UUIDS = [HELLO_WORLD_UUID, RNG_TA_UUID, CONTENT_DECRYPT_UUID, DEVICE_ENUM_PTA_UUID, "00000000-0000-0000-0000-000000000000"].map((u) => uuidBytes(u));

interface PendingRpc {
  func: number;
  a1: number;
  a2: number;
  argIpa: bigint;
  cmd: number;
}

/** What one VM's guest knows: its layout, and its OP-TEE driver's sessions, cookies and threads. */
export class FuzzGuest {
  readonly name: string;
  readonly id: number;
  readonly ramBase: bigint;
  readonly ramSize: bigint;
  readonly pa: bigint;
  readonly arena: bigint;
  readonly sessions: number[] = [];
  /** Which TA each open session is with (an index into TA_UUIDS). */
  readonly sessionTa = new Map<number, number>();
  readonly cookies: bigint[] = [];
  readonly pending = new Map<number, PendingRpc>();
  /** RPC buffers handed to OP-TEE (ALLOC): cookie → IPA. */
  readonly rpcBuffers = new Map<bigint, bigint>();
  nextCookie = 1n;
  /** Addresses for plain arguments, drawn once (CallGenerator.address): low and high words. */
  readonly addrLo = new Uint32Array(128);
  readonly addrHi = new Uint32Array(128);

  constructor(readonly config: VmConfig, readonly claims: readonly ServiceClaim[]) {
    this.name = config.name;
    this.id = config.id;
    this.ramBase = config.memory.base;
    this.ramSize = config.memory.size;
    this.pa = config.memory.pa;
    this.arena = this.ramBase + (this.ramSize >= 0x20_0000n ? 0x10_0000n : 0n);
  }

  page(n: number): bigint {
    return this.arena + BigInt(n * PAGE_SIZE);
  }
}

/** Writes guest memory as the guest itself would (not through the hypervisor's ports). */
export type GuestWrite = (vm: FuzzGuest, ipa: bigint, bytes: Uint8Array) => void;
export type GuestRead = (vm: FuzzGuest, ipa: bigint, length: number) => Uint8Array | null;

export class CallGenerator {
  /** Named IDs of the standard interfaces, and the general queries of every owner. */
  private readonly standard: number[] = [];
  /** IDs the policies name, with range ends, neighbours and owner samples. */
  private readonly policy: number[] = [];
  /** Argument constraints of every rule: register, W or X, and values inside, at and beyond their ranges. */
  private readonly constraints: { reg: number; low32: boolean; values: bigint[] }[] = [];
  private readonly opteeIds: number[];
  private readonly nodes: number[];
  private readonly secure: bigint[] = [];
  private readonly anyTee: boolean;
  /** What the OP-TEE driver achieved: sessions opened, messages OP-TEE completed with success, RPCs answered. */
  readonly optee = { sessions: 0, succeeded: 0, rpcs: 0 };
  private readonly msg = new Uint8Array(PAGE_SIZE);
  private readonly dv = new DataView(this.msg.buffer);

  constructor(config: Config, readonly guests: readonly FuzzGuest[], private readonly rng: Random) {
    for (const [table, fns] of Object.entries(FUNCTION_TABLES)) {
      if (table === "optee" || table === "sip-eemi") continue;
      for (const def of Object.values(fns)) {
        if (def.smc32 !== undefined) this.standard.push(def.smc32);
        if (def.smc64 !== undefined) this.standard.push(def.smc64);
      }
    }
    // General queries (Call Count, UID, Revision) of every owner, SMC32 and SMC64.
    for (let owner = 0; owner < 64; owner++) for (const q of [0xff00, 0xff01, 0xff03]) this.standard.push((0x8000_0000 | (owner << 24) | q) >>> 0, (0xc000_0000 | (owner << 24) | q) >>> 0);
    for (const vm of config.vms) {
      for (const r of vm.rules) {
        const s = r.selector;
        if (s.kind === "id") this.policy.push(s.fid, (s.fid + 1) >>> 0, (s.fid - 1) >>> 0);
        else if (s.kind === "range") this.policy.push(s.lo, s.hi, (s.lo - 1) >>> 0, (s.hi + 1) >>> 0, (s.lo + Math.floor((s.hi - s.lo) / 2)) >>> 0);
        else for (const t of s.calls) for (const owner of [s.first, s.last]) this.policy.push((callTypeBits(t) | (owner << 24) | this.rng.pick([0, 1, 0xff01, 0xffff])) >>> 0);
        for (const c of r.constraints) {
          const values: bigint[] = [];
          for (const [lo, hi] of c.ranges) values.push(lo, hi, lo - 1n, hi + 1n, lo | (1n << 32n), hi | (0xffff_ffffn << 32n));
          this.constraints.push({ reg: c.reg, low32: c.low32, values: values.map((v) => BigInt.asUintN(64, v)) });
        }
      }
    }
    this.opteeIds = Object.values(FUNCTION_TABLES["optee"]!).map((d) => d.smc32!);
    this.nodes = (config.platform.sipNodes ?? []).map((n) => n.id);
    if (this.nodes.length === 0) this.nodes.push(33, 34, 39, 40, 46);
    for (const s of config.platform.secureMemory) this.secure.push(s.base, s.base + s.size - 1n);
    this.anyTee = config.platform.tee !== null;
    for (const g of guests) {
      for (let k = 0; k < g.addrLo.length; k++) {
        const a = BigInt.asUintN(64, this.address(g));
        g.addrLo[k] = Number(a & 0xffff_ffffn);
        g.addrHi[k] = Number(a >> 32n);
      }
    }
  }

  /**
   * Writes the next call of `vm` into `words` (x_n at [2n], [2n + 1]; registers it does not choose keep
   * what they held) and any guest memory it needs (through `write`), and describes it in `plan`.
   */
  next(vm: FuzzGuest, vcpus: number, aarch32Vm: boolean, conduit: "smc" | "hvc", words: Uint32Array, write: GuestWrite, plan: CallPlan): void {
    const rng = this.rng;
    plan.kind = KIND_PLAIN;
    plan.argIpa = 0n;
    plan.cmd = -1;
    plan.thread = -1;
    plan.aarch32 = aarch32Vm || rng.chance(0.03);
    plan.conduit = rng.chance(0.9) ? conduit : conduit === "smc" ? "hvc" : "smc";
    plan.imm = rng.chance(0.02) ? rng.pick([1, 0x1234, 0xffff]) : 0;
    plan.cond = plan.aarch32 && plan.conduit === "smc" && rng.chance(0.05) ? rng.below(16) : -1;
    plan.nzcv = rng.below(16);
    // Now and then every argument register gets a random value (so preservation is checked on live data).
    if (rng.chance(0.1)) for (let i = 2; i < 36; i++) words[i] = rng.u32();
    const r = rng.u32() % 100;
    let fid: number;
    if (r < 24) fid = this.standardCall(vm, vcpus, words);
    else if (r < 36) fid = this.tame(vm, this.claimed(vm, words));
    else if (r < 48) fid = this.tame(vm, this.policyCall(vm, words));
    else if (r < (this.anyTee ? 72 : 52)) fid = this.opteeCall(vm, words, write, plan);
    else if (r < 84) fid = this.sipCall(vm, words);
    else fid = this.tame(vm, this.mutated(vm, words));
    words[0] = fid >>> 0;
    words[1] = rng.chance(0.02) ? rng.u32() : 0; // stray upper bits of W0
    if (plan.aarch32) for (let i = 1; i < 36; i += 2) words[i] = 0; // AArch32 registers are 32 bits
  }

  /** What the guest learns from the answer: OP-TEE sessions, cookies, threads suspended in RPC. */
  observe(vm: FuzzGuest, plan: CallPlan, words: Uint32Array, read: GuestRead): void {
    if (plan.kind === KIND_PLAIN) return;
    if (vm.sessionTa.size > 64) for (const id of [...vm.sessionTa.keys()]) if (!vm.sessions.includes(id)) vm.sessionTa.delete(id);
    const a0 = words[0]!;
    if ((a0 & 0xffff_0000) >>> 0 === 0xffff_0000 && a0 !== 0xffff_ffff) {
      // An RPC: the thread waits for the guest's RETURN_FROM_RPC (a3 names it).
      if (vm.pending.size < 16) vm.pending.set(words[6]!, { func: a0 & 0xffff, a1: words[2]!, a2: words[4]!, argIpa: plan.argIpa, cmd: plan.cmd });
      return;
    }
    if (a0 !== 0 || plan.argIpa === 0n) return;
    const header = read(vm, plan.argIpa, MSG_HEADER_SIZE);
    if (header === null) return;
    const h = new DataView(header.buffer, header.byteOffset, header.byteLength);
    if (h.getUint32(MSG_RET_OFFSET, true) !== 0) return;
    this.optee.succeeded++;
    if (plan.cmd === MSG_CMD.OPEN_SESSION) {
      this.optee.sessions++;
      const id = h.getUint32(MSG_SESSION_OFFSET, true);
      push(vm.sessions, id, 32);
      vm.sessionTa.set(id, plan.ta);
    }
  }

  // --- the standard interfaces and the services' claims --------------------------------------------------

  /**
   * A stopping PSCI call mostly becomes AFFINITY_INFO, so that VMs mostly run; MEM_PROTECT nearly always,
   * and always for a VM above 64 MiB: once it is on, every reset of the VM wipes its RAM (DEN0022 §5.20),
   * which fills the whole buffer of a VM up to 1 GiB (twice with the reference machine) and costs time,
   * not isolation (larger VMs zero only the chunks their guest touched: GuestMemory.clear).
   */
  private tame(vm: FuzzGuest, fid: number): number {
    const f = fid >>> 0;
    if (f === MEM_PROTECT) return vm.ramSize <= 64n << 20n && this.rng.chance(0.001) ? fid : 0x8400_0004;
    return STOPPING.has(f) && !this.rng.chance(0.02) ? 0x8400_0004 : fid;
  }

  private standardCall(vm: FuzzGuest, vcpus: number, words: Uint32Array): number {
    const rng = this.rng;
    const fid = this.tame(vm, rng.pick(this.standard));
    switch (fid) {
      case 0x8400_0003: case 0xc400_0003: case 0x95c1_ba60: // CPU_ON(target, entry, context)
        this.set(words, 1, mpidrOf(rng.below(vcpus + 1)));
        this.set(words, 2, rng.chance(0.8) ? vm.ramBase + BigInt(rng.below(0x1000) * 4) : this.address(vm));
        this.set(words, 3, rng.u64());
        return fid;
      case 0x8400_0004: case 0xc400_0004: // AFFINITY_INFO(target, level)
        this.set(words, 1, rng.chance(0.8) ? mpidrOf(rng.below(vcpus + 1)) : rng.u64());
        this.set(words, 2, BigInt(rng.below(5)));
        return fid;
      case 0x8400_000a: case 0x8000_0001: case 0xc500_0020: // FEATURES(fid)
        this.set(words, 1, BigInt(rng.chance(0.7) ? rng.pick(this.standard) : rng.u32()));
        return fid;
      case 0x8000_0002: case 0xc000_0002: // SOC_ID(type)
        this.set(words, 1, BigInt(rng.below(3)));
        return fid;
      case 0x8400_0053: case 0xc400_0053: // TRNG_RND(bits)
        this.set(words, 1, BigInt(rng.chance(0.8) ? rng.below(200) : rng.u32()));
        return fid;
    }
    this.args(vm, words, 3);
    return fid;
  }

  private claimed(vm: FuzzGuest, words: Uint32Array): number {
    const rng = this.rng;
    // Mostly the VM's own services; now and then one of another VM's (another policy's IDs).
    const from = rng.chance(0.85) ? vm : rng.pick(this.guests);
    if (from.claims.length === 0) return this.mutated(vm, words);
    const c = rng.pick(from.claims);
    this.args(vm, words, 6);
    if (c.fids && c.fids.length > 0 && rng.chance(0.5)) return rng.pick(c.fids);
    const type = c.types.length > 0 ? rng.pick(c.types) : 2;
    const fn = rng.chance(0.3) ? rng.pick([c.first, c.last]) : c.first + rng.below(Math.min(c.last - c.first + 1, 64));
    return ((type << 30) | (c.owner << 24) | (fn & 0xffff)) >>> 0;
  }

  private policyCall(vm: FuzzGuest, words: Uint32Array): number {
    const rng = this.rng;
    this.args(vm, words, 4);
    if (this.constraints.length > 0 && rng.chance(0.6)) {
      const c = rng.pick(this.constraints);
      let v = rng.pick(c.values);
      if (c.low32 && rng.chance(0.3)) v = (v & 0xffff_ffffn) | (BigInt(rng.u32()) << 32n);
      this.set(words, c.reg, v);
    }
    return this.policy.length > 0 ? rng.pick(this.policy) : rng.pick(this.standard);
  }

  // --- SiP (EEMI) ------------------------------------------------------------------------------------------

  private sipCall(vm: FuzzGuest, words: Uint32Array): number {
    const rng = this.rng;
    const apis = Object.values(PM_API);
    const api = rng.chance(0.9) ? rng.pick(apis) : rng.below(80);
    const node = rng.chance(0.85) ? rng.pick(this.nodes) : rng.u32();
    // Clock and reset IDs of the model (100 + node, 1000 + node) and the raw node.
    const arg0 = rng.pick([node, node, 100 + node, 1000 + node]);
    let arg1 = rng.below(4);
    if (api === PM_API.PM_FPGA_LOAD) {
      // A bitstream address: the VM's own RAM (by physical address), another VM's, secure memory, the heap.
      const other = rng.pick(this.guests);
      const addr = rng.pick([vm.pa + BigInt(rng.below(0x1000) * 16), other.pa + 0x1000n, this.secure[0] ?? 0n, HYPERVISOR_HEAP.base, rng.u64()]);
      this.set(words, 1, ((addr >> 32n) << 32n) | (addr & 0xffff_ffffn));
      // Sizes the model reads, and ones beyond its 64 MiB limit (reading up to 64 MiB per call would be the
      // whole cost of a campaign).
      this.set(words, 2, BigInt(rng.pick([16, 256, 4096, (64 << 20) + 1, (0x8000_0000 | rng.u32()) >>> 0])));
      return (PM_SIP_SVC | api) >>> 0;
    }
    if (rng.chance(0.2)) arg1 = rng.u32();
    this.set(words, 1, (BigInt(arg1) << 32n) | BigInt(arg0 >>> 0));
    this.set(words, 2, BigInt(rng.pick([0, 1, 0xffff_ffff, rng.u32()])));
    return ((rng.chance(0.9) ? PM_SIP_SVC : 0x8200_0000) | api) >>> 0;
  }

  // --- OP-TEE -----------------------------------------------------------------------------------------------

  private opteeCall(vm: FuzzGuest, words: Uint32Array, write: GuestWrite, plan: CallPlan): number {
    const rng = this.rng;
    // a7: the client ID a guest has no business setting (the mediator must ignore it).
    this.set(words, 7, BigInt(rng.pick([0, vm.id, rng.pick(this.guests).id, rng.u32()])));
    // A thread waiting in an RPC is mostly answered first, as a driver does.
    if (vm.pending.size > 0 && rng.chance(0.6)) return this.returnFromRpc(vm, words, write, plan);
    const r = rng.below(100);
    if (r < 65) return this.callWithArg(vm, words, write, plan);
    if (r < 68) {
      // Another VM's suspended thread.
      const other = rng.pick(this.guests);
      const t = other.pending.keys().next();
      this.set(words, 3, BigInt(t.done ? rng.below(16) : t.value));
      this.set(words, 1, BigInt(rng.u32()));
      this.set(words, 2, BigInt(rng.u32()));
      return OPTEE_SMC.RETURN_FROM_RPC;
    }
    const fid = rng.pick(this.opteeIds);
    // VM_CREATED / VM_DESTROYED name a client: another VM's, to see that a guest cannot.
    this.set(words, 1, BigInt(rng.pick([rng.pick(this.guests).id, 0, 1, rng.u32()])));
    this.set(words, 2, BigInt(rng.pick([0, rng.u32()])));
    this.set(words, 3, BigInt(rng.below(16)));
    return fid;
  }

  /** A message argument in the VM's arena (or somewhere worse), valid-looking, mutated now and then. */
  private callWithArg(vm: FuzzGuest, words: Uint32Array, write: GuestWrite, plan: CallPlan): number {
    const rng = this.rng;
    const dv = this.dv;
    this.msg.fill(0, 0, 512);
    const cmd = rng.chance(0.04) ? rng.pick([6, 7, 8, 11, rng.u32()]) : rng.pick([MSG_CMD.OPEN_SESSION, MSG_CMD.OPEN_SESSION, MSG_CMD.INVOKE_COMMAND, MSG_CMD.INVOKE_COMMAND, MSG_CMD.INVOKE_COMMAND, MSG_CMD.CLOSE_SESSION, MSG_CMD.CANCEL, MSG_CMD.REGISTER_SHM, MSG_CMD.UNREGISTER_SHM]);
    dv.setUint32(0, cmd, true);
    let n = 0;
    const param = (attr: number, a: bigint, b: bigint, c: bigint) => {
      const o = MSG_HEADER_SIZE + MSG_PARAM_SIZE * n++;
      dv.setBigUint64(o, BigInt(attr), true);
      dv.setBigUint64(o + 8, BigInt.asUintN(64, a), true);
      dv.setBigUint64(o + 16, BigInt.asUintN(64, b), true);
      dv.setBigUint64(o + 24, BigInt.asUintN(64, c), true);
    };
    const session = () => (vm.sessions.length > 0 && rng.chance(0.85) ? rng.pick(vm.sessions) : rng.pick([...(rng.pick(this.guests).sessions), 1, rng.u32()]));
    const cookie = () => (vm.cookies.length > 0 && rng.chance(0.8) ? rng.pick(vm.cookies) : rng.pick([...(rng.pick(this.guests).cookies), BigInt(rng.u32())]));
    switch (cmd) {
      case MSG_CMD.OPEN_SESSION: {
        plan.ta = rng.below(TA_UUIDS.length);
        const u = TA_UUIDS[plan.ta]!;
        const dvu = new DataView(u.buffer, u.byteOffset, 16);
        param(ATTR.VALUE_INPUT | ATTR_META, dvu.getBigUint64(0, true), dvu.getBigUint64(8, true), 0n);
        param(ATTR.VALUE_INPUT | ATTR_META, 0n, 0n, BigInt(rng.pick([0, 0, 4, rng.u32()])));
        this.extraParams(vm, rng.below(3), param);
        break;
      }
      case MSG_CMD.INVOKE_COMMAND: {
        const id = session();
        const func = rng.below(3);
        dv.setUint32(4, func, true); // the TA's command
        dv.setUint32(MSG_SESSION_OFFSET, id, true);
        this.invokeParams(vm, rng.chance(0.85) ? (vm.sessionTa.get(id) ?? -1) : -1, func, param, cookie);
        break;
      }
      case MSG_CMD.CLOSE_SESSION:
      case MSG_CMD.CANCEL:
        dv.setUint32(MSG_SESSION_OFFSET, session(), true);
        if (cmd === MSG_CMD.CLOSE_SESSION && rng.chance(0.7)) remove(vm.sessions, dv.getUint32(MSG_SESSION_OFFSET, true));
        break;
      case MSG_CMD.REGISTER_SHM: {
        const pages = 1 + rng.below(3);
        const list = this.pageList(vm, pages, write);
        const c = vm.nextCookie++;
        param(ATTR.TMEM_INOUT | ATTR_NONCONTIG, list | BigInt(rng.below(4) * 8), BigInt(pages * PAGE_SIZE - rng.below(64)), c);
        if (rng.chance(0.9)) push(vm.cookies, c, 32);
        break;
      }
      case MSG_CMD.UNREGISTER_SHM: {
        const c = cookie();
        param(ATTR.RMEM_INPUT, 0n, 0n, c);
        if (rng.chance(0.7)) remove(vm.cookies, c);
        break;
      }
    }
    dv.setUint32(MSG_NUM_PARAMS_OFFSET, n, true);
    let size = MSG_HEADER_SIZE + MSG_PARAM_SIZE * n;
    if (rng.chance(0.25)) size = this.mutate(vm, size);
    this.boundMemrefs(size);
    // Where the argument goes: the arena mostly; at the edge of RAM, misaligned, or outside it now and then.
    let ipa = vm.page(PAGE_ARGS) + BigInt(rng.below(256) * 8);
    const where = rng.below(100);
    if (where < 3) ipa = vm.ramBase + vm.ramSize - BigInt(rng.below(4) * 8 + 8);
    else if (where < 5) ipa += BigInt(1 + rng.below(7));
    if (ipa >= vm.ramBase && ipa + BigInt(size) <= vm.ramBase + vm.ramSize) write(vm, ipa, this.msg.subarray(0, size));
    if (where >= 5 && where < 8) ipa = this.address(vm);
    this.set(words, 1, ipa >> 32n);
    this.set(words, 2, ipa & 0xffff_ffffn);
    this.set(words, 3, BigInt(rng.below(8)));
    plan.kind = KIND_OPTEE_ARG;
    plan.argIpa = ipa;
    plan.cmd = cmd;
    return rng.chance(0.97) ? OPTEE_SMC.CALL_WITH_ARG : rng.pick([0x3200_0012, 0x3200_0013, 0x3200_0005]);
  }

  /** Parameters after OPEN_SESSION's two META ones: values and buffers for the TA. */
  private extraParams(vm: FuzzGuest, count: number, param: (attr: number, a: bigint, b: bigint, c: bigint) => void): void {
    for (let i = 0; i < count; i++) param(this.rng.pick([ATTR.VALUE_INPUT, ATTR.VALUE_INOUT, ATTR.NONE]), BigInt(this.rng.u32()), 0n, 0n);
    void vm;
  }

  /**
   * INVOKE_COMMAND's parameters: the shape the session's TA takes for the command (hello world: a value in
   * and out; RNG: a buffer out or a value out; content decryption: buffer in, buffer out, IV, or a value
   * out; device enumeration: a buffer out), or any shape, with addresses anywhere.
   */
  private invokeParams(vm: FuzzGuest, ta: number, func: number, param: (attr: number, a: bigint, b: bigint, c: bigint) => void, cookie: () => bigint): void {
    const rng = this.rng;
    const buffer = () => vm.page(PAGE_DATA + rng.below(DATA_PAGES)) + BigInt(rng.below(64) * 8);
    const size = () => BigInt(rng.pick([0, 16, 64, 256, 1024, 4096 - 512, rng.below(9000)]));
    const memref = (out: number) => {
      if (rng.chance(0.1)) param(out, 0n, size(), 0n); // a null memref: a size query
      else if (rng.chance(0.7)) param(out, buffer(), size(), 0n);
      else param(out - 4, BigInt(rng.below(128)), size(), cookie()); // RMEM of a registration (same direction)
    };
    switch (ta) {
      case 0:
        param(ATTR.VALUE_INOUT, BigInt(rng.u32()), 0n, 0n);
        return;
      case 1:
        if (func === 0) memref(ATTR.TMEM_INOUT);
        else param(ATTR.VALUE_OUTPUT, 0n, 0n, 0n);
        return;
      case 2:
        if (func === 0) {
          memref(ATTR.TMEM_INPUT);
          memref(ATTR.TMEM_OUTPUT);
          param(ATTR.VALUE_INPUT, BigInt(rng.u32()), BigInt(rng.u32()), 0n);
        } else param(ATTR.VALUE_OUTPUT, 0n, 0n, 0n);
        return;
      case 3:
        memref(ATTR.TMEM_OUTPUT);
        return;
    }
    for (let i = 0, k = rng.below(5); i < k; i++) param(rng.below(12) | (rng.chance(0.1) ? ATTR_NONCONTIG : 0), rng.chance(0.5) ? this.address(vm) : buffer(), size(), rng.chance(0.5) ? cookie() : 0n);
  }

  /** A page list (optee_msg.h NONCONTIG) for `pages` pages of the VM's data area, in its list page. */
  private pageList(vm: FuzzGuest, pages: number, write: GuestWrite): bigint {
    const rng = this.rng;
    const list = new Uint8Array(8 * (PAGELIST_ENTRIES + 1));
    const dv = new DataView(list.buffer);
    for (let i = 0; i < pages; i++) {
      // Mostly the VM's own pages; now and then another VM's, secure memory or the heap.
      const page = rng.chance(0.92) ? vm.page(PAGE_DATA + rng.below(DATA_PAGES)) : this.address(vm) & ~0xfffn;
      dv.setBigUint64(8 * i, BigInt.asUintN(64, page), true);
    }
    // The next-list pointer: none, or (rarely) itself (a loop) or somewhere odd.
    const next = rng.chance(0.95) ? 0n : rng.pick([vm.page(PAGE_LISTS), vm.page(PAGE_LISTS) + 8n, this.address(vm)]);
    dv.setBigUint64(8 * PAGELIST_ENTRIES, BigInt.asUintN(64, next), true);
    write(vm, vm.page(PAGE_LISTS), list);
    return vm.page(PAGE_LISTS);
  }

  /** OP-TEE asked for something (an RPC): the guest answers it, mostly as a driver would. */
  private returnFromRpc(vm: FuzzGuest, words: Uint32Array, write: GuestWrite, plan: CallPlan): number {
    const rng = this.rng;
    const [thread, p] = rng.pick([...vm.pending]);
    vm.pending.delete(thread);
    this.optee.rpcs++;
    let a1 = 0, a2 = 0, a4 = 0, a5 = 0;
    if (p.func === 0) {
      // ALLOC: a buffer of the size asked (a1), in the VM's RPC page, and a cookie for it.
      const ipa = rng.chance(0.9) ? vm.page(PAGE_RPC) + BigInt(rng.below(8) * 64) : rng.chance(0.5) ? 0n : this.address(vm);
      const c = vm.nextCookie++;
      a1 = Number(ipa >> 32n);
      a2 = Number(ipa & 0xffff_ffffn);
      a4 = Number(c >> 32n);
      a5 = Number(c & 0xffff_ffffn);
      if (vm.rpcBuffers.size < 64) vm.rpcBuffers.set(c, ipa);
    } else if (p.func === 5) {
      // CMD: the command is in the buffer of cookie a1:a2; GET_TIME is answered in it (ret 0, seconds, ns).
      const ipa = vm.rpcBuffers.get((BigInt(p.a1) << 32n) | BigInt(p.a2));
      if (ipa !== undefined && ipa >= vm.ramBase && ipa + 64n <= vm.ramBase + vm.ramSize) {
        const answer = new Uint8Array(64);
        const d = new DataView(answer.buffer);
        d.setUint32(0, 3, true);
        d.setUint32(MSG_RET_OFFSET, rng.chance(0.9) ? 0 : rng.u32(), true);
        d.setUint32(MSG_NUM_PARAMS_OFFSET, rng.chance(0.9) ? 1 : rng.u32(), true);
        d.setUint32(MSG_HEADER_SIZE, ATTR.VALUE_OUTPUT, true);
        d.setUint32(MSG_HEADER_SIZE + 8, rng.u32(), true);
        d.setUint32(MSG_HEADER_SIZE + 16, rng.below(1_000_000_000), true);
        write(vm, ipa, answer);
      }
    } else if (p.func === 2) {
      vm.rpcBuffers.delete((BigInt(p.a1) << 32n) | BigInt(p.a2));
    }
    if (rng.chance(0.05)) a1 = rng.u32();
    this.set(words, 1, BigInt(a1));
    this.set(words, 2, BigInt(a2));
    this.set(words, 3, BigInt(rng.chance(0.95) ? thread : rng.below(16)));
    this.set(words, 4, BigInt(a4));
    this.set(words, 5, BigInt(a5));
    plan.kind = KIND_OPTEE_RESUME;
    plan.argIpa = p.argIpa;
    plan.cmd = p.cmd;
    plan.thread = thread;
    return OPTEE_SMC.RETURN_FROM_RPC;
  }

  /**
   * Memref sizes from 64 KiB up to 4 GiB become their low 16 bits: OP-TEE maps a memref of the VM's own RAM
   * in place, and every page a VM ever hands out in place is compared after other VMs' calls for the rest of
   * the campaign (memory-watch.ts), so one 16 MiB memref would make every later call pay for 16 MiB. Sizes
   * of 4 GiB and more (refused: not the VM's RAM) stay.
   */
  private boundMemrefs(size: number): void {
    const dv = this.dv;
    for (let o = MSG_HEADER_SIZE; o + MSG_PARAM_SIZE <= size; o += MSG_PARAM_SIZE) {
      const type = dv.getUint32(o, true) & 0xff;
      if (type < ATTR.RMEM_INPUT) continue;
      const lo = dv.getUint32(o + 16, true), hi = dv.getUint32(o + 20, true);
      if (hi === 0 && lo > 0xffff) dv.setUint32(o + 16, lo & 0xffff, true);
    }
  }

  /** 1-3 mutations of the message just built: a field, the count, an attribute, an address. Its new size. */
  private mutate(vm: FuzzGuest, size: number): number {
    const rng = this.rng;
    const dv = this.dv;
    for (let k = 0, m = 1 + rng.below(3); k < m; k++) {
      switch (rng.below(6)) {
        case 0: // a byte anywhere in it
          this.msg[rng.below(Math.max(size, 1))] = rng.u32() & 0xff;
          break;
        case 1: // num_params: more than were written, or far more than any message has
          dv.setUint32(MSG_NUM_PARAMS_OFFSET, rng.pick([rng.below(8), 127, 128, 0xffff_ffff]), true);
          break;
        case 2: // an attribute
          if (size > MSG_HEADER_SIZE) dv.setUint32(MSG_HEADER_SIZE + MSG_PARAM_SIZE * rng.below((size - MSG_HEADER_SIZE) / MSG_PARAM_SIZE), rng.chance(0.5) ? rng.u32() : rng.below(12) | ATTR_META | ATTR_NONCONTIG, true);
          break;
        case 3: // an address or size field: somewhere the VM may not reach
          if (size > MSG_HEADER_SIZE) dv.setBigUint64(MSG_HEADER_SIZE + MSG_PARAM_SIZE * rng.below((size - MSG_HEADER_SIZE) / MSG_PARAM_SIZE) + 8 * (1 + rng.below(3)), BigInt.asUintN(64, this.address(vm)), true);
          break;
        case 4: // the session, the command or the cancel ID
          dv.setUint32(rng.pick([0, 4, 8, 12]), rng.u32(), true);
          break;
        default: // more parameters of random bytes
          for (let i = size; i < Math.min(size + 64, 512); i++) this.msg[i] = rng.u32() & 0xff;
          size = Math.min(size + 64, 512);
      }
    }
    return size;
  }

  // --- everything else --------------------------------------------------------------------------------------

  /** A known ID with a field changed (owner, call type, SVE hint, must-be-zero bits, function), or random bits. */
  private mutated(vm: FuzzGuest, words: Uint32Array): number {
    const rng = this.rng;
    this.args(vm, words, 6);
    if (rng.chance(0.3)) return rng.u32();
    let fid = rng.pick(rng.chance(0.5) ? this.standard : this.policy.length > 0 ? this.policy : this.opteeIds);
    const bit = rng.pick([16, 17, 20, 23, 24, 29, 30, 31, rng.below(32)]);
    fid ^= 1 << bit;
    return fid >>> 0;
  }

  /** Arguments x1..xn from the interesting values (most of them; the others keep what they held). */
  private args(vm: FuzzGuest, words: Uint32Array, n: number): void {
    const rng = this.rng;
    for (let r = 1; r <= n; r++) {
      if (!rng.chance(0.7)) continue;
      const i = 2 * r;
      switch (rng.below(8)) {
        case 0: words[i] = rng.below(4); words[i + 1] = 0; break;
        case 1: { const k = rng.below(EDGES_LO.length); words[i] = EDGES_LO[k]!; words[i + 1] = EDGES_HI[k]!; break; }
        case 2: words[i] = rng.u32(); words[i + 1] = 0; break;
        case 3: words[i] = rng.u32(); words[i + 1] = rng.u32(); break;
        case 4: words[i] = rng.pick(this.standard); words[i + 1] = 0; break;
        case 5: words[i] = rng.pick(this.nodes); words[i + 1] = 0; break;
        default: { const k = rng.below(vm.addrLo.length); words[i] = vm.addrLo[k]!; words[i + 1] = vm.addrHi[k]!; }
      }
    }
  }

  /** An address an attacker would try: its own RAM and edges, another VM's (IPA or PA), secure memory, the heap. */
  address(vm: FuzzGuest): bigint {
    const rng = this.rng;
    const other = rng.pick(this.guests);
    switch (rng.below(10)) {
      case 0: return vm.ramBase;
      case 1: return vm.ramBase + vm.ramSize - BigInt(1 + rng.below(64));
      case 2: return vm.ramBase + vm.ramSize;
      case 3: return vm.pa + BigInt(rng.below(0x1000) * 8);
      case 4: return other.pa + BigInt(rng.below(0x1000) * 8);
      case 5: return other.page(rng.below(ARENA_PAGES));
      case 6: return this.secure.length > 0 ? rng.pick(this.secure) : 0x0e00_0000n;
      case 7: return HYPERVISOR_HEAP.base + BigInt(rng.below(64) * PAGE_SIZE);
      case 8: return vm.page(rng.below(ARENA_PAGES)) + BigInt(rng.below(4096));
      default: return rng.u64();
    }
  }

  private set(words: Uint32Array, n: number, v: bigint): void {
    const u = BigInt.asUintN(64, v);
    words[2 * n] = Number(u & 0xffff_ffffn);
    words[2 * n + 1] = Number(u >> 32n);
  }
}

function callTypeBits(t: string): number {
  return t === "fast32" ? 0x8000_0000 : t === "fast64" ? 0xc000_0000 : t === "yield64" ? 0x4000_0000 : 0;
}

function push<T>(list: T[], v: T, max: number): void {
  if (list.includes(v)) return;
  if (list.length >= max) list.shift();
  list.push(v);
}

function remove<T>(list: T[], v: T): void {
  const i = list.indexOf(v);
  if (i >= 0) list.splice(i, 1);
}
