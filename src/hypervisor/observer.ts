/**
 * A hook for whoever watches every call a VM makes from outside the pure core: the recorder of
 * `smcvisor run --record` (src/record). It sees each trap before and after the router handles it, and
 * may wrap the ports the hypervisor and its secure world reach the outside world through (guest memory,
 * guest time, delegates, entropy), which are everything a call's answer depends on besides the policy
 * and the code. With no observer (the default) the hypervisor takes none of these paths.
 */
import type { ByteGenerator } from "../firmware/monitor/entropy.js";
import type { VmConfig } from "../policy/load.js";
import type { CallTarget, VmPorts } from "../router/ports.js";
import type { TraceEvent } from "../trace/ring.js";

export interface HypervisorObserver {
  /** The ports VM `vm` is created with, as the hypervisor and its secure world will use them. */
  ports?(vm: VmConfig, ports: VmPorts): VmPorts;
  /** A `delegate:<name>` handler, as the router will call it. */
  delegate?(name: string, target: CallTarget): CallTarget;
  /** The modelled secure world's entropy (TRNG, OP-TEE's RNG). */
  entropy?(inner: ByteGenerator): ByteGenerator;
  /** vCPU `vcpu` of `vm` trapped with these registers (x0..x17, two words each); the router has not run. */
  trapStart(vm: string, vcpu: number, regs: Uint32Array, esr: number, pstate: number): void;
  /** The same trap's handler returned a promise: the trap completes later (other traps may come first). */
  trapPending?(vm: string, vcpu: number): void;
  /**
   * The same trap has completed: `regs` hold what the vCPU gets back, `outcome` is the router's
   * (src/router/outcome.ts), `event` the trace event the router wrote for it (null if none matched).
   * Called once per trapStart, later when the handler completed asynchronously.
   */
  trapEnd(vm: string, vcpu: number, regs: Uint32Array, outcome: number, event: TraceEvent | null): void;
  /** The toolstack resets `vm` (Hypervisor.resetDomain), before any layer's state changes. */
  reset?(vm: string): void;
  /** The toolstack destroyed `vm`. */
  destroyed?(vm: string): void;
  /**
   * A live policy change of `vm` took effect between two calls (Router.swapPolicy); `text` is the new
   * policy document. Whoever swaps policies calls it (`hypervisor.observer?.policyChanged?.(...)`).
   */
  policyChanged?(vm: string, text: string): void;
}
