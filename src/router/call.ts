/**
 * The values a handler sees and fills. Handlers never touch vCPU registers: the router fills an SmcCall
 * (a read-only view of the arguments under the calling convention's rules) and copies an SmcResult back
 * under the same rules. Both are allocated once per vCPU and reused, so the hot path allocates nothing.
 *
 * An asynchronous handler must read every argument it needs before its first `await`: the view is only
 * guaranteed for the synchronous part of the handler.
 */
import type { Conduit } from "../smccc/esr.js";

const EMPTY = new Uint32Array(36);

/** SmcCall.m slots. */
const M_FID = 0, M_RAW = 1, M_VCPU = 2, M_LAST_ARG = 3, M_FLAGS = 4;
/** Flag bits in SmcCall.m[M_FLAGS]. */
export const CALL_SMC64 = 1;
export const CALL_AARCH32 = 2;
export const CALL_SMC = 4;

export class SmcCall {
  /** The vCPU's register words, x_n at [2n] (low) and [2n + 1] (high). Read only through the methods. */
  regs: Uint32Array = EMPTY;
  /**
   * Everything else lives in one typed array: 32-bit IDs do not fit V8's small integers and would be
   * boxed in object fields, and typed-array stores need no write barrier. [fid, rawFid, vcpu, lastArg, flags]
   */
  readonly m = new Uint32Array(5);

  /** The function ID dispatch sees (SVE hint removed). */
  get fid(): number {
    return this.m[M_FID]!;
  }
  /** W0 as the caller wrote it. */
  get rawFid(): number {
    return this.m[M_RAW]!;
  }
  get vcpu(): number {
    return this.m[M_VCPU]!;
  }
  /** Highest argument register the callee may read under this call's rules. */
  get lastArg(): number {
    return this.m[M_LAST_ARG]!;
  }
  get smc64(): boolean {
    return (this.m[M_FLAGS]! & CALL_SMC64) !== 0;
  }
  get aarch32(): boolean {
    return (this.m[M_FLAGS]! & CALL_AARCH32) !== 0;
  }
  get conduit(): Conduit {
    return (this.m[M_FLAGS]! & CALL_SMC) !== 0 ? "smc" : "hvc";
  }

  /** Points the view at a call (the router's job; tests may use it to build calls by hand). */
  load(regs: Uint32Array, fid: number, rawFid: number, vcpu: number, lastArg: number, flags: number): void {
    if (this.regs !== regs) this.regs = regs;
    const m = this.m;
    m[M_FID] = fid;
    m[M_RAW] = rawFid;
    m[M_VCPU] = vcpu;
    m[M_LAST_ARG] = lastArg;
    m[M_FLAGS] = flags;
  }

  /** W_n, the low 32 bits of argument register n (0 beyond the convention's argument registers). */
  w(n: number): number {
    return n <= this.m[M_LAST_ARG]! ? this.regs[n << 1]! : 0;
  }

  /** The high 32 bits of X_n; always 0 for SMC32 calls, which see W registers only. */
  hi(n: number): number {
    return (this.m[M_FLAGS]! & CALL_SMC64) !== 0 && n <= this.m[M_LAST_ARG]! ? this.regs[(n << 1) + 1]! : 0;
  }

  /** X_n as a number: exact below 2^53, which covers addresses and IDs but not arbitrary 64-bit data. */
  num(n: number): number {
    return this.hi(n) * 0x1_0000_0000 + this.w(n);
  }

  /** X_n as a bigint (allocates: not for hot paths). */
  x(n: number): bigint {
    return (BigInt(this.hi(n)) << 32n) | BigInt(this.w(n));
  }

  /** W_n interpreted as a signed 32-bit value. */
  sw(n: number): number {
    return this.w(n) | 0;
  }

  /** Arguments x1..x17 as the callee sees them, for handlers that finish asynchronously. */
  snapshot(): bigint[] {
    const out: bigint[] = [0n];
    for (let n = 1; n <= 17; n++) out.push(this.x(n));
    return out;
  }
}

export class SmcResult {
  /** Result register words, x_n at [2n] (low) and [2n + 1] (high). */
  readonly words = new Uint32Array(36);
  /** Result registers written back: x0..x(count-1). Never below 4: x0-x3 are always results. */
  count = 4;
  /** Set by `halt()`: the vCPU does not resume from this call. */
  halted = false;
  /**
   * The answer is an SMC64 function's registers although the call was SMC32: FF-A delivers a message as
   * the answer of the receiver's waiting call (FFA_MSG_WAIT is SMC32), and a DIRECT_REQ_64 must reach an
   * AArch64 receiver with its X registers whole (DEN0077: the message's function ID says the width).
   */
  wide = false;

  reset(): void {
    // Stores, not fill(): this runs on every call and fill() is a builtin call the JIT does not inline.
    const w = this.words;
    w[0] = 0; w[1] = 0; w[2] = 0; w[3] = 0; w[4] = 0; w[5] = 0; w[6] = 0; w[7] = 0;
    if (this.count > 4) this.clearTail();
    this.halted = false;
    this.wide = false;
  }

  private clearTail(): void {
    for (let i = 8, n = this.count << 1; i < n; i++) this.words[i] = 0;
    this.count = 4;
  }

  /**
   * The call does not return to its caller (CPU_OFF, SYSTEM_OFF, a power-down suspend): no registers
   * are written and the machine does what the service asked of it instead.
   */
  halt(): void {
    this.halted = true;
  }

  /**
   * Sets result register n from a number. Negative values are two's complement over 64 bits (-1 is all
   * ones); for SMC32 calls the router keeps only the low 32 bits, so -1 reads as 0xFFFFFFFF.
   */
  set(n: number, value: number): void {
    const i = n << 1;
    this.words[i] = value >>> 0;
    this.words[i + 1] = Math.floor(value / 0x1_0000_0000) >>> 0;
    if (n >= this.count) this.count = n + 1;
  }

  setWords(n: number, lo: number, hi: number): void {
    const i = n << 1;
    this.words[i] = lo >>> 0;
    this.words[i + 1] = hi >>> 0;
    if (n >= this.count) this.count = n + 1;
  }

  setBig(n: number, value: bigint): void {
    const v = BigInt.asUintN(64, value);
    this.setWords(n, Number(v & 0xffff_ffffn), Number(v >> 32n));
  }

  /** The common case: x0 = value, x1-x3 = 0. Values from -2^31 to 2^32-1 take the short path. */
  ret(value: number): void {
    if (value >= -0x8000_0000 && value <= 0xffff_ffff) {
      this.words[0] = value;
      this.words[1] = value < 0 ? 0xffff_ffff : 0;
    } else this.set(0, value);
  }

  get(n: number): bigint {
    return (BigInt(this.words[(n << 1) + 1]!) << 32n) | BigInt(this.words[n << 1]!);
  }
}
