/**
 * The router's ports: small interfaces for everything outside the pure core (docs/architecture.md,
 * "Design rules"). Fakes implement them in tests; the hypervisor layer supplies real ones.
 */
import type { ServiceClaim } from "../policy/compile.js";
import type { VmConfig } from "../policy/load.js";
import type { SmcCall, SmcResult } from "./call.js";

/** What a handler returns: nothing when the result is ready, a promise when it completes later. */
export type HandlerReturn = void | Promise<void>;

/** Monotonic time in nanoseconds. */
export interface Clock {
  now(): number;
}

/** Who made a call that leaves the hypervisor: a VM (id ≥ 1) or the hypervisor itself (id 0, R9). */
export interface CallOrigin {
  readonly vmId: number;
  readonly vmName: string;
  readonly vcpu: number;
  /** For the hypervisor's own calls: the VM and vCPU they are made for (a physical CPU_ON for a vCPU). */
  readonly onBehalfOf?: { readonly vmName: string; readonly vcpu: number };
}

/** A destination for calls: the secure monitor, a mediator or a delegate handler. */
export interface CallTarget {
  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): HandlerReturn;
}

/**
 * A board's own firmware interface (R12 in docs/requirements.md; QEMU's "fake monitor mode"): boot ROMs of older SoCs expose
 * SMC calls that are not SMCCC (OMAP4 passes its service number in r12). The board decides from the
 * registers whether a trapped SMC is its own, before the calling convention looks at it.
 */
export interface BoardFirmware extends CallTarget {
  readonly name: string;
  /** Whether this trapped SMC is the board's call; `call` shows every register, unmasked. */
  claims(call: SmcCall): boolean;
  /** The VM's machine was reset: the board's registers go back to their reset values. */
  reset?(): void;
}

/** A TEE mediator as the router sees it: a call target that claims owner ranges for VMs with its TEE. */
export interface MediatorTarget extends CallTarget {
  claims(vm: VmConfig): readonly ServiceClaim[];
}

/** Until a secure world is attached, the monitor answers every call with -1 (SMCCC NOT_SUPPORTED). */
export const ABSENT_MONITOR: CallTarget = {
  handle(_call, res) {
    res.ret(-1);
  },
};

/** Handler failures go here; the hypervisor layer rate-limits what it logs. */
export interface ErrorSink {
  handlerFailed(vm: string, fid: number, rule: string, error: unknown): void;
}

export const SILENT_ERRORS: ErrorSink = { handlerFailed() {} };

/**
 * A VM's RAM as the hypervisor reaches it, by intermediate physical address (IPA). Accesses outside the
 * VM's RAM fail (null / false) instead of throwing: the address usually came from a guest.
 */
export interface GuestMemory {
  readonly base: bigint;
  readonly size: bigint;
  /** A copy of [ipa, ipa + length): what a checker reads, since the guest cannot change a copy. */
  read(ipa: bigint, length: number): Uint8Array | null;
  write(ipa: bigint, data: Uint8Array): boolean;
  /**
   * Optional, for backends that hold the VM's RAM in this process: [ipa, ipa + length) in place, without
   * a copy (null outside the VM's RAM, as read). Writes through it reach the guest, and the guest may change
   * it at any moment, so it serves only where a copy protects nothing: copying into a buffer of the
   * hypervisor's own (the copy is then the one read), writing results, or a trusted application's view of
   * shared memory, which OP-TEE too maps in place. Never check a guest-controlled value in a view and then
   * use it again from the view (a time-of-check to time-of-use gap). A backend returns a subarray of its
   * own mapping of exactly the VM's RAM, or null when that is unmapped; a view it gave earlier must then
   * read as zero length (a detached buffer), never as other memory. Users keep a view no longer than the
   * call that took it, except a TA suspended in an RPC, which uses it again only when the same VM resumes it.
   */
  view?(ipa: bigint, length: number): Uint8Array | null;
  /**
   * Optional: every byte of the RAM becomes zero (PSCI MEM_PROTECT's wipe). A backend that keeps RAM it was
   * never asked to hold only where it was touched gives it here without making the rest: a guest that
   * turns MEM_PROTECT on and resets must not make the hypervisor hold its whole RAM. Views given earlier
   * stay views of the same (now zero) bytes. Without it, users write zeros through write().
   */
  clear?(): void;
}

/** Time as a VM sees it, for the KVM PTP call and PV time: host wall clock and the vCPU's counters. */
export interface GuestTime {
  /** Host wall-clock time in ns since the Unix epoch. */
  wallClockNs(): bigint;
  /** The vCPU's counter: CNTVCT_EL0 (physical = false) or CNTPCT_EL0 (physical = true). */
  counter(vcpu: number, physical: boolean): bigint;
}

/**
 * What a machine backend does when virtual PSCI changes a vCPU's or the VM's power state. PSCI decides
 * (and issues the physical calls through the hypervisor entry, R9); the backend makes it so. Every method
 * is called while the call of vCPU `caller` (or `vcpu`) is in progress, before that call completes; the
 * backend must not rely on any other notion of "the vCPU whose call is in progress": when the secure
 * world answers asynchronously, the call is a promise the backend's trap handler has already received.
 * Calls that stop the calling vCPU then end with res.halt().
 */
export interface PowerPort {
  /**
   * vCPU `caller`'s CPU_ON for vCPU `target` succeeded: `target` starts at `entry` with x0 = `context`:
   * EL1h, DAIF masked (AArch64) or SVC with AIF masked, Thumb if entry bit 0 (AArch32), every other
   * register zero (DEN0022 §6.4). Called only after the hypervisor's physical CPU_ON for the target
   * succeeded, exactly once per successful CPU_ON, and before `caller`'s call completes (when the physical
   * answer was a promise: after the trap handler returned its promise, before that promise settles). A
   * CPU_ON that fails is never reported: the target stays off.
   */
  cpuOn(caller: number, target: number, entry: bigint, context: bigint): void;
  /** The calling vCPU powers off: it does not return from its call. */
  cpuOff(vcpu: number): void;
  /** Power-down suspend: the vCPU waits for a wake-up event, then resumes at `entry` with x0 = `context`. */
  cpuSuspend(vcpu: number, entry: bigint, context: bigint): void;
  /**
   * Standby (CPU_SUSPEND standby, CPU_DEFAULT_SUSPEND): the call returns SUCCESS, but the vCPU waits for a
   * wake-up event (or at most a bounded time, as a WFI may end early) before it runs on. Optional: a backend
   * without it returns at once, which DEN0022 allows (a wake-up event may come at any time).
   */
  cpuStandby?(vcpu: number): void;
  /** The VM powers off (SYSTEM_OFF, SYSTEM_OFF2): `reason` names the call. */
  systemOff(vcpu: number, reason: string): void;
  /**
   * The VM restarts (SYSTEM_RESET, SYSTEM_RESET2): `reason` names the call; PSCI's own state is already
   * back to boot. The backend resets the machine: it stops every vCPU and drops whatever of the old boot is
   * still in flight, then calls the toolstack's Domain.reset() (Hypervisor.resetDomain), which resets every
   * layer's state for the VM (services, the physical CPUs of its machine, its TEE), waits for it if it
   * returns a promise, and only then starts vCPU 0 at the VM's boot entry. A machine reset that does not
   * come from PSCI (the host resets the VM) takes the same path.
   */
  systemReset(vcpu: number, reason: string): void;
}

/**
 * The entropy source behind TRNG (DEN0098): the secure world's, reached through the hypervisor. A
 * deterministic seeded source in tests, the host's cryptographic source otherwise.
 */
export interface EntropySource {
  /** The UUID of this entropy source implementation, for TRNG_GET_UUID. */
  readonly uuid: string;
  /** Fills `out` with full-entropy bytes, or returns false when none is available now (NO_ENTROPY). */
  fill(out: Uint8Array): boolean;
}

/** Ports a machine backend gives each VM. */
export interface VmPorts {
  readonly memory?: GuestMemory;
  readonly time?: GuestTime;
  readonly power?: PowerPort;
}
