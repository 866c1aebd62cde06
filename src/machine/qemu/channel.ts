/**
 * The shim ↔ hypervisor channel, protocol version 3 (docs/qemu-channel.md; shim/protocol.h is the other
 * side): the host page the hypervisor writes before QEMU starts, and the frames in each vCPU's mailbox.
 * Pure codec: no I/O. All little-endian.
 */
import { SHIM_REGION } from "./layout.js";

export const MAGIC = 0x5643_4d53; // "SMCV"
export const HOST_MAGIC = 0x4843_4d53; // "SMCH"
export const VERSION = 3;
export const REQUEST_SIZE = 224;
export const REPLY_SIZE = 184;

/** A mailbox page (struct mailbox): sequence words, then the request and reply frames. */
export const MAILBOX = {
  reqSeq: 0x00,
  rspSeq: 0x04,
  sleeping: 0x08,
  request: 0x40,
  reply: 0x140,
} as const;

export const REQ = { HELLO: 1, TRAP: 2, PHYS_RESULT: 3, UNEXPECTED: 4 } as const;
export const RSP = { RETURN: 1, UNDEF: 2, PHYS_SMC: 3, RESUME_AT: 4, CPU_OFF: 5, SYSTEM_OFF: 6, SYSTEM_RESET: 7, STOP: 8 } as const;
export const RESUME_WFI = 1n;
/** RESUME_AT flag: EL1 runs AArch32 (SVC mode; bit 0 of the entry point selects Thumb). */
export const RESUME_AARCH32 = 2n;
/** Fast-table key bit: the shim keeps W1 of this call as the CPU's SMCCC_ARCH_WORKAROUND_2 state. */
export const FAST_RECORD_WA2 = 1n << 34n;
export const FAST_ENTRIES = 8;
export const HOST_GICV3 = 1;

export interface Request {
  readonly type: number;
  readonly vcpu: number;
  readonly esr: number;
  readonly elr: bigint;
  readonly spsr: bigint;
  readonly far: bigint;
  readonly cntvct: bigint;
  /** Calls the shim answered from its fast table since its previous request. */
  readonly localCalls: bigint;
  /** SMCCC_ARCH_WORKAROUND_2 as the guest last set it in the shim's fast path: 0 unknown, 1 off, 2 on. */
  readonly wa2State: number;
  /** Accesses outside the guest's stage-2 map the shim refused since its previous request. */
  readonly aborts: bigint;
  /** The last refused access's IPA. */
  readonly abortIpa: bigint;
  /** x0..x17 as 36 little-endian 32-bit words (x_n low at [2n]): the router's register view. */
  readonly words: Uint32Array;
}

export type DecodeResult = { ok: true; request: Request } | { ok: false; reason: string };

/** Decodes one request frame (a private copy of the mailbox's bytes); anything malformed is a reason, never an exception. */
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
  const wa2 = v.getBigUint64(56, true);
  if (wa2 > 2n) return { ok: false, reason: `WORKAROUND_2 state ${wa2} (want 0, 1 or 2)` };
  const words = new Uint32Array(36);
  for (let i = 0; i < 36; i++) words[i] = v.getUint32(80 + 4 * i, true);
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
      wa2State: Number(wa2),
      aborts: v.getBigUint64(64, true),
      abortIpa: v.getBigUint64(72, true),
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

/** Writes a reply frame into `out` (REPLY_SIZE bytes; a mailbox's reply area or a test buffer). */
export function writeReply(out: Uint8Array, r: Reply): void {
  const v = new DataView(out.buffer, out.byteOffset, REPLY_SIZE);
  out.fill(0, 0, REPLY_SIZE);
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
}

export function encodeReply(r: Reply): Uint8Array {
  const out = new Uint8Array(REPLY_SIZE);
  writeReply(out, r);
  return out;
}

/** Encodes a request (what the shim sends): for tests and the channel's own checks. */
export function encodeRequest(r: Omit<Request, "words" | "wa2State" | "aborts" | "abortIpa"> & { wa2State?: number; aborts?: bigint; abortIpa?: bigint; regs?: readonly bigint[] }): Uint8Array {
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
  v.setBigUint64(64, r.aborts ?? 0n, true);
  v.setBigUint64(72, r.abortIpa ?? 0n, true);
  (r.regs ?? []).slice(0, 18).forEach((x, i) => v.setBigUint64(80 + 8 * i, BigInt.asUintN(64, x), true));
  return out;
}

/** Fast-table entry key: the function ID and the conduits the shim may answer it for locally. */
export function fastKey(fid: number, conduits: { hvc: boolean; smc: boolean; recordsWa2?: boolean }): bigint {
  return BigInt(fid >>> 0) | (conduits.hvc ? 1n << 32n : 0n) | (conduits.smc ? 1n << 33n : 0n) | (conduits.recordsWa2 ? FAST_RECORD_WA2 : 0n);
}

export interface HostPage {
  readonly vcpus: number;
  readonly gicVersion: 2 | 3;
  readonly vttbr: bigint;
  readonly vtcr: bigint;
  readonly gicd: bigint;
  /** GICv2: the CPU interface; GICv3: vCPU 0's redistributor. */
  readonly gicc: bigint;
  /** vCPU 0's doorbell transport (virtio-mmio), stride 0x200. */
  readonly doorbell: bigint;
  readonly doorbellIntid: number;
  /** Counter ticks a waiting vCPU polls before it sleeps. */
  readonly spinTicks: number;
  /** Longest sleep before a vCPU looks again without a doorbell. */
  readonly sleepTicks: number;
  /** key (fastKey), x0 pairs. */
  readonly fast: readonly (readonly [bigint, bigint])[];
}

export const HOST_PAGE_SIZE = 200;

/** The host page (struct host_page), read by every CPU of the machine. */
export function encodeHostPage(h: HostPage): Uint8Array {
  if (h.fast.length > FAST_ENTRIES) throw new Error(`at most ${FAST_ENTRIES} fast-table entries (have ${h.fast.length})`);
  const out = new Uint8Array(HOST_PAGE_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, HOST_MAGIC, true);
  v.setUint32(4, VERSION, true);
  v.setUint32(8, h.vcpus, true);
  v.setUint32(12, h.gicVersion === 3 ? HOST_GICV3 : 0, true);
  v.setBigUint64(16, h.vttbr, true);
  v.setBigUint64(24, h.vtcr, true);
  v.setBigUint64(32, h.gicd, true);
  v.setBigUint64(40, h.gicc, true);
  v.setBigUint64(48, h.doorbell, true);
  v.setUint32(56, h.doorbellIntid, true);
  v.setUint32(60, h.spinTicks, true);
  v.setUint32(64, h.sleepTicks, true);
  v.setUint32(68, h.fast.length, true);
  h.fast.forEach(([key, value], i) => {
    v.setBigUint64(72 + 16 * i, key, true);
    v.setBigUint64(80 + 16 * i, value, true);
  });
  return out;
}

/** Where vCPU `n`'s mailbox is in the RAM file. */
export function mailboxOffset(vcpu: number): number {
  return SHIM_REGION.mailboxes + vcpu * SHIM_REGION.mailboxStride;
}
