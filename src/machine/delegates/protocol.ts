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
  /** Result registers from x0; negative numbers are two's complement. At most what the convention returns. */
  readonly regs: readonly (bigint | number)[];
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

/** Copies a reply into the result; a malformed reply is an error (the guest gets -1). */
export function applyReply(reply: unknown, res: SmcResult): void {
  const regs = (reply as { regs?: unknown } | null)?.regs;
  if (!Array.isArray(regs) || regs.length === 0 || regs.length > 18) throw new Error("a delegate reply has regs: an array of 1-18 values");
  regs.forEach((v, n) => {
    if (typeof v === "bigint") res.setBig(n, v);
    else if (typeof v === "number" && Number.isInteger(v)) res.set(n, v);
    else if (typeof v === "string" && /^-?(0x[0-9a-fA-F]+|[0-9]+)$/.test(v)) res.setBig(n, v.startsWith("-") ? -BigInt(v.slice(1)) : BigInt(v));
    else throw new Error(`delegate reply regs[${n}] is not an integer: ${JSON.stringify(String(v))}`);
  });
}

export function hex(v: bigint | number): string {
  return "0x" + BigInt.asUintN(64, BigInt(v)).toString(16);
}
