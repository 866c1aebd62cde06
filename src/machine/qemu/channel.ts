/**
 * The shim ↔ hypervisor channel, protocol version 4 (docs/qemu-channel.md; shim/protocol.h is the other
 * side): the host page the hypervisor writes before QEMU starts, and the frames in each vCPU's mailbox.
 * Pure codec: no I/O. All little-endian.
 */
import { SHIM_REGION } from "./layout.js";

export const MAGIC = 0x5643_4d53; // "SMCV"
export const HOST_MAGIC = 0x4843_4d53; // "SMCH"
export const VERSION = 4;
export const REQUEST_SIZE = 224;
export const REPLY_SIZE = 184;

/** A mailbox page (struct mailbox): sequence words, then the request and reply frames. */
export const MAILBOX = {
  reqSeq: 0x00,
  rspSeq: 0x04,
  sleeping: 0x08,
  /** Wake-up waits (shim/suspend.c): the host bumps wakeReq; the shim sets `waiting` and counts the ends. */
  wakeReq: 0x0c,
  waiting: 0x10,
  wakes: 0x14,
  wakesIrq: 0x18,
  wakesHost: 0x1c,
  wakesBound: 0x20,
  wakeLatLast: 0x24,
  wakeLatCount: 0x28,
  wakeLatMax: 0x2c,
  wakeLatSum: 0x30,
  /** Waits (for a reply or a wake-up) the shim spent polling: the GIC's running priority let no wake source through. */
  blockedWaits: 0x38,
  request: 0x40,
  reply: 0x140,
  /** After the frames: the last WAKE_LOG_SIZE timer wake-up latencies (ticks), a ring by wakeLatCount. */
  wakeLog: 0x800,
} as const;
export const WAKE_LOG_SIZE = 256;

export const REQ = { HELLO: 1, TRAP: 2, PHYS_RESULT: 3, UNEXPECTED: 4, MMIO: 5, HANDOVER: 6 } as const;
export const RSP = {
  RETURN: 1,
  UNDEF: 2,
  PHYS_SMC: 3,
  RESUME_AT: 4,
  CPU_OFF: 5,
  SYSTEM_OFF: 6,
  SYSTEM_RESET: 7,
  STOP: 8,
  MMIO: 9,
  /** A handed-over kernel's HVC_SOFT_RESTART: enter `entry` at EL1 with the MMU off, x0..x3 from the reply (docs/handover.md). */
  RESTART: 10,
  RETURN_WAKE: 11,
} as const;
export const RESUME_WFI = 1n;
/** RESUME_AT flag: EL1 runs AArch32 (SVC mode; bit 0 of the entry point selects Thumb). */
export const RESUME_AARCH32 = 2n;
/** RESUME_AT flag: enter at EL2 with no stage 2 (a kernel booted as on a board without a hypervisor). */
export const RESUME_EL2 = 4n;
/** RESUME_AT flag: wait for a wake-up event before entering (a powered-down CPU_SUSPEND). */
export const RESUME_WAKE = 8n;
/** Fast-table key bit: the shim keeps W1 of this call as the CPU's SMCCC_ARCH_WORKAROUND_2 state. */
export const FAST_RECORD_WA2 = 1n << 34n;
export const FAST_ENTRIES = 8;
export const HOST_GICV3 = 1;
/** Host-page flags: the VM boots at EL2 and may hand EL2 over; the shim waits for wake-up events; device window. */
export const HOST_HANDOVER = 2;
export const HOST_WAKE = 4;
export const HOST_MMIO = 8;
/** The device window (shim/protocol.h MMIO_WINDOW): IPAs whose accesses become REQ_MMIO under HOST_MMIO. */
export const MMIO_WINDOW = 0x0c00_0000n;
export const MMIO_WINDOW_SIZE = 0x1000n;
/** RSP_MMIO flag: the access is refused (the guest gets a synchronous external abort). */
export const MMIO_REFUSE = 1n;

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

/**
 * One vCPU's request, as the hypervisor holds it: a private copy of the mailbox's frame (taken once, so the
 * shim cannot change what is checked or used after the checks) and views of its fields, without an
 * allocation per request. `words` is x0..x17 as the router's 36-word register view, which the router
 * overwrites with the results and the RETURN reply carries back.
 */
export class RequestFrame {
  readonly bytes = new Uint8Array(REQUEST_SIZE);
  private readonly v = new DataView(this.bytes.buffer);
  readonly words = new Uint32Array(this.bytes.buffer, 80, 36);

  /** Copies a frame in and checks it: null, or what is wrong with it. */
  load(from: Uint8Array, vcpus: number): string | null {
    if (from.length !== REQUEST_SIZE) return `request frame of ${from.length} bytes (want ${REQUEST_SIZE})`;
    this.bytes.set(from);
    const v = this.v;
    const magic = v.getUint32(0, true);
    if (magic !== MAGIC) return `bad magic 0x${magic.toString(16)}`;
    const version = v.getUint16(4, true);
    if (version !== VERSION) return `protocol version ${version} (want ${VERSION})`;
    const type = v.getUint16(6, true);
    if (type < REQ.HELLO || type > REQ.HANDOVER) return `unknown request type ${type}`;
    const vcpu = v.getUint32(8, true);
    if (vcpu >= vcpus) return `vCPU ${vcpu} does not exist (the VM has ${vcpus})`;
    if (v.getUint32(60, true) !== 0 || v.getUint32(56, true) > 2) return `WORKAROUND_2 state ${v.getBigUint64(56, true)} (want 0, 1 or 2)`;
    return null;
  }

  get type(): number {
    return this.v.getUint16(6, true);
  }
  get vcpu(): number {
    return this.v.getUint32(8, true);
  }
  get esr(): number {
    return this.v.getUint32(12, true);
  }
  get elr(): bigint {
    return this.v.getBigUint64(16, true);
  }
  /** SPSR_EL2's low 32 bits (all of PSTATE the router needs). */
  get spsr32(): number {
    return this.v.getUint32(24, true);
  }
  get spsr(): bigint {
    return this.v.getBigUint64(24, true);
  }
  get far(): bigint {
    return this.v.getBigUint64(32, true);
  }
  get cntvct(): bigint {
    return this.v.getBigUint64(40, true);
  }
  /** Calls the shim answered from its fast table since its previous request (a count, safe as a number). */
  get localCalls(): number {
    return this.v.getUint32(48, true) + this.v.getUint32(52, true) * 2 ** 32;
  }
  get wa2State(): number {
    return this.v.getUint32(56, true);
  }
  get aborts(): number {
    return this.v.getUint32(64, true) + this.v.getUint32(68, true) * 2 ** 32;
  }
  get abortIpa(): bigint {
    return this.v.getBigUint64(72, true);
  }
}

/** Decodes one request frame into a value (tests and tools; the hypervisor uses RequestFrame). */
export function decodeRequest(frame: Uint8Array, vcpus: number): DecodeResult {
  const f = new RequestFrame();
  const bad = f.load(frame, vcpus);
  if (bad !== null) return { ok: false, reason: bad };
  return {
    ok: true,
    request: {
      type: f.type,
      vcpu: f.vcpu,
      esr: f.esr,
      elr: f.elr,
      spsr: f.spsr,
      far: f.far,
      cntvct: f.cntvct,
      localCalls: BigInt(f.localCalls),
      wa2State: f.wa2State,
      aborts: BigInt(f.aborts),
      abortIpa: f.abortIpa,
      words: f.words.slice(),
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

/** Writes a reply frame into `out` (REPLY_SIZE bytes at a 4-byte aligned offset: a mailbox's reply area or a test buffer). */
export function writeReply(out: Uint8Array, r: Reply): void {
  const v = new DataView(out.buffer, out.byteOffset, REPLY_SIZE);
  out.fill(0, 0, REPLY_SIZE);
  writeReplyTo(v, r);
}

/** A mailbox's reply area, with its views made once (the hypervisor writes one reply per request). */
export class ReplyArea {
  private readonly v: DataView;
  private readonly regs: Uint32Array;
  constructor(private readonly out: Uint8Array) {
    this.v = new DataView(out.buffer, out.byteOffset, REPLY_SIZE);
    this.regs = new Uint32Array(out.buffer, out.byteOffset + 40, 36);
  }
  write(r: Reply): void {
    if (r.regs instanceof Uint32Array && r.regs.length === 36) {
      // The hot case, a RETURN with the router's registers: header fields, then all 36 words at once.
      this.out.fill(0, 0, 40);
      const v = this.v;
      v.setUint32(0, MAGIC, true);
      v.setUint16(4, VERSION, true);
      v.setUint16(6, r.type, true);
      v.setUint32(8, r.count ?? 0, true);
      v.setUint32(12, r.advance ?? 0, true);
      this.regs.set(r.regs);
      return;
    }
    this.out.fill(0, 0, REPLY_SIZE);
    writeReplyTo(this.v, r);
  }
}

function writeReplyTo(v: DataView, r: Reply): void {
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
  /** More host-page flags (HOST_HANDOVER, ...) besides the GIC version's. */
  readonly flags?: number;
  /** Emulated devices in the device window (HOST_MMIO). */
  readonly mmio?: boolean;
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
  v.setUint32(12, (h.gicVersion === 3 ? HOST_GICV3 : 0) | (h.mmio ? HOST_MMIO : 0) | (h.flags ?? 0), true);
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

/** How one vCPU's wake-up waits ended (the shim's counters in its mailbox). */
export interface WakeStats {
  /** Waits ended, by any cause. */
  readonly wakes: number;
  /** ... by an interrupt pending for the guest. */
  readonly irq: number;
  /** ... by the host's wake-up event. */
  readonly host: number;
  /** ... standby waits that reached their bound. */
  readonly bound: number;
  /**
   * Waits of either kind (a reply, a wake-up) the shim spent polling instead of in WFI, because the guest's
   * running priority was 0x00 and nothing could have ended the WFI (shim/gic.c, wake_possible).
   */
  readonly blocked: number;
  /** Wake-ups by the guest's virtual timer whose latency was measured, in counter ticks. */
  readonly latency: { readonly count: number; readonly last: number; readonly max: number; readonly sum: bigint };
  /** The latest of those latencies (up to WAKE_LOG_SIZE), oldest first. */
  readonly samples: readonly number[];
}

/** Reads the wake-up counters and latency log from a mailbox page. */
export function decodeWakeStats(page: Uint8Array): WakeStats {
  if (page.length < MAILBOX.wakeLog + 4 * WAKE_LOG_SIZE) throw new Error(`a mailbox page is ${MAILBOX.wakeLog + 4 * WAKE_LOG_SIZE} bytes at least (have ${page.length})`);
  const v = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const u = (o: number) => v.getUint32(o, true);
  const count = u(MAILBOX.wakeLatCount);
  const samples: number[] = [];
  for (let n = Math.max(0, count - WAKE_LOG_SIZE); n < count; n++) samples.push(u(MAILBOX.wakeLog + 4 * (n % WAKE_LOG_SIZE)));
  return {
    samples,
    wakes: u(MAILBOX.wakes),
    irq: u(MAILBOX.wakesIrq),
    host: u(MAILBOX.wakesHost),
    bound: u(MAILBOX.wakesBound),
    blocked: u(MAILBOX.blockedWaits),
    latency: { count: u(MAILBOX.wakeLatCount), last: u(MAILBOX.wakeLatLast), max: u(MAILBOX.wakeLatMax), sum: v.getBigUint64(MAILBOX.wakeLatSum, true) },
  };
}

/** Where vCPU `n`'s mailbox is in the RAM file. */
export function mailboxOffset(vcpu: number): number {
  return SHIM_REGION.mailboxes + vcpu * SHIM_REGION.mailboxStride;
}
