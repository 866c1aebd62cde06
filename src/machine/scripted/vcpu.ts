/**
 * In-process vCPUs with a fluent API for tests, fuzzing and benchmarks:
 *
 *   machine.vm("domU").vcpu(0).smc(0x80000000).x0     // 0x10002n
 *   machine.vm("dom0").vcpu(1).aarch32.hvc(0x84000000)
 *
 * A call goes through exactly what a QEMU trap goes through: the vCPU builds the ESR the hardware would
 * (EC 0x16/0x17 for AArch64, 0x12/0x13 for AArch32) and hands its registers to the domain.
 */
import type { Domain } from "../../hypervisor/hypervisor.js";
import { OUTCOME_UNDEF, pcAdvance } from "../../router/outcome.js";
import { esrFor, type Conduit } from "../../smccc/esr.js";
import { OUTCOME_NAMES, type TraceEvent, type TraceRing } from "../../trace/ring.js";

export type RegValue = bigint | number;

export interface CallOptions {
  /** The instruction's immediate (#imm16); SMCCC calls use #0. */
  readonly imm?: number;
  /** AArch32 SMC only: the condition code of a conditional SMC (the trap reports CV = 1, COND). */
  readonly cond?: number;
  /** NZCV flags (bits 3:0) in PSTATE at the call. */
  readonly nzcv?: number;
}

export class CallResult {
  constructor(
    readonly outcome: (typeof OUTCOME_NAMES)[number],
    /** x0..x30 after the call. */
    readonly regs: readonly bigint[],
    /** The trace event the call produced. */
    readonly event: TraceEvent,
    /** How far the PC moved past the instruction (4 after a trapped SMC, 0 after an HVC). */
    readonly pcAdvance: number,
  ) {}

  get x0(): bigint {
    return this.regs[0]!;
  }

  x(n: number): bigint {
    return this.regs[n]!;
  }

  /** The low 32 bits of x_n, what an SMC32 caller reads from W_n. */
  w(n: number): number {
    return Number(this.regs[n]! & 0xffff_ffffn);
  }

  /** W_n as a signed value (-1 for NOT_SUPPORTED). */
  sw(n: number): number {
    return this.w(n) | 0;
  }

  get decision(): { action: string; rule: string } {
    return { action: this.event.action, rule: this.event.rule };
  }
}

function toWords(v: RegValue): [number, number] {
  const b = BigInt.asUintN(64, BigInt(v));
  return [Number(b & 0xffff_ffffn), Number(b >> 32n)];
}

export type VcpuPower = "on" | "off" | "suspended";

export class ScriptedVcpu {
  /** Power state as the machine sees it; PSCI decides it through the VM's PowerPort. */
  power: VcpuPower = "on";
  /** Times this vCPU was started at an entry point (CPU_ON, resume from power-down). */
  starts = 0;
  /** x0 at the last start: the context PSCI passed. */
  entryX0 = 0n;
  /** Where a power-down suspend resumes: [entry, context]. */
  resumeAt: [bigint, bigint] | null = null;
  /** x0..x30 as 32-bit word pairs. */
  readonly words = new Uint32Array(62);
  /** The view the router sees: x0..x17 only. */
  private readonly callWords = this.words.subarray(0, 36);
  pc = 0n;
  /** SPSR-style PSTATE: EL1h with DAIF masked (0x3C5) for AArch64, SVC with AIF masked (0x1D3) for AArch32. */
  pstate: number;
  /** UNDEFINED exceptions injected into this vCPU. */
  undefs = 0;

  constructor(
    private readonly domain: Domain,
    private readonly trace: TraceRing,
    readonly index: number,
    readonly isAarch32: boolean,
  ) {
    this.pstate = isAarch32 ? 0x1d3 : 0x3c5;
  }

  /** The same vCPU, but issuing its calls from AArch32 state (for tests of AArch32 callers on one VM). */
  get aarch32(): ScriptedVcpu {
    if (this.isAarch32) return this;
    const v = new ScriptedVcpu(this.domain, this.trace, this.index, true);
    v.power = this.power;
    return v;
  }

  /**
   * Starts the vCPU at `entry` as PSCI CPU_ON and resume do (DEN0022 §6.4): x0 = context, every other
   * register zero; EL1h with DAIF masked, or for AArch32 SVC mode with A, I, F masked and T from bit 0.
   */
  start(entry: bigint, context: bigint): void {
    this.words.fill(0);
    this.setX(0, context);
    this.entryX0 = this.getX(0);
    const thumb = this.isAarch32 && (entry & 1n) !== 0n;
    this.pc = thumb ? entry & ~1n : entry;
    this.pstate = this.isAarch32 ? 0x1d3 | (thumb ? 0x20 : 0) : 0x3c5;
    this.power = "on";
    this.resumeAt = null;
    this.starts++;
  }

  setX(n: number, v: RegValue): this {
    const [lo, hi] = toWords(v);
    this.words[2 * n] = lo;
    // AArch32 registers are 32 bits wide.
    this.words[2 * n + 1] = this.isAarch32 ? 0 : hi;
    return this;
  }

  getX(n: number): bigint {
    return (BigInt(this.words[2 * n + 1]!) << 32n) | BigInt(this.words[2 * n]!);
  }

  smc(fid: RegValue, ...args: RegValue[]): CallResult {
    return this.call("smc", fid, args);
  }

  hvc(fid: RegValue, ...args: RegValue[]): CallResult {
    return this.call("hvc", fid, args);
  }

  /** Loads x0 = fid and x1.. = args (other registers keep their values) and traps. */
  call(conduit: Conduit, fid: RegValue, args: readonly RegValue[] = [], opts: CallOptions = {}): CallResult {
    const outcome = this.trap(conduit, fid, args, opts);
    if (typeof outcome !== "number") throw new Error("this call completes asynchronously: use callAsync()");
    return this.finish(conduit, outcome, opts);
  }

  async callAsync(conduit: Conduit, fid: RegValue, args: readonly RegValue[] = [], opts: CallOptions = {}): Promise<CallResult> {
    const outcome = await this.trap(conduit, fid, args, opts);
    return this.finish(conduit, outcome, opts);
  }

  private esr(conduit: Conduit, opts: CallOptions): number {
    let esr = esrFor(conduit, this.isAarch32, opts.imm ?? 0);
    if (this.isAarch32 && conduit === "smc" && opts.cond !== undefined) esr |= (1 << 24) | ((opts.cond & 0xf) << 20);
    return esr >>> 0;
  }

  private trap(conduit: Conduit, fid: RegValue, args: readonly RegValue[], opts: CallOptions): number | Promise<number> {
    if (this.power !== "on") throw new Error(`vCPU ${this.index} is ${this.power}: it cannot issue calls`);
    this.setX(0, fid);
    args.forEach((a, i) => this.setX(i + 1, a));
    if (opts.nzcv !== undefined) this.pstate = ((this.pstate & 0x0fff_ffff) | ((opts.nzcv & 0xf) << 28)) >>> 0;
    return this.domain.trap(this.index, this.callWords, this.esr(conduit, opts), this.pstate);
  }

  private finish(conduit: Conduit, outcome: number, opts: CallOptions): CallResult {
    const advance = pcAdvance(this.esr(conduit, opts), outcome);
    this.pc += BigInt(advance);
    if (outcome === OUTCOME_UNDEF) this.undefs++;
    const regs: bigint[] = [];
    for (let n = 0; n < 31; n++) regs.push(this.getX(n));
    return new CallResult(OUTCOME_NAMES[outcome]!, regs, this.trace.latest()!, advance);
  }
}
