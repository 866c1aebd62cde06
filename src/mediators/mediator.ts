/**
 * The TEE mediator framework (R4, R5, R11 in docs/requirements.md; the design of Xen's TEE mediator
 * framework, xen/arch/arm/tee/, with the review of its first posting applied). A mediator sits between
 * VMs and one trusted OS: it probes the secure world once (a boolean, and
 * silence when there is no TEE: that is a valid platform), claims its owner ranges for the VMs it is
 * enabled for (SMC and HVC alike), and has an explicit lifecycle per VM: enabling is a toolstack
 * operation that returns an error the user sees, destroying frees everything the mediator and the TEE
 * hold for the VM. Several mediators can be active on different owner ranges.
 */
import type { ServiceClaim } from "../policy/compile.js";
import type { VmConfig } from "../policy/load.js";
import type { CallTarget, GuestMemory } from "../router/ports.js";

/** Pages of the hypervisor's own memory (shadow buffers a VM cannot touch), by platform physical address. */
export interface PageHeap {
  /**
   * A page for the calls of VM `owner`: the secure world serving that VM's call is given it, and no other
   * VM's call reaches it.
   */
  alloc(owner: string): bigint | null;
  free(pa: bigint): void;
  read(pa: bigint, length: number): Uint8Array | null;
  write(pa: bigint, data: Uint8Array): boolean;
  /** Optional: [pa, pa + length) of one allocated page in place (null otherwise): no VM can change it. */
  view?(pa: bigint, length: number): Uint8Array | null;
  readonly inUse: number;
}

/**
 * A standing path for the secure calls a mediator makes while it serves a VM's call (its hot path): the
 * origin is named and interned once, and the register file is reused, so a call allocates nothing.
 */
export interface SecureChannel {
  /**
   * The register file, x_n at [2n] (low 32 bits) and [2n + 1] (high): the caller writes the arguments of
   * an SMC32 call in the low words of x0-x7, call() leaves the results there; registers the secure world
   * does not write keep their values.
   */
  readonly regs: Uint32Array;
  /**
   * One SMC, traced as secureCall traces it. A promise when the secure world answers later; then the
   * channel may not be used again before it settles.
   */
  call(): void | Promise<void>;
}

/** What the hypervisor gives a mediator. */
export interface MediatorHost {
  /**
   * An SMC from the hypervisor to the secure world (R9), x0..x7 in and x0..x7 out, traced with its origin.
   * `vm` names the VM it is made for.
   */
  secureCall(origin: string, vm: string | null, regs: readonly number[]): number[] | Promise<number[]>;
  /**
   * The same SMC with whole 64-bit registers: x0..x17 in (fewer are zero) and x0..x17 out, as SMCCC 1.2
   * passes them (FF-A's SMC64 calls and DIRECT_REQ2 use all of them).
   */
  secureCall64?(origin: string, vm: string | null, regs: readonly bigint[]): bigint[] | Promise<bigint[]>;
  /** Optional: the same calls for `vm` through a standing channel (see SecureChannel); else secureCall serves. */
  secureChannel?(origin: string, vm: string): SecureChannel;
  /** A VM's RAM by IPA. */
  memory(vm: string): GuestMemory | undefined;
  /**
   * A VM's IPA range as platform physical address, or null unless it is all the VM's own RAM (never secure
   * memory, another VM's RAM or the hypervisor's pages, even where a map that skipped validation overlaps them).
   */
  ipaToPa(vm: string, ipa: bigint, length: bigint): bigint | null;
  readonly heap: PageHeap;
  /** Reports what a hostile or broken guest did, rate-limited by the hypervisor. */
  log(vm: string, key: string, line: string): void;
}

export type EnableResult = { readonly ok: true } | { readonly ok: false; readonly message: string };

export interface Mediator extends CallTarget {
  readonly name: string;
  /** The function IDs it serves for a VM it is enabled for. */
  claims(vm: VmConfig): readonly ServiceClaim[];
  /** Whether its TEE is in the secure world. Called once, before any VM is enabled. */
  probe(): boolean | Promise<boolean>;
  /** Toolstack: make the TEE available to a VM (for OP-TEE, VM_CREATED). */
  enable(vm: VmConfig): EnableResult | Promise<EnableResult>;
  /** Toolstack: the VM is gone; free everything held for it, here and in the TEE. */
  destroy(vm: string): void | Promise<void>;
  /**
   * Toolstack: the VM restarts (Hypervisor.resetDomain, called once every vCPU of the VM has stopped).
   * Everything held for it goes, here and in the TEE, calls suspended in the TEE included, as `destroy`
   * frees it, and the TEE is available to the VM again as after `enable`: afterwards `counters(vm)` is all
   * zero. Other VMs are not touched. `{ ok: false }` when the TEE has no room for it again: the VM then
   * runs without the TEE, as a VM whose `enable` failed would.
   */
  reset(vm: VmConfig): EnableResult | Promise<EnableResult>;
  /** What is held for a VM (sessions, threads, registrations, pages...): teardown must leave zeros. */
  counters(vm: string): Readonly<Record<string, number>>;
}

export type MediatorFactory = (host: MediatorHost) => Mediator;
