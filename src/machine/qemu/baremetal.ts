/**
 * Scripts for the bare-metal conformance guest (guests/baremetal): a list of calls, each with the vCPU
 * that makes it, packed behind the guest's binary so QEMU loads both as one kernel image.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./paths.js";

/** Where the guest is linked and where its script starts (guests/baremetal/guest.ld). */
export const GUEST_LOAD = 0x4020_0000n;
export const SCRIPT_OFFSET = 0x10_0000;
/** image_size in the guest's arm64 Image header (guests/baremetal/start.S). */
export const IMAGE_SIZE = 0x40_0000;
/** PSCI CPU_ON's entry for vCPUs the script starts (guests/baremetal/start.S). */
export const GUEST_SECONDARY_ENTRY = GUEST_LOAD + 0x40n;

const MAGIC = 0x5052_4353_5643_4d53n; // "SMCVSCRP"
const STEP_SIZE = 16 + 18 * 8;

/** Header flag: the host writes the number of halting calls the hypervisor has taken at HALT_ACKS_OFFSET. */
export const HOST_ACKS_HALTS = 1n;
/** Header flag: before the script, try to reach what the VM was not given (AArch64 guest; guest.c run_probes). */
export const PROBE = 2n;
const HEADER_SIZE = 48;
/** Where, from the script's start, the host counts halting calls (guests/baremetal/guest.c, struct header). */
export const HALT_ACKS_OFFSET = 32;
export const SCRIPT_ADDRESS = GUEST_LOAD + BigInt(SCRIPT_OFFSET);

export const STEP_HALTS = 1;
export const STEP_AFTER_HALT = 2;

export interface ScriptStep {
  readonly vcpu: number;
  readonly conduit: "hvc" | "smc";
  /** The instruction's immediate: 0 (an SMCCC call) or 1. */
  readonly imm?: 0 | 1;
  /** x0..x17 (missing ones are 0). */
  readonly regs: readonly bigint[];
  readonly halts?: boolean;
  /** Number of steps (this one first) issued at the same moment by different vCPUs. */
  readonly group?: number;
}

/** The guest for AArch64 EL1, or for AArch32 EL1 (A32) with `aarch32`. */
export function guestBinaryPath(aarch32 = false): string {
  return join(REPO_ROOT, "build", "baremetal", aarch32 ? "guest32.bin" : "guest.bin");
}

/** The script in the guest's format (guests/baremetal/guest.c). `loop` > 0: repeat step 0 that many times. */
export function encodeScript(steps: readonly ScriptStep[], loop = 0, opts: { hostAcksHalts?: boolean; probes?: { ramEnd: bigint } } = {}): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + steps.length * STEP_SIZE);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, MAGIC, true);
  v.setBigUint64(8, BigInt(steps.length), true);
  v.setBigUint64(16, (opts.hostAcksHalts ? HOST_ACKS_HALTS : 0n) | (opts.probes ? PROBE : 0n), true);
  v.setBigUint64(24, BigInt(loop), true);
  v.setBigUint64(40, opts.probes?.ramEnd ?? 0n, true);
  steps.forEach((s, i) => {
    const o = HEADER_SIZE + i * STEP_SIZE;
    const prevHalts = i > 0 && steps[i - 1]!.halts === true;
    v.setUint32(o, s.vcpu, true);
    v.setUint32(o + 4, (s.conduit === "smc" ? 1 : 0) + (s.imm === 1 ? 2 : 0), true);
    v.setUint32(o + 8, (s.halts ? STEP_HALTS : 0) | (prevHalts ? STEP_AFTER_HALT : 0), true);
    v.setUint32(o + 12, s.group ?? 0, true);
    for (let r = 0; r < 18; r++) v.setBigUint64(o + 16 + 8 * r, BigInt.asUintN(64, s.regs[r] ?? 0n), true);
  });
  return out;
}

/** Writes guest binary + script as one image file. */
export function writeScriptImage(path: string, steps: readonly ScriptStep[], loop = 0, opts: { hostAcksHalts?: boolean; aarch32?: boolean; probes?: { ramEnd: bigint } } = {}): void {
  const bin = readFileSync(guestBinaryPath(opts.aarch32));
  if (bin.length > SCRIPT_OFFSET) throw new Error(`the bare-metal guest is larger than ${SCRIPT_OFFSET} bytes`);
  const script = encodeScript(steps, loop, opts);
  if (SCRIPT_OFFSET + script.length > IMAGE_SIZE) throw new Error(`a script of ${steps.length} steps does not fit the guest's ${IMAGE_SIZE >> 20} MiB image`);
  const image = new Uint8Array(SCRIPT_OFFSET + script.length);
  image.set(bin);
  image.set(script, SCRIPT_OFFSET);
  writeFileSync(path, image);
}

export interface GuestReport {
  /** SMCV-BOOT lines: 1, or more after resets. */
  boots: number;
  readonly steps: Map<number, bigint[]>;
  readonly halts: Set<number>;
  /** Steps whose call took an UNDEFINED exception, with ESR_EL1 (AArch64 guest). */
  readonly undefs: Map<number, bigint>;
  readonly entries: { cpu: number; x0: bigint }[];
  readonly loop: { calls: number; ticks: number; freq: number; x0: bigint } | null;
  afterSmc: number | null;
  /** Probe mode: each probe's outcome, by name (refused: ESR_EL1 and FAR_EL1 of the exception; allowed: the value read). */
  readonly probes: Map<string, { refused: true; esr: bigint; far: bigint } | { refused: false; value: bigint }>;
  done: boolean;
  readonly errors: string[];
}

export function emptyReport(): GuestReport {
  return { boots: 0, steps: new Map(), halts: new Set(), undefs: new Map(), entries: [], loop: null, afterSmc: null, probes: new Map(), done: false, errors: [] };
}

/**
 * How many steps, halts, entries, probes or errors a report keeps. The guest writes these lines, so a guest
 * that loops writing them must not grow the reader's memory without bound: our scripts use a few hundred.
 */
export const MAX_REPORT_ITEMS = 4096;
const REPORT_FULL = `more than ${MAX_REPORT_ITEMS} report lines of one kind: the rest are dropped`;

function full(r: GuestReport): boolean {
  return Math.max(r.steps.size, r.halts.size, r.undefs.size, r.entries.length, r.probes.size, r.errors.length) >= MAX_REPORT_ITEMS;
}

/** Parses one console line of the guest into `r`; returns whether it was one of the guest's lines. */
export function parseGuestLine(line: string, r: GuestReport): boolean {
  try {
    return parseFields(line.trim().split(/\s+/), r);
  } catch {
    // A line cut short (the guest stopped mid-line): note it, never throw at the console reader.
    r.errors.push(`unparseable line: ${line.slice(0, 200)}`);
    return false;
  }
}

/** Line kinds that add an item to a report; the others set a counter or a flag. */
const ITEM_LINES = new Set(["SMCV-STEP", "SMCV-UNDEF", "SMCV-HALT", "SMCV-ENTRY", "SMCV-PROBE", "SMCV-ERROR"]);

function parseFields(f: string[], r: GuestReport): boolean {
  if (ITEM_LINES.has(f[0]!) && full(r)) {
    if (r.errors.at(-1) !== REPORT_FULL) r.errors.push(REPORT_FULL);
    return true;
  }
  switch (f[0]) {
    case "SMCV-BOOT":
      r.boots++;
      return true;
    case "SMCV-STEP":
      r.steps.set(Number(f[1]), f.slice(2, 20).map((x) => BigInt(x)));
      return true;
    case "SMCV-UNDEF":
      r.undefs.set(Number(f[1]), BigInt(f[2]!));
      return true;
    case "SMCV-HALT":
      r.halts.add(Number(f[1]));
      return true;
    case "SMCV-ENTRY":
      r.entries.push({ cpu: Number(f[1]), x0: BigInt(f[2]!) });
      return true;
    case "SMCV-LOOP":
      (r as { loop: GuestReport["loop"] }).loop = { calls: Number(f[1]), ticks: Number(f[2]), freq: Number(f[3]), x0: BigInt(f[4]!) };
      return true;
    case "SMCV-AFTER-SMC":
      r.afterSmc = Number(f[1]);
      return true;
    case "SMCV-PROBE":
      r.probes.set(f[1]!, f[2] === "refused" ? { refused: true, esr: BigInt(f[3]!), far: BigInt(f[4]!) } : { refused: false, value: BigInt(f[3]!) });
      return true;
    case "SMCV-DONE":
      r.done = true;
      return true;
    case "SMCV-ERROR":
      r.errors.push(f.slice(1).join(" "));
      return true;
    default:
      return false;
  }
}
