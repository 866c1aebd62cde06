/**
 * The router's view of one VM: its compiled policy, the steps bound to its handlers and its service
 * instances. Created by Router.addVm. Fields the hot path reads are plain numbers on this object, so a
 * call touches as few cache lines per VM as possible.
 */
import type { PolicyTable } from "../policy/table.js";
import type { VmConfig } from "../policy/load.js";
import type { BoardFirmware, CallOrigin, CallTarget } from "./ports.js";
import type { ServiceInstance } from "./service.js";

/** How a bound step is invoked. */
export const STEP_DENY = 0;
export const STEP_SERVICE = 1;
export const STEP_MONITOR = 2;
export const STEP_TARGET = 3;

/** A chain step bound to its handler. A class, so every step has one shape and the router's loads stay monomorphic. */
export class BoundStep {
  constructor(
    /** STEP_*: dispatch by a switch in the router, not by a per-VM closure (keeps the call site monomorphic). */
    readonly kind: number,
    readonly service: ServiceInstance | null,
    readonly target: CallTarget | null,
    /** Index into ACTION_CODES, for the trace. */
    readonly action: number,
    /** Interned "<vm>|<rule label>" for the trace. */
    readonly label: number,
    readonly labelText: string,
    /** Argument constraints: register numbers and, per register, [loHi, loLo, hiHi, hiLo] quadruples. */
    readonly regs: readonly number[],
    readonly ranges: readonly Uint32Array[],
  ) {}
  /** The only step of its chain and without constraints: its decision depends on the ID alone. */
  sole = false;
}

export class RoutedVm {
  // The two fields the fast path reads come first, so that they share the object's first cache line.
  /** answerBase while the router may answer from the cache without the full path's checks, else -1. */
  fastBase = -1;
  /** The VM's index in the trace. */
  readonly index: number = 0;
  /** First word of this VM's block in the router's answer cache; -1 when it has none. */
  answerBase = -1;
  /** Called by the full path on the first trap when the VM has not been started (Domain.start); then null. */
  beforeFirstTrap: (() => void) | null = null;
  /** vCPUs waiting for an asynchronous handler (those marked in `pending`). */
  waiting = 0;
  readonly origins: CallOrigin[] = [];
  /** 1 while a vCPU waits for an asynchronous handler. */
  readonly pending: Uint8Array;
  readonly services = new Map<string, ServiceInstance>();
  /** Per chain: the step when the chain is one unconditional step (the common case), else null. */
  single: (BoundStep | null)[] = [];
  /** Per chain: all its steps, for chains with argument constraints. */
  steps: BoundStep[][] = [];
  /** The VM's board firmware (a non-SMCCC SMC interface), checked first for trapped SMCs; null when none. */
  board: BoardFirmware | null = null;
  boardStep: BoundStep | null = null;
  /** Steps for IDs outside the SMCCC layout (PSCI 0.1), checked before the convention; null when none. */
  legacy: Map<number, BoundStep> | null = null;
  /** Interned trace labels for the calling-convention answers, indexed like FID_CHECK_LABELS; then immediate, condition, bad trap. */
  conventionLabels: number[] = [];
  readonly smccc: number;
  readonly immediateUndef: boolean;
  readonly lastArg32: number;
  readonly lastArg64: number;
  readonly lastResult32: number;
  readonly lastResult64: number;
  destroyed = false;

  constructor(
    /** Replaced, with `table`, `single` and `steps`, only by Router.swapPolicy (a live policy change). */
    public config: VmConfig,
    index: number,
    public table: PolicyTable,
    rules: { lastArg32: number; lastArg64: number; lastResult32: number; lastResult64: number },
  ) {
    this.index = index;
    this.smccc = config.smccc;
    this.immediateUndef = config.immediate === "undef";
    this.lastArg32 = rules.lastArg32;
    this.lastArg64 = rules.lastArg64;
    this.lastResult32 = rules.lastResult32;
    this.lastResult64 = rules.lastResult64;
    this.pending = new Uint8Array(config.vcpus);
    for (let i = 0; i < config.vcpus; i++) this.origins.push({ vmId: config.id, vmName: config.name, vcpu: i });
  }

  get name(): string {
    return this.config.name;
  }
}
