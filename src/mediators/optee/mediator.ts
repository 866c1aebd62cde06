/**
 * The OP-TEE mediator: VMs talk to one OP-TEE as if each had its own (Xen's xen/arch/arm/tee/optee.c is
 * the reference design). Every VM gets its client ID (its VM ID) in a7. Every message argument is copied
 * out of guest memory into a shadow page of the hypervisor's own before it is checked, and only the
 * checked copy reaches OP-TEE, so a guest changing its buffer mid-call changes nothing (no
 * time-of-check to time-of-use gap). Every buffer and page list is translated from the VM's addresses to
 * platform physical addresses and refused if any part lies outside the VM's RAM (secure memory and other
 * VMs' RAM included). Per-VM limits on calls in flight, registrations and pages keep one VM from starving
 * another. Static shared memory is hidden; dynamic shared memory is required.
 */
import type { ServiceClaim } from "../../policy/compile.js";
import type { VmConfig } from "../../policy/load.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin } from "../../router/ports.js";
import { ATTR, ATTR_META, ATTR_NONCONTIG, ATTR_TYPE_MASK, isRpc, MAX_PARAMS, MSG_CMD, OPTEE_MSG_UID, OPTEE_RET, OPTEE_RPC_FUNC, OPTEE_SMC, ORIGIN, PAGE_SIZE, SEC_CAP, TEEC } from "../../smccc/optee/abi.js";
import { decodeMsg, encodeMsg, headerNumParams, msgSize, type MsgArg, type MsgParam } from "../../smccc/optee/msg.js";
import type { EnableResult, Mediator, MediatorHost } from "../mediator.js";
import { translatePageList } from "./page-list.js";

export interface OpteeMediatorLimits {
  /** Yielding calls a VM may have in OP-TEE at once; more get ETHREAD_LIMIT and are retried by the guest. */
  readonly callsInFlight: number;
  /** Shared-memory registrations per VM. */
  readonly registrations: number;
  /** Registered pages per VM. */
  readonly pages: number;
}

export const DEFAULT_LIMITS: OpteeMediatorLimits = { callsInFlight: 4, registrations: 256, pages: 16384 };

interface Registration {
  readonly pages: number;
}

interface PendingCall {
  /** Where the guest's argument is (IPA): results go back there, field by field. */
  readonly guestArg: bigint;
  /** The checked copy, as sent to OP-TEE. */
  readonly sent: MsgArg;
  readonly shadow: bigint;
  /** Heap pages holding translated page lists for this call, freed when it completes. */
  readonly listPages: bigint[];
  /** The RPC OP-TEE asked for, awaiting the guest's RETURN_FROM_RPC. */
  rpc: { func: number; size: number } | null;
}

interface VmState {
  readonly name: string;
  readonly client: number;
  inFlight: number;
  /** Calls suspended in RPC, by OP-TEE thread ID. */
  readonly pending: Map<number, PendingCall>;
  readonly registrations: Map<bigint, Registration>;
  pages: number;
  /** Buffers the guest allocated for OP-TEE through RPC ALLOC: cookie → size. */
  readonly rpcBuffers: Map<bigint, number>;
}

const FAST_PASS_THROUGH = new Set<number>([OPTEE_SMC.CALLS_COUNT, OPTEE_SMC.CALLS_UID, OPTEE_SMC.CALLS_REVISION, OPTEE_SMC.CALL_GET_OS_UUID, OPTEE_SMC.CALL_GET_OS_REVISION, OPTEE_SMC.GET_THREAD_COUNT, OPTEE_SMC.ENABLE_SHM_CACHE]);

export class OpteeMediator implements Mediator {
  readonly name = "optee";
  private readonly vms = new Map<string, VmState>();
  present = false;

  constructor(private readonly host: MediatorHost, private readonly limits: OpteeMediatorLimits = DEFAULT_LIMITS) {}

  claims(vm: VmConfig): ServiceClaim[] {
    // Trusted Application and Trusted OS owners (48-63), fast and yielding, SMC32 and SMC64.
    const types = vm.aarch32 ? [0, 2] : [0, 1, 2, 3];
    const out: ServiceClaim[] = [];
    for (let owner = 48; owner <= 63; owner++) out.push({ service: "optee", owner, types, first: 0, last: 0xffff, mediator: "optee" });
    // Yielding calls of OEN 2-47 belong to Trusted OSes too (TF-A rt-svc-writers-guide).
    for (let owner = 2; owner < 48; owner++) out.push({ service: "optee", owner, types: vm.aarch32 ? [0] : [0, 1], first: 0, last: 0xffff, mediator: "optee" });
    return out;
  }

  probe(): boolean | Promise<boolean> {
    const check = (r: number[]) => (this.present = OPTEE_MSG_UID.every((w, i) => r[i] === w));
    const r = this.host.secureCall("optee mediator: probe", null, [OPTEE_SMC.CALLS_UID]);
    return r instanceof Promise ? r.then(check) : check(r);
  }

  enable(vm: VmConfig): EnableResult | Promise<EnableResult> {
    if (!this.present) return { ok: false, message: "there is no OP-TEE in the secure world" };
    if (this.vms.has(vm.name)) return { ok: false, message: "the TEE is already enabled for this VM" };
    const done = (r: number[]): EnableResult => {
      if (r[0] !== OPTEE_RET.OK) return { ok: false, message: `OP-TEE has no room for another guest (VM_CREATED answered ${r[0] === OPTEE_RET.ENOTAVAIL ? "ENOTAVAIL" : r[0]})` };
      this.vms.set(vm.name, { name: vm.name, client: vm.id, inFlight: 0, pending: new Map(), registrations: new Map(), pages: 0, rpcBuffers: new Map() });
      return { ok: true };
    };
    const r = this.host.secureCall(`optee mediator: VM_CREATED ${vm.name}`, vm.name, [OPTEE_SMC.VM_CREATED, vm.id]);
    return r instanceof Promise ? r.then(done) : done(r);
  }

  destroy(vm: string): void | Promise<void> {
    const st = this.vms.get(vm);
    if (!st) return;
    for (const p of st.pending.values()) this.release(p);
    this.vms.delete(vm);
    const r = this.host.secureCall(`optee mediator: VM_DESTROYED ${vm}`, vm, [OPTEE_SMC.VM_DESTROYED, st.client]);
    if (r instanceof Promise) return r.then(() => undefined);
  }

  /**
   * OP-TEE's virtualization knows no guest reset: a guest that restarts is destroyed and created again,
   * VM_DESTROYED then VM_CREATED with the same client ID (optee_smc.h: VM_DESTROYED "during virtual
   * machine (guest) destruction", after which "OP-TEE will clean up all resources associated with this
   * VM"; Xen's toolstack destroys and recreates the domain of a guest that reboots, and its
   * optee_domain_destroy sends VM_DESTROYED once "all domain VCPUs" are stopped). So: release what the
   * mediator holds for calls suspended in OP-TEE, forget the VM's registrations and RPC buffers, and enable
   * it afresh.
   */
  reset(vm: VmConfig): EnableResult | Promise<EnableResult> {
    if (!this.vms.has(vm.name)) return { ok: false, message: "the TEE is not enabled for this VM" };
    const destroyed = this.destroy(vm.name);
    return destroyed instanceof Promise ? destroyed.then(() => this.enable(vm)) : this.enable(vm);
  }

  counters(vm: string): Record<string, number> {
    const st = this.vms.get(vm);
    return { inFlight: st?.inFlight ?? 0, pendingRpc: st?.pending.size ?? 0, registrations: st?.registrations.size ?? 0, pages: st?.pages ?? 0, rpcBuffers: st?.rpcBuffers.size ?? 0 };
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    const st = this.vms.get(origin.vmName);
    // A VM without the TEE enabled gets -1, as for any call it may not make.
    if (!st) return res.ret(-1);
    const fid = call.fid;
    if ((fid & 0x4000_0000) !== 0) return res.ret(OPTEE_RET.UNKNOWN_FUNCTION); // OP-TEE has no SMC64 calls
    if (FAST_PASS_THROUGH.has(fid)) return this.toGuest(res, this.os(st, [fid, call.w(1), call.w(2), call.w(3), call.w(4), call.w(5), call.w(6)]));
    switch (fid) {
      case OPTEE_SMC.EXCHANGE_CAPABILITIES: {
        const r = this.os(st, [fid, call.w(1)]);
        if (r[0] !== OPTEE_RET.OK) return this.toGuest(res, r);
        // Dynamic shared memory is required; static (reserved) shared memory, asynchronous notifications
        // and the RPC_ARG and REGD_ARG calls are not offered through the mediator.
        if (!(r[1]! & SEC_CAP.DYNAMIC_SHM)) return res.ret(OPTEE_RET.ENOTAVAIL);
        r[1] = r[1]! & ~(SEC_CAP.HAVE_RESERVED_SHM | SEC_CAP.UNREGISTERED_SHM | SEC_CAP.ASYNC_NOTIF | SEC_CAP.RPC_ARG);
        r[2] = 0;
        r[3] = 0;
        return this.toGuest(res, r);
      }
      case OPTEE_SMC.GET_SHM_CONFIG:
        return res.ret(OPTEE_RET.ENOTAVAIL);
      case OPTEE_SMC.DISABLE_SHM_CACHE: {
        const r = this.os(st, [fid]);
        if (r[0] === OPTEE_RET.OK) st.rpcBuffers.delete((BigInt(r[1]!) << 32n) | BigInt(r[2]!));
        return this.toGuest(res, r);
      }
      case OPTEE_SMC.CALL_WITH_ARG:
        return this.callWithArg(st, (BigInt(call.w(1)) << 32n) | BigInt(call.w(2)), call.w(3), res);
      case OPTEE_SMC.RETURN_FROM_RPC:
        return this.returnFromRpc(st, call, res);
    }
    // VM lifecycle, secondary boot, L2 cache mutex, notifications and the RPC_ARG calls are the
    // hypervisor's or not offered.
    res.ret(OPTEE_RET.UNKNOWN_FUNCTION);
  }

  /** An SMC to OP-TEE for a VM, with the VM's client ID in a7. */
  private os(st: VmState, regs: number[]): number[] {
    const full = [...regs, 0, 0, 0, 0, 0, 0, 0].slice(0, 7);
    full.push(st.client);
    const r = this.host.secureCall(`optee mediator for ${st.name}`, st.name, full);
    if (r instanceof Promise) throw new Error("the OP-TEE mediator needs a synchronous secure world");
    return r;
  }

  private toGuest(res: SmcResult, r: readonly number[]): void {
    for (let i = 0; i < 4; i++) res.set(i, r[i]! >>> 0);
  }

  /**
   * Refuses a call with an SMC-level code and reports why. The report is rate-limited per VM and code, not
   * per detail: a guest varying the details (a count, a command) must not get a fresh allowance each time.
   */
  private refuse(st: VmState, res: SmcResult, code: number, why: string): void {
    this.host.log(st.name, `optee:a0=${code}`, `smcvisor: optee mediator: ${st.name}: ${why}`);
    res.ret(code);
  }

  private callWithArg(st: VmState, guestArg: bigint, cacheAttr: number, res: SmcResult): void {
    if (st.inFlight >= this.limits.callsInFlight) return res.ret(OPTEE_RET.ETHREAD_LIMIT);
    const mem = this.host.memory(st.name);
    // Copy first: the header, then exactly the parameters it announces.
    const header = (guestArg & 7n) === 0n ? (mem?.read(guestArg, 32) ?? null) : null;
    if (header === null) return this.refuse(st, res, OPTEE_RET.EBADADDR, "message argument outside the VM's RAM");
    const n = headerNumParams(header);
    if (n > MAX_PARAMS) return this.refuse(st, res, OPTEE_RET.EBADADDR, `message argument with ${n} parameters`);
    const bytes = mem!.read(guestArg, msgSize(n));
    if (bytes === null) return this.refuse(st, res, OPTEE_RET.EBADADDR, "message argument outside the VM's RAM");
    // The count checked above, not the header's second copy: another vCPU may have rewritten it in between.
    const msg = decodeMsg(bytes, n);
    // Commands beyond the message protocol (asynchronous notification, protected memory) are not offered:
    // an SMC-level EBADCMD, as OP-TEE answers a command it does not know (entry_std.c), the message untouched.
    if (msg.cmd > MSG_CMD.UNREGISTER_SHM) return this.refuse(st, res, OPTEE_RET.EBADCMD, `message command ${msg.cmd}`);
    // Then check and translate the copy.
    const listPages: bigint[] = [];
    const checked = this.translate(st, msg, listPages);
    if (checked !== null) {
      for (const p of listPages) this.host.heap.free(p);
      // A message the mediator refuses still completes: OP-TEE's answer to a bad one, in the guest's arg.
      return this.completeRefused(st, guestArg, msg, checked, res);
    }
    const shadow = this.host.heap.alloc();
    if (shadow === null) {
      for (const p of listPages) this.host.heap.free(p);
      return res.ret(OPTEE_RET.ENOMEM);
    }
    this.host.heap.write(shadow, encodeMsg(msg));
    st.inFlight++;
    const call: PendingCall = { guestArg, sent: msg, shadow, listPages, rpc: null };
    this.afterOs(st, call, this.os(st, [OPTEE_SMC.CALL_WITH_ARG, Number(shadow >> 32n), Number(shadow & 0xffff_ffffn), cacheAttr]), res);
  }

  /**
   * Checks every parameter of the copy and rewrites its addresses for OP-TEE. Returns null when the
   * message may go on, or the TEE result it gets instead.
   */
  private translate(st: VmState, msg: MsgArg, listPages: bigint[]): number | null {
    const registering = msg.cmd === MSG_CMD.REGISTER_SHM;
    if (registering && st.registrations.size >= this.limits.registrations) return TEEC.ERROR_OUT_OF_MEMORY;
    // The pages all of one message's temporary memrefs may span, together: without it, 127 parameters of a
    // full budget each would pin 127 times the hypervisor pages and secure-world memory of one.
    let pagesLeft = registering ? this.limits.pages - st.pages : this.limits.pages;
    for (let i = 0; i < msg.params.length; i++) {
      const p = msg.params[i]!;
      const type = Number(p.attr & BigInt(ATTR_TYPE_MASK));
      const flags = p.attr & ~BigInt(ATTR_TYPE_MASK);
      const meta = (flags & BigInt(ATTR_META)) !== 0n;
      // META only on OPEN_SESSION's first two value parameters; NONCONTIG only on TMEM; no other bits.
      if (meta && !(msg.cmd === MSG_CMD.OPEN_SESSION && i < 2 && type === ATTR.VALUE_INPUT)) return TEEC.ERROR_BAD_PARAMETERS;
      if ((flags & ~BigInt(ATTR_META | ATTR_NONCONTIG | (7 << 16))) !== 0n) return TEEC.ERROR_BAD_PARAMETERS;
      switch (type) {
        case ATTR.NONE:
        case ATTR.VALUE_INPUT:
        case ATTR.VALUE_OUTPUT:
        case ATTR.VALUE_INOUT:
          if (flags & BigInt(ATTR_NONCONTIG)) return TEEC.ERROR_BAD_PARAMETERS;
          break;
        case ATTR.RMEM_INPUT:
        case ATTR.RMEM_OUTPUT:
        case ATTR.RMEM_INOUT:
          // A registered buffer, named by its cookie: only the VM's own.
          if (!st.registrations.has(p.c) || flags & BigInt(ATTR_NONCONTIG)) return TEEC.ERROR_BAD_PARAMETERS;
          break;
        case ATTR.TMEM_INPUT:
        case ATTR.TMEM_OUTPUT:
        case ATTR.TMEM_INOUT: {
          if (p.a === 0n && p.b === 0n && !(flags & BigInt(ATTR_NONCONTIG))) break; // null memref
          const r = this.translateTmem(st, p, flags, listPages, registering, pagesLeft);
          if (typeof r !== "number") return r.error;
          pagesLeft -= r;
          break;
        }
        default:
          return TEEC.ERROR_BAD_PARAMETERS;
      }
    }
    if (msg.cmd === MSG_CMD.UNREGISTER_SHM && !st.registrations.has(msg.params[0]?.c ?? -1n)) return TEEC.ERROR_BAD_PARAMETERS;
    return null;
  }

  /** Translates one TMEM in place; the pages it spans, or the TEE result that refuses it. */
  private translateTmem(st: VmState, p: MsgParam, flags: bigint, listPages: bigint[], registering: boolean, budget: number): number | { error: number } {
    if (flags & BigInt(ATTR_NONCONTIG)) {
      const r = translatePageList(this.host, st.name, p.a, p.b, budget);
      if (!r.ok) {
        this.host.log(st.name, `optee:pagelist`, `smcvisor: optee mediator: ${st.name}: page list refused: ${r.why}`);
        return { error: r.result };
      }
      listPages.push(...r.listPages);
      p.a = r.bufPtr;
      if (registering) (p as MsgParam & { pages?: number }).pages = r.pages;
      return r.pages;
    }
    // A contiguous buffer: all of it must be the VM's own RAM.
    const pa = this.host.ipaToPa(st.name, p.a, p.b === 0n ? 1n : p.b);
    if (pa === null) return { error: TEEC.ERROR_BAD_PARAMETERS };
    const pages = Number(((p.a & 0xfffn) + p.b + BigInt(PAGE_SIZE - 1)) / BigInt(PAGE_SIZE));
    if (pages > budget) return { error: TEEC.ERROR_OUT_OF_MEMORY };
    p.a = pa;
    return pages;
  }

  private completeRefused(st: VmState, guestArg: bigint, msg: MsgArg, result: number, res: SmcResult): void {
    msg.ret = result;
    msg.retOrigin = ORIGIN.COMMS;
    this.writeResults(st, guestArg, msg, msg, false);
    res.ret(OPTEE_RET.OK);
  }

  /** OP-TEE answered a CALL_WITH_ARG or RETURN_FROM_RPC: complete, pass an RPC on, or give up. */
  private afterOs(st: VmState, call: PendingCall, r: number[], res: SmcResult): void {
    const a0 = r[0]! >>> 0;
    if (isRpc(a0)) {
      const func = a0 & 0xffff;
      const thread = r[3]!;
      call.rpc = { func, size: r[1]! };
      st.pending.set(thread, call);
      if (func === OPTEE_RPC_FUNC.FREE) st.rpcBuffers.delete((BigInt(r[1]!) << 32n) | BigInt(r[2]!));
      return this.toGuest(res, r);
    }
    st.inFlight--;
    if (a0 === OPTEE_RET.OK) {
      const answered = this.host.heap.read(call.shadow, msgSize(call.sent.params.length));
      if (answered !== null) {
        const back = decodeMsg(answered, call.sent.params.length);
        this.writeResults(st, call.guestArg, call.sent, back, true);
        if (call.sent.cmd === MSG_CMD.REGISTER_SHM && back.ret === TEEC.SUCCESS) {
          const pages = (call.sent.params[0] as MsgParam & { pages?: number }).pages ?? 0;
          st.registrations.set(call.sent.params[0]!.c, { pages });
          st.pages += pages;
        }
        if (call.sent.cmd === MSG_CMD.UNREGISTER_SHM && back.ret === TEEC.SUCCESS) {
          const cookie = call.sent.params[0]!.c;
          st.pages -= st.registrations.get(cookie)?.pages ?? 0;
          st.registrations.delete(cookie);
        }
      }
    }
    this.release(call);
    this.toGuest(res, r);
  }

  /**
   * Copies OP-TEE's results into the guest's argument, field by field: only what the message type lets
   * OP-TEE return (ret, origin, session, output values and sizes). Input fields are never written back.
   */
  private writeResults(st: VmState, guestArg: bigint, sent: MsgArg, back: MsgArg, fromOs: boolean): void {
    const mem = this.host.memory(st.name);
    if (!mem) return;
    mem.write(guestArg + 20n, u32(back.ret));
    mem.write(guestArg + 24n, u32(back.retOrigin));
    if (!fromOs) return;
    if (sent.cmd === MSG_CMD.OPEN_SESSION) mem.write(guestArg + 8n, u32(back.session));
    sent.params.forEach((p, i) => {
      const q = back.params[i];
      if (!q) return;
      const type = Number(p.attr & BigInt(ATTR_TYPE_MASK));
      const base = guestArg + 32n + 32n * BigInt(i);
      if (type === ATTR.VALUE_OUTPUT || type === ATTR.VALUE_INOUT) {
        mem.write(base + 8n, u64(q.a));
        mem.write(base + 16n, u64(q.b));
        mem.write(base + 24n, u64(q.c));
      } else if (type === ATTR.RMEM_OUTPUT || type === ATTR.RMEM_INOUT || type === ATTR.TMEM_OUTPUT || type === ATTR.TMEM_INOUT) {
        mem.write(base + 16n, u64(q.b));
      }
    });
  }

  private returnFromRpc(st: VmState, call: SmcCall, res: SmcResult): void {
    const thread = call.w(3);
    const pending = st.pending.get(thread);
    // Only a call this VM has suspended: a thread ID of another VM's is not this VM's to resume.
    if (!pending || pending.rpc === null) return res.ret(OPTEE_RET.ERESUME);
    const rpc = pending.rpc;
    pending.rpc = null;
    st.pending.delete(thread);
    const regs = [OPTEE_SMC.RETURN_FROM_RPC, call.w(1), call.w(2), thread, call.w(4), call.w(5), call.w(6)];
    if (rpc.func === OPTEE_RPC_FUNC.ALLOC) {
      // The guest's buffer for OP-TEE: its IPA becomes a platform address, or 0 (allocation failed).
      const ipa = (BigInt(call.w(1)) << 32n) | BigInt(call.w(2));
      const cookie = (BigInt(call.w(4)) << 32n) | BigInt(call.w(5));
      const pa = ipa === 0n ? null : this.host.ipaToPa(st.name, ipa, BigInt(Math.max(rpc.size, 1)));
      if (pa === null || (pa & 0xfffn) + BigInt(rpc.size) > BigInt(PAGE_SIZE) * 16n) {
        regs[1] = 0;
        regs[2] = 0;
      } else {
        regs[1] = Number(pa >> 32n);
        regs[2] = Number(pa & 0xffff_ffffn);
        st.rpcBuffers.set(cookie, rpc.size);
      }
    }
    this.afterOs(st, pending, this.os(st, regs), res);
  }

  private release(call: PendingCall): void {
    this.host.heap.free(call.shadow);
    for (const p of call.listPages) this.host.heap.free(p);
  }
}

/** Little-endian encodings of one message field, for writing results back field by field. */
function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
}
