/**
 * The shim ↔ hypervisor frames, protocol version 2 (docs/qemu-channel.md; shim/protocol.h is the other
 * side). Pure codec: no I/O. Requests are 208 bytes, replies 184, all little-endian.
 */
export const MAGIC = 0x5643_4d53; // "SMCV"
export const VERSION = 2;
export const REQUEST_SIZE = 208;
export const REPLY_SIZE = 184;

export const REQ = { HELLO: 1, TRAP: 2, PHYS_RESULT: 3, UNEXPECTED: 4 } as const;
export const RSP = { RETURN: 1, UNDEF: 2, PHYS_SMC: 3, RESUME_AT: 4, CPU_OFF: 5, SYSTEM_OFF: 6, SYSTEM_RESET: 7, STOP: 8, FAST_TABLE: 9 } as const;
export const RESUME_WFI = 1n;
/** RESUME_AT flag: EL1 runs AArch32 (SVC mode; bit 0 of the entry point selects Thumb). */
export const RESUME_AARCH32 = 2n;
/** Fast-table key bit: the shim keeps W1 of this call as the CPU's SMCCC_ARCH_WORKAROUND_2 state. */
export const FAST_RECORD_WA2 = 1n << 34n;

export interface Request {
  readonly type: number;
  readonly vcpu: number;
  readonly esr: number;
  readonly elr: bigint;
  readonly spsr: bigint;
  readonly far: bigint;
  readonly cntvct: bigint;
  /** Calls the shim answered from its fast table since its previous frame. */
  readonly localCalls: bigint;
  /** SMCCC_ARCH_WORKAROUND_2 as the guest last set it in the shim's fast path: 0 unknown, 1 off, 2 on. */
  readonly wa2State: number;
  /** x0..x17 as 36 little-endian 32-bit words (x_n low at [2n]): the router's register view. */
  readonly words: Uint32Array;
}

export type DecodeResult = { ok: true; request: Request } | { ok: false; reason: string };

/** Decodes one request frame; anything malformed is a reason, never an exception. */
export function decodeRequest(frame: Uint8Array, vcpus: number): DecodeResult {
  if (frame.length !== REQUEST_SIZE) return { ok: false, reason: `request frame of ${frame.length} bytes (want ${REQUEST_SIZE})` };
  const v = new DataView(frame.buffer, frame.byteOffset, frame.length);
  const magic = v.getUint32(0, true);
  if (magic !== MAGIC) return { ok: false, reason: `bad magic 0x${magic.toString(16)}` };
  const version = v.getUint16(4, true);
  if (version !== VERSION) return { ok: false, reason: `protocol version ${version} (want ${VERSION})` };
  const type = v.getUint16(6, true);
  if (type < REQ.HELLO || type > REQ.UNEXPECTED) return { ok: false, reason: `unknown request type ${type}` };
  const vcpu = v.getUint32(8, true);
  if (vcpu >= vcpus) return { ok: false, reason: `vCPU ${vcpu} does not exist (the VM has ${vcpus})` };
  const words = new Uint32Array(36);
  for (let i = 0; i < 36; i++) words[i] = v.getUint32(64 + 4 * i, true);
  const wa2State = Number(v.getBigUint64(56, true));
  if (wa2State > 2) return { ok: false, reason: `WORKAROUND_2 state ${wa2State} (want 0, 1 or 2)` };
  return {
    ok: true,
    request: {
      type,
      vcpu,
      esr: v.getUint32(12, true),
      elr: v.getBigUint64(16, true),
      spsr: v.getBigUint64(24, true),
      far: v.getBigUint64(32, true),
      cntvct: v.getBigUint64(40, true),
      localCalls: v.getBigUint64(48, true),
      wa2State,
      words,
    },
  };
}

export interface Reply {
  readonly type: number;
  readonly count?: number;
  readonly advance?: number;
  readonly entry?: bigint;
  readonly flags?: bigint;
  /** x0..x17 as 64-bit values, or as the router's 36-word view. */
  readonly regs?: readonly bigint[] | Uint32Array;
}

export function encodeReply(r: Reply): Uint8Array {
  const out = new Uint8Array(REPLY_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint16(4, VERSION, true);
  v.setUint16(6, r.type, true);
  v.setUint32(8, r.count ?? 0, true);
  v.setUint32(12, r.advance ?? 0, true);
  v.setBigUint64(16, BigInt.asUintN(64, r.entry ?? 0n), true);
  v.setBigUint64(24, r.flags ?? 0n, true);
  const regs = r.regs;
  if (regs instanceof Uint32Array) {
    for (let i = 0; i < Math.min(36, regs.length); i++) v.setUint32(40 + 4 * i, regs[i]!, true);
  } else if (regs) {
    regs.slice(0, 18).forEach((x, i) => v.setBigUint64(40 + 8 * i, BigInt.asUintN(64, x), true));
  }
  return out;
}

/** Encodes a request (what the shim sends): for tests and the channel's own checks. */
export function encodeRequest(r: Omit<Request, "words" | "wa2State"> & { wa2State?: number; regs?: readonly bigint[] }): Uint8Array {
  const out = new Uint8Array(REQUEST_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint16(4, VERSION, true);
  v.setUint16(6, r.type, true);
  v.setUint32(8, r.vcpu, true);
  v.setUint32(12, r.esr >>> 0, true);
  v.setBigUint64(16, r.elr, true);
  v.setBigUint64(24, r.spsr, true);
  v.setBigUint64(32, r.far, true);
  v.setBigUint64(40, r.cntvct, true);
  v.setBigUint64(48, r.localCalls, true);
  v.setBigUint64(56, BigInt(r.wa2State ?? 0), true);
  (r.regs ?? []).slice(0, 18).forEach((x, i) => v.setBigUint64(64 + 8 * i, BigInt.asUintN(64, x), true));
  return out;
}

/** Fast-table entry key: the function ID and the conduits the shim may answer it for locally. */
export function fastKey(fid: number, conduits: { hvc: boolean; smc: boolean; recordsWa2?: boolean }): bigint {
  return BigInt(fid >>> 0) | (conduits.hvc ? 1n << 32n : 0n) | (conduits.smc ? 1n << 33n : 0n) | (conduits.recordsWa2 ? FAST_RECORD_WA2 : 0n);
}

/** Splits a byte stream into whole frames; keeps the remainder for the next chunk. */
export class FrameSplitter {
  private pending = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const all = this.pending.length === 0 ? chunk : concat(this.pending, chunk);
    const frames: Uint8Array[] = [];
    let off = 0;
    while (all.length - off >= REQUEST_SIZE) {
      frames.push(all.slice(off, off + REQUEST_SIZE));
      off += REQUEST_SIZE;
    }
    this.pending = all.slice(off);
    return frames;
  }

  get buffered(): number {
    return this.pending.length;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
