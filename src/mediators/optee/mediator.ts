/**
 * The OP-TEE mediator: VMs talk to one OP-TEE as if each had its own (Xen's xen/arch/arm/tee/optee.c is
 * the reference design). Every VM gets its client ID (its VM ID) in a7. Every message argument is copied
 * out of guest memory into a shadow page of the hypervisor's own before it is checked, and only the
 * checked copy reaches OP-TEE, so a guest changing its buffer mid-call changes nothing (no
 * time-of-check to time-of-use gap). Every buffer and page list is translated from the VM's addresses to
 * platform physical addresses and refused if any part lies outside the VM's RAM (secure memory and other
 * VMs' RAM included). Per-VM limits on calls in flight, sessions, registrations and pages keep one VM from
 * starving another. Static shared memory is hidden; dynamic shared memory is required.
 */
import type { ServiceClaim } from "../../policy/compile.js";
import type { VmConfig } from "../../policy/load.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, GuestMemory } from "../../router/ports.js";
import { CALL_TYPE } from "../../smccc/fid.js";
import { OEN } from "../../smccc/owners.js";
import { ATTR, ATTR_META, ATTR_NONCONTIG, isRpc, MAX_PARAMS, MSG_CMD, MSG_HEADER_SIZE, OPTEE_MSG_UID, OPTEE_RET, OPTEE_RPC_FUNC, OPTEE_SMC, ORIGIN, PAGE_SIZE, SEC_CAP, TEEC } from "../../smccc/optee/abi.js";
import { DEFAULT_MEDIATOR_LIMITS, type OpteeMediatorLimits } from "../../smccc/optee/limits.js";
import { MSG_NUM_PARAMS_OFFSET, MSG_RET_OFFSET, MSG_RET_ORIGIN_OFFSET, MSG_SESSION_OFFSET, MsgBuf, msgSize, PARAM_A, PARAM_ATTR, PARAM_B, PARAM_C, paramOffset } from "../../smccc/optee/msg.js";
import type { EnableResult, Mediator, MediatorHost, SecureChannel } from "../mediator.js";
import { translatePageList } from "./page-list.js";

export type { OpteeMediatorLimits } from "../../smccc/optee/limits.js";

/**
 * The capabilities a guest is told of (EXCHANGE_CAPABILITIES a1): only those the mediator supports, as
 * Xen's mediator keeps only the capabilities it knows (xen/arch/arm/tee/optee.c OPTEE_KNOWN_SEC_CAPS,
 * handle_exchange_capabilities). VIRTUALIZATION is OP-TEE's answer to the hypervisor (entry_fast.c sets it
 * whenever CFG_NS_VIRTUALIZATION is built in); a guest talks to an OP-TEE of its own, and under Xen does not
 * see it either. Reserved and unregistered shared memory, asynchronous notifications and RPC_ARG are not
 * offered (the function table in README.md).
 */
const GUEST_SEC_CAPS = SEC_CAP.DYNAMIC_SHM | SEC_CAP.MEMREF_NULL;

/** OP-TEE knows guests by a 16-bit ID (core/arch/arm/kernel/virtualization.c: uint16_t guest_id); 0 is the hypervisor. */
const MAX_CLIENT_ID = 0xffff;

interface Registration {
  readonly pages: number;
}

interface PendingCall {
  /** Where the guest's argument is (IPA): results go back there, field by field. */
  readonly guestArg: bigint;
  /** The checked copy's command, parameter count and parameter types, as sent to OP-TEE: what may come back. */
  readonly cmd: number;
  readonly types: number[];
  /** CLOSE_SESSION: the session it closes (from the checked copy). */
  readonly session: number;
  /** REGISTER_SHM and UNREGISTER_SHM: the cookie, and the pages a registration holds. */
  readonly cookie: bigint;
  readonly pages: number;
  readonly shadow: bigint;
  /** Heap pages holding translated page lists for this call, freed when it completes. */
  readonly listPages: bigint[];
  /** The RPC OP-TEE asked for (OPTEE_RPC_FUNC_*, -1 for none), awaiting the guest's RETURN_FROM_RPC, and ALLOC's size. */
  rpcFunc: number;
  rpcSize: number;
}

interface VmState {
  readonly name: string;
  readonly client: number;
  /** The VM's calls to OP-TEE, a7 = client: one standing channel, its registers reused call after call. */
  readonly channel: SecureChannel;
  inFlight: number;
  /** Calls suspended in RPC, by OP-TEE thread ID. */
  readonly pending: Map<number, PendingCall>;
  readonly registrations: Map<bigint, Registration>;
  pages: number;
  /** Buffers the guest allocated for OP-TEE through RPC ALLOC: cookie → size. */
  readonly rpcBuffers: Map<bigint, number>;
  /** Sessions OP-TEE opened for the VM, by ID, and OPEN_SESSION calls in OP-TEE that may add one. */
  readonly sessions: Set<number>;
  opening: number;
}

const FAST_PASS_THROUGH = new Set<number>([OPTEE_SMC.CALLS_COUNT, OPTEE_SMC.CALLS_UID, OPTEE_SMC.CALLS_REVISION, OPTEE_SMC.CALL_GET_OS_UUID, OPTEE_SMC.CALL_GET_OS_REVISION, OPTEE_SMC.GET_THREAD_COUNT, OPTEE_SMC.ENABLE_SHM_CACHE]);

/** Only these attribute bits may be set besides the type: META, NONCONTIG and the cache attributes (18:16). */
const ATTR_ALLOWED = 0xff | ATTR_META | ATTR_NONCONTIG | (7 << 16);

/** A SecureChannel over secureCall, for hosts without standing channels (fakes in tests). */
function channelOver(host: MediatorHost, origin: string, vm: string): SecureChannel {
  const regs = new Uint32Array(36);
  return {
    regs,
    call() {
      const r = host.secureCall(origin, vm, [regs[0]!, regs[2]!, regs[4]!, regs[6]!, regs[8]!, regs[10]!, regs[12]!, regs[14]!]);
      if (r instanceof Promise) return r.then((v) => v.forEach((x, n) => (regs[2 * n] = x)));
      r.forEach((x, n) => (regs[2 * n] = x));
      return undefined;
    },
  };
}

export class OpteeMediator implements Mediator {
  readonly name = "optee";
  private readonly vms = new Map<string, VmState>();
  present = false;
  /**
   * The mediator's copy of a guest's message argument, where it is checked and translated before it goes
   * into a shadow page. One for all VMs: a call is copied, checked and shadowed without interruption.
   */
  private readonly copy = new MsgBuf();
  /** OP-TEE's answer, copied out of the shadow page to be written back field by field. */
  private readonly answer = new MsgBuf();

  constructor(private readonly host: MediatorHost, private readonly limits: OpteeMediatorLimits = DEFAULT_MEDIATOR_LIMITS) {}

  claims(vm: VmConfig): ServiceClaim[] {
    // Trusted Application and Trusted OS owners (48-63), fast and yielding, SMC32 and SMC64.
    const { yield32, yield64, fast32, fast64 } = CALL_TYPE;
    const types = vm.aarch32 ? [yield32, fast32] : [yield32, yield64, fast32, fast64];
    const out: ServiceClaim[] = [];
    for (let owner = OEN.TRUSTED_APP_FIRST; owner <= OEN.TRUSTED_OS_LAST; owner++) out.push({ service: "optee", owner, types, first: 0, last: 0xffff, mediator: "optee" });
    // Yielding calls of OEN 2-47 belong to Trusted OSes too (TF-A rt-svc-writers-guide).
    for (let owner = OEN.SIP; owner < OEN.TRUSTED_APP_FIRST; owner++) out.push({ service: "optee", owner, types: vm.aarch32 ? [yield32] : [yield32, yield64], first: 0, last: 0xffff, mediator: "optee" });
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
    // The client ID OP-TEE will believe for every call of the VM: in OP-TEE's range, and no other VM's
    // (OP-TEE truncates IDs to 16 bits, so 0x10001 would be VM 1's, and 0 is the hypervisor's).
    if (!Number.isInteger(vm.id) || vm.id < 1 || vm.id > MAX_CLIENT_ID) return { ok: false, message: `VM ID ${vm.id} is not an OP-TEE client ID (1-${MAX_CLIENT_ID})` };
    for (const other of this.vms.values()) if (other.client === vm.id) return { ok: false, message: `VM ID ${vm.id} is already the OP-TEE client ID of VM ${other.name}` };
    const done = (r: number[]): EnableResult => {
      if (r[0] !== OPTEE_RET.OK) return { ok: false, message: `OP-TEE has no room for another guest (VM_CREATED answered ${r[0] === OPTEE_RET.ENOTAVAIL ? "ENOTAVAIL" : r[0]})` };
      const origin = `optee mediator for ${vm.name}`;
      const channel = this.host.secureChannel ? this.host.secureChannel(origin, vm.name) : channelOver(this.host, origin, vm.name);
      this.vms.set(vm.name, { name: vm.name, client: vm.id, channel, inFlight: 0, pending: new Map(), registrations: new Map(), pages: 0, rpcBuffers: new Map(), sessions: new Set(), opening: 0 });
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
    return { inFlight: st?.inFlight ?? 0, pendingRpc: st?.pending.size ?? 0, sessions: st?.sessions.size ?? 0, registrations: st?.registrations.size ?? 0, pages: st?.pages ?? 0, rpcBuffers: st?.rpcBuffers.size ?? 0 };
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    const st = this.vms.get(origin.vmName);
    // A VM without the TEE enabled gets -1, as for any call it may not make.
    if (!st) return res.ret(-1);
    const fid = call.fid;
    if ((fid & 0x4000_0000) !== 0) return res.ret(OPTEE_RET.UNKNOWN_FUNCTION); // OP-TEE has no SMC64 calls
    if (FAST_PASS_THROUGH.has(fid)) {
      this.os(st, fid, call.w(1), call.w(2), call.w(3), call.w(4), call.w(5), call.w(6));
      return this.toGuest(st, res);
    }
    const r = st.channel.regs;
    switch (fid) {
      case OPTEE_SMC.EXCHANGE_CAPABILITIES: {
        this.os(st, fid, call.w(1), 0, 0, 0, 0, 0);
        if (r[0] !== OPTEE_RET.OK) return this.toGuest(st, res);
        // Dynamic shared memory is required; the guest sees only what the mediator supports (GUEST_SEC_CAPS).
        if (!(r[2]! & SEC_CAP.DYNAMIC_SHM)) return res.ret(OPTEE_RET.ENOTAVAIL);
        r[2] = r[2]! & GUEST_SEC_CAPS;
        r[4] = 0;
        r[6] = 0;
        return this.toGuest(st, res);
      }
      case OPTEE_SMC.GET_SHM_CONFIG:
        return res.ret(OPTEE_RET.ENOTAVAIL);
      case OPTEE_SMC.DISABLE_SHM_CACHE: {
        this.os(st, fid, 0, 0, 0, 0, 0, 0);
        if (r[0] === OPTEE_RET.OK) st.rpcBuffers.delete((BigInt(r[2]!) << 32n) | BigInt(r[4]!));
        return this.toGuest(st, res);
      }
      case OPTEE_SMC.CALL_WITH_ARG:
        return this.callWithArg(st, call.w(1), call.w(2), call.w(3), res);
      case OPTEE_SMC.RETURN_FROM_RPC:
        return this.returnFromRpc(st, call, res);
    }
    // VM lifecycle, secondary boot, L2 cache mutex, notifications and the RPC_ARG calls are the
    // hypervisor's or not offered.
    res.ret(OPTEE_RET.UNKNOWN_FUNCTION);
  }

  /** An SMC32 to OP-TEE for a VM, a1-a6 as given and the VM's client ID in a7; the answer is in the channel's registers. */
  private os(st: VmState, fid: number, a1: number, a2: number, a3: number, a4: number, a5: number, a6: number): void {
    const r = st.channel.regs;
    r[0] = fid;
    r[2] = a1;
    r[4] = a2;
    r[6] = a3;
    r[8] = a4;
    r[10] = a5;
    r[12] = a6;
    r[14] = st.client;
    if (st.channel.call() !== undefined) throw new Error("the OP-TEE mediator needs a synchronous secure world");
  }

  /** OP-TEE's a0-a3 to the guest. */
  private toGuest(st: VmState, res: SmcResult): void {
    const r = st.channel.regs;
    res.set(0, r[0]!);
    res.set(1, r[2]!);
    res.set(2, r[4]!);
    res.set(3, r[6]!);
  }

  /**
   * Refuses a call with an SMC-level code and reports why. The report is rate-limited per VM and code, not
   * per detail: a guest varying the details (a count, a command) must not get a fresh allowance each time.
   */
  private refuse(st: VmState, res: SmcResult, code: number, why: string): void {
    this.host.log(st.name, `optee:a0=${code}`, `smcvisor: optee mediator: ${st.name}: ${why}`);
    res.ret(code);
  }

  private callWithArg(st: VmState, argHi: number, argLo: number, cacheAttr: number, res: SmcResult): void {
    if (st.inFlight >= this.limits.callsInFlight) return res.ret(OPTEE_RET.ETHREAD_LIMIT);
    const mem = this.host.memory(st.name);
    const guestArg = (BigInt(argHi) << 32n) | BigInt(argLo);
    const msg = this.copy;
    // Copy first: the header, then exactly the parameters it announces, each byte read once. Everything
    // below reads the copy, never the guest's buffer, which another vCPU may be rewriting.
    if ((argLo & 7) !== 0 || !mem || !copyIn(mem, guestArg, MSG_HEADER_SIZE, 0, msg.bytes)) return this.refuse(st, res, OPTEE_RET.EBADADDR, "message argument outside the VM's RAM");
    const n = msg.u32(MSG_NUM_PARAMS_OFFSET);
    if (n > MAX_PARAMS) return this.refuse(st, res, OPTEE_RET.EBADADDR, `message argument with ${n} parameters`);
    // The count checked above, from the copy: the guest's header is not read again.
    if (n > 0 && !copyIn(mem, guestArg, msgSize(n), MSG_HEADER_SIZE, msg.bytes)) return this.refuse(st, res, OPTEE_RET.EBADADDR, "message argument outside the VM's RAM");
    msg.numParams = n;
    const cmd = msg.cmd;
    // Commands beyond the message protocol (asynchronous notification, protected memory) are not offered:
    // an SMC-level EBADCMD, as OP-TEE answers a command it does not know (entry_std.c), the message untouched.
    if (cmd > MSG_CMD.UNREGISTER_SHM) return this.refuse(st, res, OPTEE_RET.EBADCMD, `message command ${cmd}`);
    // Then check and translate the copy.
    const listPages: bigint[] = [];
    const checked = this.translate(st, msg, listPages);
    if (typeof checked === "number") {
      for (const p of listPages) this.host.heap.free(p);
      // A message the mediator refuses still completes: OP-TEE's answer to a bad one, in the guest's arg.
      return this.completeRefused(mem, guestArg, checked, res);
    }
    const shadow = this.host.heap.alloc(st.name);
    if (shadow === null) {
      for (const p of listPages) this.host.heap.free(p);
      return res.ret(OPTEE_RET.ENOMEM);
    }
    // The checked copy goes into a page of the hypervisor's own, which no VM can map: that is what OP-TEE
    // reads, and where it answers.
    const into = this.host.heap.view?.(shadow, msg.size);
    if (into) into.set(msg.used);
    else this.host.heap.write(shadow, msg.used);
    st.inFlight++;
    const types: number[] = [];
    for (let i = 0; i < n; i++) types.push(msg.type(i));
    const cookie = (cmd === MSG_CMD.REGISTER_SHM || cmd === MSG_CMD.UNREGISTER_SHM) && n > 0 ? msg.big(0, PARAM_C) : 0n;
    if (cmd === MSG_CMD.OPEN_SESSION) st.opening++;
    const call: PendingCall = { guestArg, cmd, types, session: msg.u32(MSG_SESSION_OFFSET), cookie, pages: checked.pages, shadow, listPages, rpcFunc: -1, rpcSize: 0 };
    this.os(st, OPTEE_SMC.CALL_WITH_ARG, Number(shadow >> 32n), Number(shadow & 0xffff_ffffn), cacheAttr, 0, 0, 0);
    this.afterOs(st, call, res);
  }

  /**
   * Checks every parameter of the copy and rewrites its addresses for OP-TEE. Returns the pages a
   * registration covers (0 for other messages) when the message may go on, or the TEE result it gets
   * instead.
   */
  private translate(st: VmState, msg: MsgBuf, listPages: bigint[]): { pages: number } | number {
    const registering = msg.cmd === MSG_CMD.REGISTER_SHM;
    if (registering && st.registrations.size >= this.limits.registrations) return TEEC.ERROR_OUT_OF_MEMORY;
    // Sessions open and being opened: OUT_OF_MEMORY beyond the VM's share, as optee_os answers a session
    // its heap cannot hold (tee_ta_manager.c tee_ta_init_session).
    if (msg.cmd === MSG_CMD.OPEN_SESSION && st.sessions.size + st.opening >= this.limits.sessions) return TEEC.ERROR_OUT_OF_MEMORY;
    // The pages all of one message's temporary memrefs may span, together: without it, 127 parameters of a
    // full budget each would pin 127 times the hypervisor pages and secure-world memory of one.
    let pagesLeft = registering ? this.limits.pages - st.pages : this.limits.pages;
    let registered = 0;
    for (let i = 0; i < msg.numParams; i++) {
      const attr = msg.lo(i, PARAM_ATTR);
      const type = attr & 0xff;
      const meta = (attr & ATTR_META) !== 0;
      const noncontig = (attr & ATTR_NONCONTIG) !== 0;
      // META only on OPEN_SESSION's first two value parameters; NONCONTIG only on TMEM; no other bits.
      if (meta && !(msg.cmd === MSG_CMD.OPEN_SESSION && i < 2 && type === ATTR.VALUE_INPUT)) return TEEC.ERROR_BAD_PARAMETERS;
      if ((attr & ~ATTR_ALLOWED) !== 0 || msg.hi(i, PARAM_ATTR) !== 0) return TEEC.ERROR_BAD_PARAMETERS;
      switch (type) {
        case ATTR.NONE:
        case ATTR.VALUE_INPUT:
        case ATTR.VALUE_OUTPUT:
        case ATTR.VALUE_INOUT:
          if (noncontig) return TEEC.ERROR_BAD_PARAMETERS;
          break;
        case ATTR.RMEM_INPUT:
        case ATTR.RMEM_OUTPUT:
        case ATTR.RMEM_INOUT:
          // A registered buffer, named by its cookie: only the VM's own.
          if (noncontig || !st.registrations.has(msg.big(i, PARAM_C))) return TEEC.ERROR_BAD_PARAMETERS;
          break;
        case ATTR.TMEM_INPUT:
        case ATTR.TMEM_OUTPUT:
        case ATTR.TMEM_INOUT: {
          if (!noncontig && msg.lo(i, PARAM_A) === 0 && msg.hi(i, PARAM_A) === 0 && msg.lo(i, PARAM_B) === 0 && msg.hi(i, PARAM_B) === 0) break; // null memref
          const r = this.translateTmem(st, msg, i, noncontig, listPages, pagesLeft);
          if (typeof r !== "number") return r.error;
          pagesLeft -= r;
          // What a registration holds: its one parameter's pages (OP-TEE refuses any other REGISTER_SHM).
          if (registering && i === 0 && noncontig) registered = r;
          break;
        }
        default:
          return TEEC.ERROR_BAD_PARAMETERS;
      }
    }
    if (msg.cmd === MSG_CMD.UNREGISTER_SHM && (msg.numParams === 0 || !st.registrations.has(msg.big(0, PARAM_C)))) return TEEC.ERROR_BAD_PARAMETERS;
    return { pages: registered };
  }

  /** Translates TMEM parameter `i` of the copy in place; the pages it spans, or the TEE result that refuses it. */
  private translateTmem(st: VmState, msg: MsgBuf, i: number, noncontig: boolean, listPages: bigint[], budget: number): number | { error: number } {
    const a = msg.big(i, PARAM_A), b = msg.big(i, PARAM_B);
    if (noncontig) {
      const r = translatePageList(this.host, st.name, a, b, budget);
      if (!r.ok) {
        this.host.log(st.name, `optee:pagelist`, `smcvisor: optee mediator: ${st.name}: page list refused: ${r.why}`);
        return { error: r.result };
      }
      listPages.push(...r.listPages);
      msg.setBig(i, PARAM_A, r.bufPtr);
      return r.pages;
    }
    // A contiguous buffer: all of it must be the VM's own RAM.
    const pa = this.host.ipaToPa(st.name, a, b === 0n ? 1n : b);
    if (pa === null) return { error: TEEC.ERROR_BAD_PARAMETERS };
    const pages = Number(((a & 0xfffn) + b + BigInt(PAGE_SIZE - 1)) / BigInt(PAGE_SIZE));
    if (pages > budget) return { error: TEEC.ERROR_OUT_OF_MEMORY };
    msg.setBig(i, PARAM_A, pa);
    return pages;
  }

  /** A message the mediator refused completes with `result` from COMMS: ret and ret_origin only. */
  private completeRefused(mem: GuestMemory, guestArg: bigint, result: number, res: SmcResult): void {
    const out = new GuestFields(mem, guestArg, MSG_HEADER_SIZE);
    out.u32(MSG_RET_OFFSET, result);
    out.u32(MSG_RET_ORIGIN_OFFSET, ORIGIN.COMMS);
    res.ret(OPTEE_RET.OK);
  }

  /** OP-TEE answered a CALL_WITH_ARG or RETURN_FROM_RPC: complete, pass an RPC on, or give up. */
  private afterOs(st: VmState, call: PendingCall, res: SmcResult): void {
    const r = st.channel.regs;
    const a0 = r[0]!;
    if (isRpc(a0)) {
      const func = a0 & 0xffff;
      call.rpcFunc = func;
      call.rpcSize = r[2]!;
      st.pending.set(r[6]!, call);
      if (func === OPTEE_RPC_FUNC.FREE) st.rpcBuffers.delete((BigInt(r[2]!) << 32n) | BigInt(r[4]!));
      return this.toGuest(st, res);
    }
    st.inFlight--;
    if (call.cmd === MSG_CMD.OPEN_SESSION) st.opening--;
    if (a0 === OPTEE_RET.OK && this.readAnswer(call)) {
      const ret = this.answer.u32(MSG_RET_OFFSET);
      this.writeResults(st, call);
      if (call.cmd === MSG_CMD.OPEN_SESSION && ret === TEEC.SUCCESS) st.sessions.add(this.answer.u32(MSG_SESSION_OFFSET));
      if (call.cmd === MSG_CMD.CLOSE_SESSION && ret === TEEC.SUCCESS) st.sessions.delete(call.session);
      if (call.cmd === MSG_CMD.REGISTER_SHM && ret === TEEC.SUCCESS) {
        st.registrations.set(call.cookie, { pages: call.pages });
        st.pages += call.pages;
      }
      if (call.cmd === MSG_CMD.UNREGISTER_SHM && ret === TEEC.SUCCESS) {
        st.pages -= st.registrations.get(call.cookie)?.pages ?? 0;
        st.registrations.delete(call.cookie);
      }
    }
    this.release(call);
    this.toGuest(st, res);
  }

  /**
   * OP-TEE's answer, out of the shadow page into the codec's buffer. Not a copy for isolation (the page is
   * the hypervisor's own and OP-TEE is done with it): a hundred bytes or so, the simplest way to read them.
   */
  private readAnswer(call: PendingCall): boolean {
    const size = msgSize(call.types.length);
    const heap = this.host.heap;
    const src = (heap.view ? heap.view(call.shadow, size) : null) ?? heap.read(call.shadow, size);
    if (src === null) return false;
    this.answer.bytes.set(src);
    this.answer.numParams = call.types.length;
    return true;
  }

  /**
   * Copies OP-TEE's results into the guest's argument, field by field: only what the message type lets
   * OP-TEE return (ret, origin, session, output values and sizes), by the types of the checked copy. Input
   * fields are never written back.
   */
  private writeResults(st: VmState, call: PendingCall): void {
    const mem = this.host.memory(st.name);
    if (!mem) return;
    const back = this.answer;
    const out = new GuestFields(mem, call.guestArg, msgSize(call.types.length));
    out.u32(MSG_RET_OFFSET, back.u32(MSG_RET_OFFSET));
    out.u32(MSG_RET_ORIGIN_OFFSET, back.u32(MSG_RET_ORIGIN_OFFSET));
    if (call.cmd === MSG_CMD.OPEN_SESSION) out.u32(MSG_SESSION_OFFSET, back.u32(MSG_SESSION_OFFSET));
    for (let i = 0; i < call.types.length; i++) {
      const type = call.types[i]!;
      if (type === ATTR.VALUE_OUTPUT || type === ATTR.VALUE_INOUT) {
        out.u64(paramOffset(i, PARAM_A), back.lo(i, PARAM_A), back.hi(i, PARAM_A));
        out.u64(paramOffset(i, PARAM_B), back.lo(i, PARAM_B), back.hi(i, PARAM_B));
        out.u64(paramOffset(i, PARAM_C), back.lo(i, PARAM_C), back.hi(i, PARAM_C));
      } else if (type === ATTR.RMEM_OUTPUT || type === ATTR.RMEM_INOUT || type === ATTR.TMEM_OUTPUT || type === ATTR.TMEM_INOUT) {
        out.u64(paramOffset(i, PARAM_B), back.lo(i, PARAM_B), back.hi(i, PARAM_B));
      }
    }
  }

  private returnFromRpc(st: VmState, call: SmcCall, res: SmcResult): void {
    const thread = call.w(3);
    const pending = st.pending.get(thread);
    // Only a call this VM has suspended: a thread ID of another VM's is not this VM's to resume.
    if (!pending || pending.rpcFunc < 0) return res.ret(OPTEE_RET.ERESUME);
    const func = pending.rpcFunc, size = pending.rpcSize;
    pending.rpcFunc = -1;
    st.pending.delete(thread);
    let a1 = call.w(1), a2 = call.w(2);
    if (func === OPTEE_RPC_FUNC.ALLOC) {
      // The guest's buffer for OP-TEE: its IPA becomes a platform address, or 0 (allocation failed).
      const ipa = (BigInt(a1) << 32n) | BigInt(a2);
      const cookie = (BigInt(call.w(4)) << 32n) | BigInt(call.w(5));
      const pa = ipa === 0n ? null : this.host.ipaToPa(st.name, ipa, BigInt(Math.max(size, 1)));
      // At most one RPC buffer per call the VM may have in flight (OP-TEE keeps one per call, or caches
      // it for the next): more would be a map that grows with what the guest answers. Xen's mediator
      // counts on the same bound without enforcing it ("Number of this buffers also depends on
      // max_optee_threads", xen/arch/arm/tee/optee.c, optee_relinquish_resources); here it is enforced,
      // and OP-TEE then sees a failed allocation.
      const tooMany = !st.rpcBuffers.has(cookie) && st.rpcBuffers.size >= this.limits.callsInFlight;
      if (tooMany) this.host.log(st.name, "optee:rpc-buffers", `smcvisor: optee mediator: ${st.name}: more RPC buffers than calls in flight (${this.limits.callsInFlight})`);
      if (pa === null || tooMany || (pa & 0xfffn) + BigInt(size) > BigInt(PAGE_SIZE) * 16n) {
        a1 = 0;
        a2 = 0;
      } else {
        a1 = Number(pa >> 32n);
        a2 = Number(pa & 0xffff_ffffn);
        st.rpcBuffers.set(cookie, size);
      }
    }
    this.os(st, OPTEE_SMC.RETURN_FROM_RPC, a1, a2, thread, call.w(4), call.w(5), call.w(6));
    this.afterOs(st, pending, res);
  }

  private release(call: PendingCall): void {
    this.host.heap.free(call.shadow);
    for (const p of call.listPages) this.host.heap.free(p);
  }
}

/**
 * Copies bytes [skip, length) of guest memory at `ipa` into `dest` from `skip` on; false unless all of
 * [ipa, ipa + length) is the VM's RAM. Through a view where the backend offers one, so that the only copy
 * is the one into `dest`, which is what is checked.
 */
function copyIn(mem: GuestMemory, ipa: bigint, length: number, skip: number, dest: Uint8Array): boolean {
  const src = (mem.view ? mem.view(ipa, length) : null) ?? mem.read(ipa, length);
  if (src === null || src.length !== length) return false;
  dest.set(skip === 0 ? src : src.subarray(skip), skip);
  return true;
}

/**
 * Result fields written into a guest's message argument, one by one (little-endian): in place through a
 * view when the backend offers one, else each through GuestMemory.write.
 */
class GuestFields {
  private readonly view: Uint8Array | null;

  constructor(private readonly mem: GuestMemory, private readonly base: bigint, length: number) {
    const v = mem.view ? mem.view(base, length) : null;
    this.view = v !== null && v.length === length ? v : null;
  }

  u32(offset: number, value: number): void {
    const v = this.view;
    if (v === null) {
      this.mem.write(this.base + BigInt(offset), le(value, 0, 4));
      return;
    }
    v[offset] = value;
    v[offset + 1] = value >>> 8;
    v[offset + 2] = value >>> 16;
    v[offset + 3] = value >>> 24;
  }

  u64(offset: number, lo: number, hi: number): void {
    if (this.view === null) {
      this.mem.write(this.base + BigInt(offset), le(lo, hi, 8));
      return;
    }
    this.u32(offset, lo);
    this.u32(offset + 4, hi);
  }
}

/** A little-endian u32 (length 4) or u64 (length 8) from its halves. */
function le(lo: number, hi: number, length: 4 | 8): Uint8Array {
  const b = new Uint8Array(length);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, lo >>> 0, true);
  if (length === 8) dv.setUint32(4, hi >>> 0, true);
  return b;
}
