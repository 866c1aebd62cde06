/**
 * The shape every built-in service has (TF-A's rt_svc_desc: "is this mine", "set up", "handle"):
 * a definition says which function IDs it claims for a VM and creates the VM's instance; the instance
 * handles calls and answers feature queries. State a VM owns lives in its instance.
 */
import type { ServiceClaim } from "../policy/compile.js";
import type { PlatformConfig, VmConfig } from "../policy/load.js";
import type { SmcCall, SmcResult } from "./call.js";
import type { CallOrigin, CallTarget, Clock, EntropySource, HandlerReturn, VmPorts } from "./ports.js";

export interface ServiceInstance {
  handle(call: SmcCall, res: SmcResult): HandlerReturn;
  /**
   * The FEATURES answer for one of the FIDs this service claims: ≥ 0 implemented (the value may carry
   * flags, as PSCI_FEATURES does), < 0 not implemented for this VM.
   */
  features(fid: number): number;
  /**
   * True when this ID's answer depends on nothing but the VM's configuration (not the arguments, the
   * caller, the vCPU or any state) and answering it changes nothing. The router may then repeat the
   * first answer to later calls without calling handle() (its answer cache; the call is still traced).
   * Absent: never.
   */
  fixed?(fid: number): boolean;
  /**
   * The VM restarts (Hypervisor.resetDomain, once the backend has stopped every vCPU): state that belongs
   * to one boot of the VM goes back to what a new VM has; configuration, and what the spec says survives a
   * reset, stays. Absent: the service keeps nothing per boot.
   */
  reset?(): void;
  /** Frees everything the VM holds in this service. */
  destroy?(): void;
}

export interface ServiceContext {
  readonly vm: VmConfig;
  readonly platform: PlatformConfig;
  /**
   * What this VM gets for a FID, asked through its policy: the owning service's features() when the
   * call is emulated, 0 when policy sends it elsewhere unconditionally, -1 when it is denied or unknown.
   */
  features(fid: number): number;
  /** How many function IDs of an owner this VM can reach (the general query Call Count). */
  callCount(owner: number): number;
  /** Calls the hypervisor itself makes to the secure world on behalf of this VM's vCPU `vcpu` (R9). */
  hypervisorCall(origin: string, fid: number, args?: readonly bigint[], vcpu?: number): HypervisorCallResult | Promise<HypervisorCallResult>;
  readonly clock: Clock;
  readonly ports: ServicePorts;
  /** What the machine backend gives this VM: guest memory, guest time. */
  readonly vmPorts: VmPorts;
}

/** Ports services share across VMs, supplied by the hypervisor layer. */
export interface ServicePorts {
  /** TRNG's entropy, from the secure world. */
  readonly entropy?: EntropySource;
}

export interface ServiceDefinition {
  readonly name: string;
  /** Whether the VM has this service (its `services` config). */
  enabled(vm: VmConfig): boolean;
  /** The function IDs it answers for this VM. */
  claims(vm: VmConfig, platform: PlatformConfig): readonly ServiceClaim[];
  create(ctx: ServiceContext): ServiceInstance;
}

export interface HypervisorCallResult {
  /** x0..x17 after the call. */
  readonly regs: readonly bigint[];
}

export type { CallOrigin, CallTarget };
