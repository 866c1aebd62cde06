/**
 * The router's view of one VM: its compiled policy, the steps bound to handlers, its service instances
 * and one call/result pair per vCPU. Created by Router.addVm.
 */
import type { PolicyTable } from "../policy/table.js";
import type { VmConfig } from "../policy/load.js";
import { SmcCall, SmcResult } from "./call.js";
import type { CallOrigin, HandlerReturn } from "./ports.js";
import type { ServiceInstance } from "./service.js";

export interface BoundStep {
  /** Index into ACTION_CODES. */
  readonly action: number;
  /** Interned "<vm>|<rule label>" for the trace. */
  readonly label: number;
  readonly labelText: string;
  /** Argument constraints: register numbers and, per register, [loHi, loLo, hiHi, hiLo] quadruples. */
  readonly regs: readonly number[];
  readonly ranges: readonly Uint32Array[];
  invoke(call: SmcCall, res: SmcResult, origin: CallOrigin): HandlerReturn;
}

export interface BoundChain {
  /** The only step when the chain is a single unconditional one (the common case), else null. */
  readonly single: BoundStep | null;
  readonly steps: readonly BoundStep[];
}

export class RoutedVm {
  readonly calls: SmcCall[] = [];
  readonly results: SmcResult[] = [];
  readonly origins: CallOrigin[] = [];
  /** 1 while a vCPU waits for an asynchronous handler. */
  readonly pending: Uint8Array;
  readonly services = new Map<string, ServiceInstance>();
  bound: BoundChain[] = [];
  /** Highest argument register for SMC32 [0] and SMC64 [1] calls under this VM's SMCCC version. */
  readonly lastArg: [number, number];
  /** Highest result register for SMC32 [0] and SMC64 [1] calls. */
  readonly lastResult: [number, number];
  /** Interned trace labels for the calling-convention answers, indexed like FID_CHECK_LABELS; [4] immediate, [5] condition. */
  conventionLabels: number[] = [];
  #destroyed = false;

  constructor(
    readonly config: VmConfig,
    /** The VM's index in the trace. */
    readonly index: number,
    readonly table: PolicyTable,
    lastArg: [number, number],
    lastResult: [number, number],
  ) {
    this.lastArg = lastArg;
    this.lastResult = lastResult;
    this.pending = new Uint8Array(config.vcpus);
    for (let i = 0; i < config.vcpus; i++) {
      const c = new SmcCall();
      c.vcpu = i;
      this.calls.push(c);
      this.results.push(new SmcResult());
      this.origins.push({ vmId: config.id, vmName: config.name, vcpu: i });
    }
  }

  get name(): string {
    return this.config.name;
  }

  get smccc(): number {
    return this.config.smccc;
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  markDestroyed(): void {
    this.#destroyed = true;
  }
}
