/**
 * The modelled EL3 monitor: the secure world's firmware, reachable only through SMCs from the hypervisor
 * (forwarded guest calls and the hypervisor's own calls, R9). Deterministic: no clock, no ambient
 * randomness; entropy comes from an injected generator.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import { ModelEntropy, seededGenerator, type ByteGenerator } from "./entropy.js";
import { PhysicalPsci } from "./physical-psci.js";

export interface MonitorOptions {
  /** Where entropy comes from; a seeded generator (seed 0) when not given. */
  readonly entropy?: ByteGenerator;
  /** Entropy bytes available before the source runs dry (default: unlimited). */
  readonly entropyBudget?: number;
}

export class MonitorModel implements CallTarget {
  readonly psci = new PhysicalPsci();
  readonly entropy: ModelEntropy;
  /** Calls served, by origin VM name: what the monitor saw (tests read this). */
  readonly served = new Map<string, number>();

  constructor(opts: MonitorOptions = {}) {
    this.entropy = new ModelEntropy(opts.entropy ?? seededGenerator(0), opts.entropyBudget);
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    this.served.set(origin.vmName, (this.served.get(origin.vmName) ?? 0) + 1);
    if (this.psci.claims(call.fid)) return this.psci.handle(call, res, origin);
    // Nothing else is modelled yet: SMCCC's answer to an unknown function.
    res.ret(-1);
  }
}
