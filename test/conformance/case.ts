/**
 * Conformance cases: data that any backend can run. A case is a VM configuration and a list of calls,
 * each with the result the specification requires. The in-process backend runs them with scripted
 * vCPUs; the QEMU backend runs the same list from real EL1 code in the bare-metal guest.
 */
import type { PsciVersionName } from "../../src/services/psci/versions.js";

/** Stands for "the guest's secondary entry point": backends substitute a real, valid address. */
export const SECONDARY_ENTRY = 0x5ec0_e1e0n;

export const RAM_BASE = 0x4000_0000n;
export const RAM_SIZE = 256n << 20n;

export interface Params {
  readonly psci: PsciVersionName;
  readonly aarch32: boolean;
  readonly conduit: "smc" | "hvc";
}

/** What a backend can do; a case that needs more is skipped with the reason. */
export type Capability =
  /** Calls from AArch32 state. */
  | "aarch32"
  /** Wake a vCPU from a power-down suspend (an interrupt). */
  | "wake"
  /** See the VM power off or reset. */
  | "system-events"
  /** Limit the secure world's entropy so it runs dry. */
  | "entropy-budget"
  /** Observe x0 a started vCPU sees at its entry point. */
  | "entry-registers";

/**
 * An argument only an earlier call reveals (the handle of an FF-A memory share): what register `reg` held
 * after step `step` returned. The step must run alone (no race) and, for the QEMU backend, be one of the
 * first 64 (guests/baremetal keeps that many).
 */
export interface ResultOf {
  readonly step: number;
  readonly reg: number;
}

export type Arg = bigint | number | ResultOf;

/** Bytes in the VM's RAM: where the FF-A cases put their descriptors and find their RX buffers' contents. */
export interface MemoryBytes {
  readonly at: bigint;
  readonly bytes: Uint8Array;
}

/**
 * Guest RAM a case may preload with `memory`: inside the bare-metal guest's image (guests/baremetal, its
 * 4 MiB Image size from 0x40200000), above its code and script, so the QEMU backend loads it with the image
 * and the in-process backend writes it before the first step. RX buffers and pages a case only passes may be
 * anywhere in RAM.
 */
export const CASE_DATA_BASE = 0x4040_0000n;
export const CASE_DATA_END = 0x4060_0000n;

export interface Step {
  readonly vcpu: number;
  readonly fid: number;
  /** x1, x2, ...; SECONDARY_ENTRY is substituted, a ResultOf replaced by that earlier result. */
  readonly args?: readonly Arg[];
  /** Expected x0 as a signed value of the call's width. */
  readonly ret?: number;
  /** Exact values of result registers (unsigned, as the caller reads them). */
  readonly regs?: Readonly<Record<number, bigint>>;
  /** Registers that must equal an earlier step's result (the handle FFA_MEM_FRAG_RX gave). Checked by check.ts. */
  readonly same?: Readonly<Record<number, ResultOf>>;
  /** Registers that must not be zero (random data, UUID words). */
  readonly nonZero?: readonly number[];
  /** Bits that must be clear in a register (TRNG's unused upper bits). */
  readonly clearBits?: Readonly<Record<number, bigint>>;
  /** The call does not return to its caller (CPU_OFF, SYSTEM_OFF, power-down). */
  readonly halts?: boolean;
  /** Steps with the same race id are issued at the same moment from their vCPUs. */
  readonly race?: string;
  /** Before this step, wake this vCPU from a power-down suspend. */
  readonly wakeFirst?: number;
  /**
   * Before this step's call, the guest writes these bytes (a TX buffer's next fragment): the in-process
   * backend writes them, the bare-metal guest copies them from its image (guests/baremetal, conduit 4).
   */
  readonly write?: MemoryBytes;
}

export interface Case {
  /** "<spec> <function>: <rule>", for example "DEN0022 CPU_ON: ALREADY_ON for a running target". */
  readonly name: string;
  /** VM configuration on top of the parameters' (vcpus, memory, services, ...). */
  readonly vm?: Readonly<Record<string, unknown>>;
  /** Hypervisor settings the case needs, such as an entropy budget. */
  readonly entropyBudget?: number;
  readonly needs?: readonly Capability[];
  readonly steps: readonly Step[];
  /** For each race id: exactly one step returns `winner`, every other returns `others`. */
  readonly races?: Readonly<Record<string, { readonly winner: number; readonly others: number }>>;
  /** How many times each vCPU was started at an entry point by the end. */
  readonly starts?: Readonly<Record<number, number>>;
  /** x0 each started vCPU saw at its (last) entry. */
  readonly entryContext?: Readonly<Record<number, bigint>>;
  /** The VM's state at the end. */
  readonly vmState?: "running" | "off" | "reset";
  /** Platform configuration (`platform:`), such as an SPMC and its partitions for the FF-A cases. */
  readonly platform?: Readonly<Record<string, unknown>>;
  /** Bytes in the VM's RAM before the first step, each run within [CASE_DATA_BASE, CASE_DATA_END). */
  readonly memory?: readonly MemoryBytes[];
  /** Bytes the VM's RAM must hold after the last step (an RX buffer the case had written). */
  readonly memoryAfter?: readonly MemoryBytes[];
  /**
   * A real bug the case finds in smcvisor, with the spec rule it breaks: the case keeps expecting the spec's
   * answer, and the suite reports it as an expected failure (and fails once it passes: remove the mark).
   */
  readonly knownGap?: string;
}

export interface StepResult {
  /** x0..x17 after the call (for a halting call: whatever the backend saw; not checked). */
  readonly regs: readonly bigint[];
  readonly halted: boolean;
}

export interface CaseResult {
  readonly steps: readonly StepResult[];
  readonly starts: readonly number[];
  readonly entryContext: readonly bigint[];
  readonly vmState: "running" | "off" | "reset";
  /** The bytes of each of the case's `memoryAfter` runs at the end (null: the backend could not read them). */
  readonly memoryAfter?: readonly (Uint8Array | null)[];
}

export interface Backend {
  readonly name: string;
  readonly capabilities: ReadonlySet<Capability>;
  run(c: Case, p: Params): Promise<CaseResult>;
}

export function isResultOf(a: Arg): a is ResultOf {
  return typeof a === "object";
}

/** The case's config: `platform` and the one VM, vm0, on top of the parameters. */
export function caseConfig(c: Case, p: Params): Record<string, unknown> {
  const vm = { aarch32: p.aarch32, conduit: p.conduit, ...c.vm, services: { psci: { version: p.psci }, ...((c.vm?.services as object) ?? {}) } };
  return { ...(c.platform ? { platform: c.platform } : {}), vms: { vm0: vm } };
}

/** The FID of a function in the caller's natural width: SMC64 from AArch64 when it exists. */
export function nativeFid(def: { smc32?: number; smc64?: number }, p: Params): number {
  if (!p.aarch32 && def.smc64 !== undefined) return def.smc64;
  if (def.smc32 !== undefined) return def.smc32;
  return def.smc64!;
}
