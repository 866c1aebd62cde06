/**
 * The delegate interface: how a user handler serves a call, like KVM's exit to userspace or seL4's fault
 * handler. In-process modules get these objects; external processes get them as JSON lines (see
 * docs/delegates.md).
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin } from "../../router/ports.js";

export interface DelegateRequest {
  readonly vm: string;
  readonly vmId: number;
  readonly vcpu: number;
  /** The function ID (SVE hint removed), unsigned. */
  readonly fid: number;
  readonly smc64: boolean;
  readonly conduit: "smc" | "hvc";
  /** x1..x17 as the callee may see them (W values for SMC32 calls); args[0] is x1. */
  readonly args: readonly bigint[];
}

export interface DelegateReply {
  /**
   * Result registers from x0, at most what the convention returns: bigints or safe-integer numbers
   * (negative ones two's complement), or strings ("0x2a", "42", "-1"); see replyRegisters.
   */
  readonly regs: readonly (bigint | number | string)[];
}

/** What an in-process handler may do besides answering: read and write the calling VM's RAM, only. */
export interface DelegateContext {
  readGuest(ipa: bigint, length: number): Uint8Array | null;
  writeGuest(ipa: bigint, data: Uint8Array): boolean;
}

export interface DelegateModule {
  handle(req: DelegateRequest, ctx: DelegateContext): DelegateReply | Promise<DelegateReply>;
}

export function requestOf(call: SmcCall, origin: CallOrigin): DelegateRequest {
  return {
    vm: origin.vmName,
    vmId: origin.vmId,
    vcpu: origin.vcpu,
    fid: call.fid,
    smc64: call.smc64,
    conduit: call.conduit,
    args: call.snapshot().slice(1),
  };
}

/**
 * A reply's registers, checked exactly: 1 to 18 values, each a 64-bit register value in one of its
 * documented forms (docs/delegates.md):
 *
 * - a bigint from -2^63 to 2^64 - 1 (in-process handlers);
 * - a number that is a safe integer (|v| < 2^53), not -0: larger doubles are not exact (1e300 is no register);
 * - a string: "0x" and 1 to 16 hex digits, or a decimal integer without leading zeros, below 2^64; either
 *   may have a leading "-" for a value from -2^63 to -1 ("-0" is not a register value).
 *
 * Negative values are two's complement. Anything else throws, naming the register; the caller answers the
 * guest -1 (SMCCC NOT_SUPPORTED).
 */
export function replyRegisters(reply: unknown): bigint[] {
  const regs = typeof reply === "object" && reply !== null ? (reply as { regs?: unknown }).regs : undefined;
  if (!Array.isArray(regs) || regs.length === 0 || regs.length > 18) throw new Error("a delegate reply has regs: an array of 1-18 values");
  return regs.map((v: unknown, n) => {
    const r = registerValue(v);
    if (r === null) throw new Error(`delegate reply regs[${n}] is not a 64-bit register value: ${shortly(v)}`);
    return r;
  });
}

const TWO_63 = 1n << 63n;
const TWO_64 = 1n << 64n;
const HEX = /^(-?)0x([0-9a-fA-F]{1,16})$/;
const DECIMAL = /^(-?)(0|[1-9][0-9]{0,19})$/;

/** One register value in a documented form, as an unsigned 64-bit value; null when it is none. */
export function registerValue(v: unknown): bigint | null {
  let neg = false;
  let magnitude: bigint;
  if (typeof v === "bigint") {
    neg = v < 0n;
    magnitude = neg ? -v : v;
  } else if (typeof v === "number") {
    if (!Number.isSafeInteger(v) || Object.is(v, -0)) return null;
    neg = v < 0;
    magnitude = BigInt(Math.abs(v));
  } else if (typeof v === "string") {
    const hex = HEX.exec(v);
    const m = hex ?? DECIMAL.exec(v);
    if (m === null) return null;
    neg = m[1] === "-";
    magnitude = BigInt(hex !== null ? `0x${m[2]}` : m[2]!);
    if (neg && magnitude === 0n) return null;
  } else {
    return null;
  }
  if (neg ? magnitude > TWO_63 : magnitude >= TWO_64) return null;
  return BigInt.asUintN(64, neg ? -magnitude : magnitude);
}

/** A value for an error message: what it was, cut short (a handler's reply may be a megabyte). */
function shortly(v: unknown): string {
  const text = typeof v === "bigint" ? `${v}n` : typeof v === "number" ? String(v) : typeof v === "string" ? JSON.stringify(v) : typeof v;
  return text.length > 48 ? `${text.slice(0, 45)}...` : text;
}

/** Copies a reply into the result once every register is checked; a malformed reply throws (the guest gets -1). */
export function applyReply(reply: unknown, res: SmcResult): void {
  const regs = replyRegisters(reply);
  for (let n = 0; n < regs.length; n++) res.setBig(n, regs[n]!);
}

export function hex(v: bigint | number): string {
  return "0x" + BigInt.asUintN(64, BigInt(v)).toString(16);
}
