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

export class SmcCall {
  /** The vCPU's register words, x_n at [2n] (low) and [2n + 1] (high). Read only through the methods. */
  regs: Uint32Array = EMPTY;
  /**
   * fid, rawFid, vcpu and lastArg live in a typed array: 32-bit IDs do not fit V8's small integers, and
   * storing them in object fields would allocate a heap number on every call.
   */
  private readonly m = new Uint32Array(4);
  smc64 = false;
  aarch32 = false;
  conduit: Conduit = "hvc";

  /** The function ID dispatch sees (SVE hint removed). */
  get fid(): number {
    return this.m[0]!;
  }
  set fid(v: number) {
    this.m[0] = v;
  }
  /** W0 as the caller wrote it. */
  get rawFid(): number {
    return this.m[1]!;
  }
  set rawFid(v: number) {
    this.m[1] = v;
  }
  get vcpu(): number {
    return this.m[2]!;
  }
  set vcpu(v: number) {
    this.m[2] = v;
  }
  /** Highest argument register the callee may read under this call's rules. */
  get lastArg(): number {
    return this.m[3]!;
  }
  set lastArg(v: number) {
    this.m[3] = v;
  }

  /** W_n, the low 32 bits of argument register n (0 beyond the convention's argument registers). */
  w(n: number): number {
    return n <= this.lastArg ? this.regs[n << 1]! : 0;
  }

  /** The high 32 bits of X_n; always 0 for SMC32 calls, which see W registers only. */
  hi(n: number): number {
    return this.smc64 && n <= this.lastArg ? this.regs[(n << 1) + 1]! : 0;
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

  reset(): void {
    // A loop, not fill(): this runs on every call and fill() is a builtin call the JIT does not inline.
    const w = this.words;
    for (let i = 0, n = this.count << 1; i < n; i++) w[i] = 0;
    this.count = 4;
    this.halted = false;
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

  /** The common case: x0 = value, x1-x3 = 0. */
  ret(value: number): void {
    this.set(0, value);
  }

  get(n: number): bigint {
    return (BigInt(this.words[(n << 1) + 1]!) << 32n) | BigInt(this.words[n << 1]!);
  }
}
