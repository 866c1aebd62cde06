/**
 * The router: the only code that reads and writes vCPU registers. Dispatch has two levels, as in TF-A's
 * runtime_svc: FID bits 31:24 (call type and owner) select a bucket of the VM's compiled policy, the
 * function number selects the chain, and the chain's step invokes the service, which switches on its
 * own IDs. Every call, answered or not, produces exactly one trace event.
 *
 * Guest-visible results are values: a denied, unknown or malformed call gets the SMCCC error, and a
 * handler that throws gives the guest -1 and is reported, never propagated.
 */
import { legacyClaims, TableCache, type ServiceClaim } from "../policy/compile.js";
import type { PlatformConfig, VmConfig } from "../policy/load.js";
import { formatAction } from "../policy/rules.js";
import type { PolicyTable, Step } from "../policy/table.js";
import { checkFid, dispatchFid, FID_CHECK_LABELS, FID_OK, registerRules } from "../smccc/convention.js";
import { aarch32ConditionFailed, EC_HVC32, EC_HVC64, EC_SMC32, EC_SMC64, esrFor } from "../smccc/esr.js";
import { ACTION_CODES, FLAG_AARCH32, FLAG_HYPERVISOR, FLAG_SMC, HYPERVISOR_VM, TraceRing } from "../trace/ring.js";
import { CALL_AARCH32, CALL_SMC, CALL_SMC64, SmcCall, SmcResult } from "./call.js";
import { AnswerCache, answerFromCache } from "./answer-cache.js";
import { OUTCOME_BAD_TRAP, OUTCOME_ERROR, OUTCOME_HALT, OUTCOME_RETURN, OUTCOME_SKIP, OUTCOME_UNDEF } from "./outcome.js";
import { ABSENT_MONITOR, SILENT_ERRORS, type CallOrigin, type BoardFirmware, type CallTarget, type Clock, type ErrorSink, type HandlerReturn, type MediatorTarget, type VmPorts } from "./ports.js";
import { BoundStep, RoutedVm, STEP_DENY, STEP_MONITOR, STEP_SERVICE, STEP_TARGET } from "./routed-vm.js";
import type { HypervisorCallResult, ServiceContext, ServiceDefinition, ServiceInstance, ServicePorts } from "./service.js";

const ACTION_EMULATE = ACTION_CODES.indexOf("emulate");
const ACTION_FORWARD = ACTION_CODES.indexOf("forward");
const ACTION_CONVENTION = ACTION_CODES.indexOf("convention");
const LABEL_IMMEDIATE = 4;
const LABEL_CONDITION = 5;
const LABEL_BAD_TRAP = 6;

export interface RouterOptions {
  readonly platform: PlatformConfig;
  readonly services: readonly ServiceDefinition[];
  readonly trace?: TraceRing;
  /** Timestamps for trace events; null records none (deterministic runs, benchmarks of the bare path). */
  readonly clock?: Clock | null;
  readonly monitor?: CallTarget;
  readonly errors?: ErrorSink;
  readonly servicePorts?: ServicePorts;
  /** Repeat fixed answers without calling the service (default true); see AnswerCache.remember. */
  readonly answerCache?: boolean;
}

export interface AddVmError {
  readonly path: string;
  readonly message: string;
}

// Local copies for the fast path: V8 folds a module's own constants into the code, while an imported
// binding is loaded (and checked for initialization) on every call.
const ESR_HVC64_0 = esrFor("hvc", false);
const ESR_SMC64_0 = esrFor("smc", false);
const ESR_HVC32_0 = esrFor("hvc", true);
const SMC = FLAG_SMC;
const AARCH32 = FLAG_AARCH32;
const RETURN = OUTCOME_RETURN;

const HYPERVISOR_ORIGIN: CallOrigin = { vmId: 0, vmName: "hypervisor", vcpu: 0 };
const ZERO_CLOCK: Clock = { now: () => 0 };

/** A VM's new policy, compiled and bound, not yet in use: Router.preparePolicy, then Router.swapPolicy. */
export interface PreparedPolicy {
  readonly vm: RoutedVm;
  readonly config: VmConfig;
  readonly table: PolicyTable;
  readonly steps: BoundStep[][];
  readonly single: (BoundStep | null)[];
}

/** How many policy swaps the router remembers (a control API driven in a loop cannot grow it). */
export const POLICY_SWAPS_KEPT = 1024;

export class Router {
  readonly trace: TraceRing;
  readonly platform: PlatformConfig;
  /** The secure monitor; forwarded calls and the hypervisor's own calls go here. */
  monitor: CallTarget;
  private readonly services: readonly ServiceDefinition[];
  private readonly clock: Clock;
  /** 1 when events carry times (a clock was given), else 0: a number, which the JIT tests in one compare. */
  private readonly timed: number;
  private readonly errors: ErrorSink;
  private readonly servicePorts: ServicePorts;
  private readonly mediators = new Map<string, MediatorTarget>();
  private readonly delegates = new Map<string, CallTarget>();
  private readonly boards = new Map<string, (vm: VmConfig) => BoardFirmware>();
  private readonly vms = new Map<string, RoutedVm>();
  private readonly tables = new TableCache();
  /** Fixed answers of every VM, for the fast path (answer-cache.ts), and its words, read without a hop. */
  private readonly answers: AnswerCache;
  private answerWords: Int32Array = new Int32Array(0);
  private readonly answerCache: boolean;
  /** The call view and result of the call in progress; replaced when a call goes asynchronous. */
  private call = new SmcCall();
  private res = new SmcResult();

  constructor(opts: RouterOptions) {
    this.platform = opts.platform;
    this.services = opts.services;
    this.trace = opts.trace ?? new TraceRing(undefined, opts.clock != null);
    this.clock = opts.clock ?? ZERO_CLOCK;
    this.timed = opts.clock != null ? 1 : 0;
    this.monitor = opts.monitor ?? ABSENT_MONITOR;
    this.errors = opts.errors ?? SILENT_ERRORS;
    this.servicePorts = opts.servicePorts ?? {};
    this.answerCache = opts.answerCache ?? true;
    this.answers = new AnswerCache(this.trace);
    this.trace.addCountSource((into) => this.answers.countInto(into));
  }

  registerMediator(name: string, target: MediatorTarget): void {
    this.mediators.set(name, target);
  }

  registerDelegate(name: string, target: CallTarget): void {
    this.delegates.set(name, target);
  }

  /** A board profile: each VM that names it gets its own instance (its own board state). */
  registerBoard(name: string, create: (vm: VmConfig) => BoardFirmware): void {
    this.boards.set(name, create);
  }

  /** The claims of every service the VM has: the second level of dispatch. */
  claimsFor(vm: VmConfig): ServiceClaim[] {
    const services = this.services.filter((s) => s.enabled(vm)).flatMap((s) => s.claims(vm, this.platform));
    const mediator = vm.tee ? this.mediators.get(vm.tee.mediator) : undefined;
    return mediator ? [...services, ...mediator.claims(vm)] : services;
  }

  getVm(name: string): RoutedVm | undefined {
    return this.vms.get(name);
  }

  /** Compiles the VM's policy, creates its service instances and binds every chain step. */
  addVm(config: VmConfig, vmPorts: VmPorts = {}): { ok: true; vm: RoutedVm } | { ok: false; errors: AddVmError[] } {
    if (this.vms.has(config.name)) return { ok: false, errors: [{ path: `vms.${config.name}`, message: "a VM with this name already exists" }] };
    const errors: AddVmError[] = [];
    for (const r of config.rules) {
      const { kind, target } = r.action;
      if (kind === "mediate" && !this.mediators.has(target!)) errors.push({ path: `${r.path}.action`, message: `no mediator named "${target}" is registered (known: ${[...this.mediators.keys()].join(", ") || "none"})` });
      if (kind === "delegate" && !this.delegates.has(target!)) errors.push({ path: `${r.path}.action`, message: `no delegate handler named "${target}" is configured (known: ${[...this.delegates.keys()].join(", ") || "none"})` });
    }
    if (config.tee && !this.mediators.has(config.tee.mediator)) {
      errors.push({ path: `vms.${config.name}.tee`, message: `no mediator named "${config.tee.mediator}" is registered (known: ${[...this.mediators.keys()].join(", ") || "none"})` });
    }
    if (config.board !== null && !this.boards.has(config.board)) {
      errors.push({ path: `vms.${config.name}.board`, message: `no board profile named "${config.board}" (known: ${[...this.boards.keys()].join(", ") || "none"})` });
    }
    if (errors.length > 0) return { ok: false, errors };

    const claims = this.claimsFor(config);
    const table = this.tables.compile(config.rules, claims);
    const index = this.trace.registerVm(config.name);
    const r32 = registerRules(config.smccc, false), r64 = registerRules(config.smccc, true);
    const vm = new RoutedVm(config, index, table, { lastArg32: r32.lastArg, lastArg64: r64.lastArg, lastResult32: r32.lastResult, lastResult64: r64.lastResult });
    vm.conventionLabels = [...FID_CHECK_LABELS, "smccc:immediate", "smccc:condition-failed", "smccc:not-a-call-trap"].map((l) => this.trace.intern(`${config.name}|${l}`));
    const ctx = this.serviceContext(vm, vmPorts);
    for (const def of this.services) if (def.enabled(config)) vm.services.set(def.name, def.create(ctx));
    vm.steps = table.chains.map((c) => c.steps.map((s) => this.bindStep(vm, s)));
    vm.single = vm.steps.map((steps) => (steps.length === 1 && steps[0]!.regs.length === 0 ? steps[0]! : null));
    for (const step of vm.single) if (step !== null) step.sole = true;
    if (config.board !== null) {
      vm.board = this.boards.get(config.board)!(config);
      vm.boardStep = new BoundStep(STEP_TARGET, null, vm.board, ACTION_CODES.indexOf("delegate"), this.trace.intern(`${config.name}|board:${config.board}`), `board:${config.board}`, [], []);
    }
    const legacy = legacyClaims(claims);
    if (legacy.size > 0) {
      vm.legacy = new Map();
      for (const [fid, service] of legacy) vm.legacy.set(fid, this.bindStep(vm, { rule: null, action: { kind: "emulate" }, service, label: `default:${service}`, constraints: [] }));
    }
    if (this.answerCache) {
      vm.answerBase = this.answers.allocate();
      this.answerWords = this.answers.words;
      vm.fastBase = this.fastBaseOf(vm);
    }
    this.vms.set(config.name, vm);
    return { ok: true, vm };
  }

  /**
   * The VM restarts (Hypervisor.resetDomain): each service instance and the board firmware go back to their
   * boot state. The compiled policy and the answer cache stay: they depend on the configuration alone.
   */
  resetVm(vm: RoutedVm): void {
    if (vm.destroyed) return;
    for (const s of vm.services.values()) s.reset?.();
    vm.board?.reset?.();
  }

  /**
   * A live policy change, first half: compiles `config`'s rules for the running VM `vm` and binds every
   * step to the VM's existing service instances, without touching what the VM uses now. Only the rules
   * may differ from the VM's config (its services, TEE, board and SMCCC version are its running state);
   * anything else is an error with the field's path. Nothing is swapped until swapPolicy.
   */
  preparePolicy(vm: RoutedVm, config: VmConfig): { ok: true; policy: PreparedPolicy } | { ok: false; errors: AddVmError[] } {
    if (vm.destroyed) return { ok: false, errors: [{ path: `vms.${vm.name}`, message: "the VM has been destroyed" }] };
    const errors: AddVmError[] = [];
    for (const r of config.rules) {
      const { kind, target } = r.action;
      if (kind === "mediate" && !this.mediators.has(target!)) errors.push({ path: `${r.path}.action`, message: `no mediator named "${target}" is registered (known: ${[...this.mediators.keys()].join(", ") || "none"})` });
      if (kind === "delegate" && !this.delegates.has(target!)) errors.push({ path: `${r.path}.action`, message: `no delegate handler named "${target}" is configured (known: ${[...this.delegates.keys()].join(", ") || "none"})` });
    }
    if (errors.length > 0) return { ok: false, errors };
    const table = this.tables.compile(config.rules, this.claimsFor(config));
    table.seal();
    const steps = table.chains.map((c) => c.steps.map((s) => this.bindStep(vm, s)));
    const single = steps.map((st) => (st.length === 1 && st[0]!.regs.length === 0 ? st[0]! : null));
    for (const step of single) if (step !== null) step.sole = true;
    return { ok: true, policy: { vm, config, table, steps, single } };
  }

  /**
   * A live policy change, second half: the VM's next call is decided by the prepared policy. Synchronous,
   * so it falls between two calls (a call in flight on another vCPU finishes with the step it started
   * with). The VM's cached fixed answers are dropped: they were the old policy's.
   */
  /**
   * The policy swaps so far (at most POLICY_SWAPS_KEPT, the latest), each with the router clock's time: the
   * trace file shows them among the calls they separate (trace/chrome.ts).
   */
  readonly policySwaps: { readonly vm: string; readonly at: number }[] = [];

  swapPolicy(p: PreparedPolicy): void {
    const vm = p.vm;
    if (vm.destroyed) return;
    if (this.policySwaps.length >= POLICY_SWAPS_KEPT) this.policySwaps.shift();
    this.policySwaps.push({ vm: vm.name, at: this.timed ? this.clock.now() : 0 });
    vm.config = p.config;
    vm.table = p.table;
    vm.steps = p.steps;
    vm.single = p.single;
    if (vm.answerBase >= 0) {
      this.answers.release(vm.answerBase);
      vm.answerBase = this.answers.allocate();
      this.answerWords = this.answers.words;
      vm.fastBase = this.fastBaseOf(vm);
    }
  }

  removeVm(vm: RoutedVm): void {
    if (vm.destroyed) return;
    for (const s of vm.services.values()) s.destroy?.();
    vm.services.clear();
    vm.destroyed = true;
    if (vm.answerBase >= 0) {
      this.answers.release(vm.answerBase);
      vm.answerBase = vm.fastBase = -1;
    }
    this.vms.delete(vm.name);
  }

  /**
   * Handles one trapped SMC or HVC. `regs` are the vCPU's x0..x17 as 32-bit words (x_n at [2n], [2n+1]);
   * `esr` is ESR_EL2 of the trap; `pstate` is SPSR_EL2 (its NZCV decides conditional AArch32 SMCs).
   * Returns an OUTCOME_*, or a promise of one when a handler completes asynchronously.
   */
  handleTrap(vm: RoutedVm, vcpu: number, regs: Uint32Array, esr: number, pstate: number): number | Promise<number> {
    // A fixed answer given before (AnswerCache.remember): the same registers and the same trace event,
    // without the convention checks, the policy lookup or the service, which gave it the first time. Only
    // for #0 HVCs and AArch64 SMCs (an AArch32 SMC may be conditional); fastBase is -1 when the fast path
    // may not answer (fastBaseOf). Anything else, and every miss, takes the full path. Kept small, so
    // that V8 inlines it into the backend's trap loop.
    const base = vm.fastBase;
    // The whole ESR at once: the trap class, IL = 1 and an ISS of 0 (immediate #0).
    const flags = esr === ESR_HVC64_0 ? 0 : esr === ESR_SMC64_0 ? SMC : esr === ESR_HVC32_0 ? AARCH32 : -1;
    if (base >= 0 && flags >= 0 && answerFromCache(this.answerWords, base, regs, flags, vm.index | (vcpu << 16), this.trace)) return RETURN;
    return this.route(vm, vcpu, regs, esr, pstate);
  }

  /** The full path of handleTrap: every check of the convention, the policy lookup and the handler. */
  private route(vm: RoutedVm, vcpu: number, regs: Uint32Array, esr: number, pstate: number): number | Promise<number> {
    if (vm.beforeFirstTrap !== null) vm.beforeFirstTrap();
    const ec = esr >>> 26;
    let flags: number;
    if (ec === EC_HVC64) flags = 0;
    else if (ec === EC_SMC64) flags = FLAG_SMC;
    else if (ec === EC_HVC32) flags = FLAG_AARCH32;
    else if (ec === EC_SMC32) flags = FLAG_SMC | FLAG_AARCH32;
    else return this.conventionEvent(vm, vcpu, 0, regs[0]!, LABEL_BAD_TRAP, OUTCOME_BAD_TRAP, 0, 0, 0);
    if (vm.pending[vcpu] !== 0 || vm.destroyed) {
      return this.conventionEvent(vm, vcpu, flags, regs[0]!, LABEL_BAD_TRAP, OUTCOME_BAD_TRAP, 0, 0, 0);
    }
    const start = this.timed ? this.clock.now() : 0;
    // IDs travel as int32 inside the router: Node's V8 keeps 32-bit signed integers unboxed, while an
    // unsigned ID ≥ 2^31 passed to a function or stored would allocate a heap number on every call.
    const rawFid = regs[0]! | 0;
    const aarch32 = (flags & FLAG_AARCH32) !== 0;

    if (ec === EC_SMC32) {
      if (aarch32ConditionFailed(esr, pstate)) return this.conventionEvent(vm, vcpu, flags, rawFid, LABEL_CONDITION, OUTCOME_SKIP, regs[0]! | 0, regs[1]! | 0, start);
    } else if ((esr & 0xffff) !== 0) {
      // SMCCC 1.4 §2.9: only #0 is a call. KVM answers ~0 and skips; Xen injects UNDEF.
      if (vm.immediateUndef) return this.conventionEvent(vm, vcpu, flags, rawFid, LABEL_IMMEDIATE, OUTCOME_UNDEF, regs[0]! | 0, regs[1]! | 0, start);
      regs[0] = 0xffff_ffff;
      regs[1] = aarch32 ? 0 : 0xffff_ffff;
      return this.conventionEvent(vm, vcpu, flags, rawFid, LABEL_IMMEDIATE, OUTCOME_RETURN, -1, aarch32 ? 0 : -1, start);
    }

    const res = this.res;
    res.reset();
    if (vm.board !== null && (flags & FLAG_SMC) !== 0) {
      const claimed = this.boardTrap(vm, vcpu, regs, flags, rawFid, start, res);
      if (claimed !== -1) return claimed;
    }
    let fid = rawFid;
    // A PSCI 0.1 ID the VM's device tree names is not an SMCCC ID: the convention checks do not apply.
    const legacy = vm.legacy === null ? undefined : vm.legacy.get(rawFid >>> 0);
    if (legacy === undefined) {
      // SMCCC §2.5 checks, as in checkFid (which explain uses); written out so the JIT keeps them inline.
      const fast = rawFid < 0;
      if ((fast && ((rawFid & 0x00fe_0000) !== 0 || ((rawFid & 0x0001_0000) !== 0 && vm.smccc < 0x1_0003))) || (aarch32 && (rawFid & 0x4000_0000) !== 0)) {
        return this.malformed(vm, vcpu, regs, flags, rawFid, start, res);
      }
      // Dispatch sees the ID without the SVE hint of a fast call (SMCCC 1.3 §2.5).
      fid = fast ? rawFid & ~0x0001_0000 : rawFid;
    }
    const smc64 = (fid & 0x4000_0000) !== 0;
    const call = this.call;
    call.load(regs, fid, rawFid, vcpu, smc64 ? vm.lastArg64 : vm.lastArg32, (smc64 ? CALL_SMC64 : 0) | (aarch32 ? CALL_AARCH32 : 0) | ((flags & FLAG_SMC) !== 0 ? CALL_SMC : 0));

    let step = legacy;
    if (step === undefined) {
      const chain = vm.table.chainIndex(fid);
      step = vm.single[chain] ?? selectStep(vm.steps[chain]!, call);
    }
    let pending: HandlerReturn = undefined;
    try {
      const kind = step.kind;
      if (kind === STEP_SERVICE) pending = step.service!.handle(call, res);
      else if (kind === STEP_DENY) res.ret(-1);
      else if (kind === STEP_MONITOR) pending = this.monitor.handle(call, res, vm.origins[vcpu]!);
      else pending = step.target!.handle(call, res, vm.origins[vcpu]!);
    } catch (error) {
      return this.failed(vm, vcpu, regs, step, flags, rawFid, start, error, res);
    }
    if (pending !== undefined) {
      // The call and result objects now belong to this call until it completes.
      this.call = new SmcCall();
      this.res = new SmcResult();
      return this.later(vm, vcpu, regs, step, flags, rawFid, start, pending, res);
    }
    // The common case, inline: x0-x3 of a call that returns (SMCCC's minimum), written back and traced.
    if (res.count === 4 && !res.halted) {
      const w = res.words;
      regs[0] = w[0]!;
      regs[2] = w[2]!;
      regs[4] = w[4]!;
      regs[6] = w[6]!;
      if (smc64 && !aarch32) {
        regs[1] = w[1]!;
        regs[3] = w[3]!;
        regs[5] = w[5]!;
        regs[7] = w[7]!;
      } else {
        regs[1] = 0;
        regs[3] = 0;
        regs[5] = 0;
        regs[7] = 0;
      }
      // A board sees every SMC of its VM (boardTrap): those are never kept.
      if (step.sole && vm.answerBase >= 0 && ((flags & FLAG_SMC) === 0 || vm.board === null)) this.answers.remember(vm.answerBase, rawFid, fid, flags, step, regs);
      if (this.timed) {
        this.trace.record(vm.index, vcpu, flags, rawFid, step.action, step.label, OUTCOME_RETURN, regs[0]! | 0, regs[1]! | 0, start, this.clock.now() - start);
        return OUTCOME_RETURN;
      }
      // put(), not record(): record() does not fit V8's inlining budget next to the service (outcome RETURN is 0).
      this.trace.put(vm.index | (vcpu << 16), flags | (step.action << 8), rawFid, step.label, regs[0]!, regs[1]!);
      return OUTCOME_RETURN;
    }
    return this.complete(vm, vcpu, regs, step, flags, rawFid, start, res);
  }

  /**
   * Where the fast path finds the VM's answers: its block, except while a vCPU waits for an asynchronous
   * handler (the full path then refuses that vCPU's traps) and in a router with a clock, whose events
   * carry times the full path measures, and before a VM with a start hook has started. Cached answers are
   * still what the full path gives there.
   */
  private fastBaseOf(vm: RoutedVm): number {
    return this.timed === 0 && vm.waiting === 0 && vm.beforeFirstTrap === null ? vm.answerBase : -1;
  }

  /** The VM has started (Domain.start): its first trap no longer needs the full path to start it. */
  markStarted(vm: RoutedVm): void {
    vm.beforeFirstTrap = null;
    vm.fastBase = this.fastBaseOf(vm);
  }

  /**
   * The hypervisor's own calls to the secure world (R9): physical PSCI for vCPU power, TEE VM lifecycle.
   * They take the same monitor path as forwarded guest calls and appear in the trace with their origin.
   */
  hypervisorCall(origin: string, fid: number, args: readonly bigint[] = [], onBehalfOf?: { vmName: string; vcpu: number }): HypervisorCallResult | Promise<HypervisorCallResult> {
    const regs = new Uint32Array(36);
    regs[0] = fid >>> 0;
    for (let n = 1; n < args.length && n <= 17; n++) {
      const v = BigInt.asUintN(64, args[n]!);
      regs[2 * n] = Number(v & 0xffff_ffffn);
      regs[2 * n + 1] = Number(v >> 32n);
    }
    const call = new SmcCall();
    call.load(regs, fid, fid, onBehalfOf?.vcpu ?? 0, 17, ((fid & 0x4000_0000) !== 0 ? CALL_SMC64 : 0) | CALL_SMC);
    const res = new SmcResult();
    const start = this.timed ? this.clock.now() : 0;
    const originId = this.trace.intern(origin);
    const finish = (): HypervisorCallResult => {
      this.finishHypervisorCall(regs, call, res, originId, start);
      const out: bigint[] = [];
      for (let n = 0; n < 18; n++) out.push((BigInt(regs[2 * n + 1]!) << 32n) | BigInt(regs[2 * n]!));
      return { regs: out };
    };
    const pending = this.monitor.handle(call, res, onBehalfOf ? { ...HYPERVISOR_ORIGIN, onBehalfOf } : HYPERVISOR_ORIGIN);
    return pending === undefined ? finish() : pending.then(finish);
  }

  /**
   * A standing channel for one origin's own calls to the secure world: hypervisorCall's path and trace
   * event, with the origin interned once and the call view, the result and the register file made once and
   * reused. For callers that make a secure call per guest call (a TEE mediator), where hypervisorCall's
   * allocations (a register file, a call, a result, an interned origin, 18 BigInts) were most of the cost.
   */
  hypervisorChannel(origin: string, onBehalfOf?: { vmName: string; vcpu: number }): HypervisorChannel {
    return new HypervisorChannel(this, this.trace.intern(origin), onBehalfOf ? { ...HYPERVISOR_ORIGIN, onBehalfOf } : HYPERVISOR_ORIGIN);
  }

  /** One call of a channel (HypervisorChannel.call). */
  channelCall(ch: HypervisorChannel, call: SmcCall, res: SmcResult): void | Promise<void> {
    const regs = ch.regs;
    const fid = regs[0]!;
    call.load(regs, fid, fid, ch.origin.onBehalfOf?.vcpu ?? 0, 17, ((fid & 0x4000_0000) !== 0 ? CALL_SMC64 : 0) | CALL_SMC);
    res.reset();
    const start = this.timed ? this.clock.now() : 0;
    const pending = this.monitor.handle(call, res, ch.origin);
    if (pending === undefined) return this.finishHypervisorCall(regs, call, res, ch.label, start);
    return pending.then(() => this.finishHypervisorCall(regs, call, res, ch.label, start));
  }

  private finishHypervisorCall(regs: Uint32Array, call: SmcCall, res: SmcResult, label: number, start: number): void {
    const fid = call.fid;
    this.writeBack(regs, res, call.smc64);
    this.trace.record(HYPERVISOR_VM, 0, FLAG_HYPERVISOR | FLAG_SMC, fid, ACTION_FORWARD, label, OUTCOME_RETURN, regs[0]!, regs[1]!, start, this.timed ? this.clock.now() - start : 0);
  }

  /**
   * Records that the secure world refused a VM something it may not touch (secure memory, another VM's
   * node or RAM): one extra trace event beside the call's own, with the rule "refused" and the reason as
   * its detail. The reason names guest-chosen addresses, so it is never interned (TraceRing.annotate).
   */
  recordRefusal(vmName: string, vcpu: number, fid: number, reason: string): void {
    const vm = this.vms.get(vmName);
    if (!vm) return;
    this.trace.record(vm.index, vcpu, FLAG_SMC, fid | 0, ACTION_CODES.indexOf("deny"), this.trace.intern(`${vmName}|refused`), OUTCOME_RETURN, 0, 0, this.timed ? this.clock.now() : 0, 0);
    this.trace.annotate(reason);
  }

  /**
   * Records a call the machine backend answered itself, outside the policy table: a handed-over kernel's
   * hyp-stub calls and the handover itself (docs/handover.md). `rule` is one of the backend's fixed names,
   * never text a guest chose; the call's detail (its addresses) is annotated, not interned.
   */
  recordMachineCall(vmName: string, vcpu: number, hvc: boolean, fid: number, action: "emulate" | "deny", rule: string, x0: bigint, detail?: string): void {
    const vm = this.vms.get(vmName);
    if (!vm) return;
    const x = BigInt.asUintN(64, x0);
    this.trace.record(vm.index, vcpu, hvc ? 0 : FLAG_SMC, fid | 0, ACTION_CODES.indexOf(action), this.trace.intern(`${vmName}|${rule}`), OUTCOME_RETURN, Number(x & 0xffff_ffffn) | 0, Number(x >> 32n) | 0, this.timed ? this.clock.now() : 0, 0);
    if (detail !== undefined) this.trace.annotate(detail);
  }

  /** The FEATURES answer for a FID as this VM's policy sees it (see ServiceContext.features). */
  features(vm: RoutedVm, fid: number): number {
    if (checkFid(fid, vm.config.aarch32, vm.smccc) !== FID_OK) return -1;
    const d = dispatchFid(fid);
    const chain = vm.table.chainFor(d);
    for (const step of chain.steps) {
      if (step.constraints.length > 0) {
        if (step.action.kind !== "deny") return 0; // available for some arguments
        continue;
      }
      if (step.action.kind === "deny") return -1;
      if (step.action.kind !== "emulate") return 0;
      const service = step.service === null ? undefined : vm.services.get(step.service);
      return service === undefined ? -1 : service.features(d);
    }
    return -1;
  }

  /**
   * A trapped SMC of a VM with board firmware: the board sees every register and says whether the call is
   * its own; if so it answers (through the same handler path as a delegate). Returns -1 when not claimed.
   */
  private boardTrap(vm: RoutedVm, vcpu: number, regs: Uint32Array, flags: number, rawFid: number, start: number, res: SmcResult): number | Promise<number> {
    const aarch32 = (flags & FLAG_AARCH32) !== 0;
    const call = this.call;
    call.load(regs, rawFid, rawFid, vcpu, 17, CALL_SMC | (aarch32 ? CALL_AARCH32 : CALL_SMC64));
    if (!vm.board!.claims(call)) return -1;
    const step = vm.boardStep!;
    let pending: HandlerReturn;
    try {
      pending = vm.board!.handle(call, res, vm.origins[vcpu]!);
    } catch (error) {
      return this.failed(vm, vcpu, regs, step, flags, rawFid, start, error, res);
    }
    if (pending !== undefined) {
      this.call = new SmcCall();
      this.res = new SmcResult();
      return this.later(vm, vcpu, regs, step, flags, rawFid, start, pending, res);
    }
    return this.complete(vm, vcpu, regs, step, flags, rawFid, start, res);
  }

  private malformed(vm: RoutedVm, vcpu: number, regs: Uint32Array, flags: number, rawFid: number, start: number, res: SmcResult): number {
    const check = checkFid(rawFid >>> 0, (flags & FLAG_AARCH32) !== 0, vm.smccc);
    res.ret(-1);
    this.writeBack(regs, res, (rawFid & 0x4000_0000) !== 0 && (flags & FLAG_AARCH32) === 0);
    return this.conventionEvent(vm, vcpu, flags, rawFid, check, OUTCOME_RETURN, regs[0]! | 0, regs[1]! | 0, start);
  }

  private complete(vm: RoutedVm, vcpu: number, regs: Uint32Array, step: BoundStep, flags: number, rawFid: number, start: number, res: SmcResult): number {
    const smc64 = ((rawFid & 0x4000_0000) !== 0 || res.wide) && (flags & FLAG_AARCH32) === 0;
    const lastResult = smc64 ? vm.lastResult64 : vm.lastResult32;
    if (res.count - 1 > lastResult) {
      // A service bug: the convention does not let it return that many registers.
      return this.failed(vm, vcpu, regs, step, flags, rawFid, start, new Error(`wrote result registers beyond x${lastResult}`), res);
    }
    let outcome = OUTCOME_RETURN;
    if (res.halted) outcome = OUTCOME_HALT;
    else this.writeBack(regs, res, smc64);
    this.trace.record(vm.index, vcpu, flags, rawFid, step.action, step.label, outcome, regs[0]! | 0, regs[1]! | 0, start, this.timed ? this.clock.now() - start : 0);
    return outcome;
  }

  private later(vm: RoutedVm, vcpu: number, regs: Uint32Array, step: BoundStep, flags: number, rawFid: number, start: number, pending: Promise<void>, res: SmcResult): Promise<number> {
    vm.pending[vcpu] = 1;
    vm.waiting++;
    vm.fastBase = -1;
    const done = () => {
      vm.pending[vcpu] = 0;
      if (--vm.waiting === 0) vm.fastBase = this.fastBaseOf(vm);
    };
    return pending.then(
      () => {
        done();
        return this.complete(vm, vcpu, regs, step, flags, rawFid, start, res);
      },
      (error: unknown) => {
        done();
        return this.failed(vm, vcpu, regs, step, flags, rawFid, start, error, res);
      },
    );
  }

  private failed(vm: RoutedVm, vcpu: number, regs: Uint32Array, step: BoundStep, flags: number, rawFid: number, start: number, error: unknown, res: SmcResult): number {
    res.reset();
    res.ret(-1);
    this.writeBack(regs, res, (rawFid & 0x4000_0000) !== 0 && (flags & FLAG_AARCH32) === 0);
    this.errors.handlerFailed(vm.name, rawFid >>> 0, step.labelText, error);
    this.trace.record(vm.index, vcpu, flags, rawFid, step.action, step.label, OUTCOME_ERROR, regs[0]! | 0, regs[1]! | 0, start, this.timed ? this.clock.now() - start : 0);
    return OUTCOME_ERROR;
  }

  private conventionEvent(vm: RoutedVm, vcpu: number, flags: number, rawFid: number, label: number, outcome: number, x0lo: number, x0hi: number, start: number): number {
    this.trace.record(vm.index, vcpu, flags, rawFid, ACTION_CONVENTION, vm.conventionLabels[label]!, outcome, x0lo, x0hi, start, this.timed ? this.clock.now() - start : 0);
    return outcome;
  }

  /**
   * Copies results into the vCPU: x0..x(count-1), nothing else, so every other register is preserved
   * (SMCCC 1.1+ §2.6). SMC32 calls return W registers: a W write clears the upper half.
   */
  private writeBack(regs: Uint32Array, res: SmcResult, smc64: boolean): void {
    const words = res.words;
    const n = res.count << 1;
    if (smc64) {
      for (let i = 0; i < n; i++) regs[i] = words[i]!;
    } else {
      for (let i = 0; i < n; i += 2) {
        regs[i] = words[i]!;
        regs[i + 1] = 0;
      }
    }
  }

  private bindStep(vm: RoutedVm, step: Step): BoundStep {
    const labelText = step.label;
    const label = this.trace.intern(`${vm.name}|${labelText}`);
    // Bit 8 marks a W-register (low 32 bits) constraint.
    const regs = step.constraints.map((c) => c.reg | (c.low32 ? 0x100 : 0));
    const ranges = step.constraints.map((c) => {
      const q = new Uint32Array(c.ranges.length * 4);
      c.ranges.forEach(([lo, hi], i) => {
        q[4 * i] = Number(lo >> 32n);
        q[4 * i + 1] = Number(lo & 0xffff_ffffn);
        q[4 * i + 2] = Number(hi >> 32n);
        q[4 * i + 3] = Number(hi & 0xffff_ffffn);
      });
      return q;
    });
    const action = ACTION_CODES.indexOf(step.action.kind);
    const make = (kind: number, service: ServiceInstance | null, target: CallTarget | null, act = action) => new BoundStep(kind, service, target, act, label, labelText, regs, ranges);
    switch (step.action.kind) {
      case "deny":
        return make(STEP_DENY, null, null);
      case "emulate": {
        const service = step.service === null ? undefined : vm.services.get(step.service);
        // An emulate grant no service claims: answered as an unknown call, -1.
        return service === undefined ? make(STEP_DENY, null, null, ACTION_EMULATE) : make(STEP_SERVICE, service, null);
      }
      case "forward":
        return make(STEP_MONITOR, null, null);
      case "mediate":
        return make(STEP_TARGET, null, this.mediators.get(step.action.target!)!);
      case "delegate":
        return make(STEP_TARGET, null, this.delegates.get(step.action.target!)!);
    }
  }

  private serviceContext(vm: RoutedVm, vmPorts: VmPorts): ServiceContext {
    const counts = new Map<number, number>();
    return {
      vm: vm.config,
      platform: this.platform,
      features: (fid) => this.features(vm, fid),
      callCount: (owner) => {
        let n = counts.get(owner);
        if (n === undefined) {
          n = 0;
          for (const typeBits of [0x8000_0000, 0xc000_0000]) {
            for (let fn = 0; fn <= 0xffff; fn++) if (this.features(vm, (typeBits | (owner << 24) | fn) >>> 0) >= 0) n++;
          }
          counts.set(owner, n);
        }
        return n;
      },
      hypervisorCall: (origin, fid, args, vcpu) => this.hypervisorCall(`${origin} (for ${vm.name})`, fid, args, { vmName: vm.name, vcpu: vcpu ?? 0 }),
      clock: this.clock,
      ports: this.servicePorts,
      vmPorts,
    };
  }

  /** Describes a step for humans: "forward (vms.dom0.grants[0])". */
  static describe(step: Step): string {
    return `${formatAction(step.action)} (${step.label})`;
  }
}

/** Picks the first step whose argument constraints hold; the last step of a chain is unconditional. */
function selectStep(steps: readonly BoundStep[], call: SmcCall): BoundStep {
  for (let s = 0; s < steps.length - 1; s++) {
    const step = steps[s]!;
    if (constraintsHold(step, call)) return step;
  }
  return steps[steps.length - 1]!;
}

function constraintsHold(step: BoundStep, call: SmcCall): boolean {
  for (let k = 0; k < step.regs.length; k++) {
    const r = step.regs[k]!;
    const reg = r & 0xff;
    const vh = r & 0x100 ? 0 : call.hi(reg), vl = call.w(reg);
    const q = step.ranges[k]!;
    let ok = false;
    for (let i = 0; i < q.length; i += 4) {
      const geLo = vh > q[i]! || (vh === q[i]! && vl >= q[i + 1]!);
      const leHi = vh < q[i + 2]! || (vh === q[i + 2]! && vl <= q[i + 3]!);
      if (geLo && leHi) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

/**
 * A standing channel for the hypervisor's own calls from one origin (Router.hypervisorChannel). The caller
 * writes the arguments into `regs` (x_n at [2n] and [2n + 1]), calls call(), and reads the results there;
 * registers the secure world does not write keep their values. One call at a time: when the secure world
 * answers later, the channel may not be used again before the promise settles.
 */
export class HypervisorChannel {
  readonly regs = new Uint32Array(36);
  private readonly smcCall = new SmcCall();
  private readonly result = new SmcResult();
  private busy = false;

  constructor(
    private readonly router: Router,
    /** The origin's interned trace label. */
    readonly label: number,
    readonly origin: CallOrigin,
  ) {}

  call(): void | Promise<void> {
    if (this.busy) throw new Error("a hypervisor channel carries one call at a time");
    const pending = this.router.channelCall(this, this.smcCall, this.result);
    if (pending === undefined) return;
    this.busy = true;
    return pending.finally(() => {
      this.busy = false;
    });
  }
}

