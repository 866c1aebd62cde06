/**
 * The SPMC's notification state for VMs (DEN0077 v1.1+, notifications): the bitmaps the hypervisor
 * creates for its VMs (FFA_NOTIFICATION_BITMAP_CREATE/DESTROY), which partition may signal which bits of
 * a VM (BIND/UNBIND, made by the hypervisor for its VM), the bits partitions set (SET, through their
 * PartitionContext), and what the hypervisor reads back (GET, INFO_GET).
 *
 * Global notifications only: per-vCPU binding is refused (Xen's mediator supports no more; Xen
 * xen/arch/arm/tee/ffa_notif.c). VM-to-VM notifications are the hypervisor's own business and never
 * reach the SPMC.
 */
import { FFA_NOTIFICATION, FFA_RET } from "../../smccc/ffa/abi.js";

/** BIND flags: only bit 0 (per-vCPU) is defined, [31:1] MBZ. */
const BIND_FLAGS_MBZ = 0xffff_fffe;
/** GET flags: [3:0] select bitmaps, [31:4] MBZ. */
const GET_FLAGS_MBZ = 0xffff_fff0;
/** INFO_GET: at most this many endpoint lists in one answer (5 bits of count; x3-x17 hold 60 IDs). */
export const INFO_GET_MAX_LISTS = 20;

interface Bitmap {
  readonly vcpus: number;
  /** Bit number → the partition that may set it. */
  readonly bindings: Map<number, number>;
  /** Bits set by partitions and not yet read with GET. */
  pending: bigint;
  /** INFO_GET reported this VM since its last SET. */
  reported: boolean;
}

export interface NotificationCounters {
  readonly bitmaps: number;
  readonly bindings: number;
  readonly pending: number;
}

export interface NotificationGet {
  readonly fromSp: bigint;
}

/** A partition `sp` that may talk to `vm`: "ok", "unknown" (no such partition) or "denied". */
export type PeerCheck = (sp: number, vm: number) => "ok" | "unknown" | "denied";

export class Notifications {
  private readonly bitmaps = new Map<number, Bitmap>();

  constructor(
    private readonly maxVms: number,
    private readonly peer: PeerCheck,
    /** The schedule receiver interrupt: the normal world should ask INFO_GET and run `vm`. */
    private readonly scheduleReceiver: (vm: number) => void,
  ) {}

  has(vm: number): boolean {
    return this.bitmaps.has(vm);
  }

  size(): number {
    return this.bitmaps.size;
  }

  /** FFA_NOTIFICATION_BITMAP_CREATE for VM `vm` with `vcpus` vCPUs. */
  create(vm: number, vcpus: number, knownVms: number): number {
    if (this.bitmaps.has(vm)) return FFA_RET.DENIED;
    if (vcpus === 0) return FFA_RET.INVALID_PARAMETERS;
    if (knownVms >= this.maxVms) return FFA_RET.NO_MEMORY;
    this.bitmaps.set(vm, { vcpus, bindings: new Map(), pending: 0n, reported: false });
    return 0;
  }

  /** FFA_NOTIFICATION_BITMAP_DESTROY: DENIED while notifications are pending (Hafnium does the same). */
  destroy(vm: number): number {
    const b = this.bitmaps.get(vm);
    if (b === undefined) return FFA_RET.INVALID_PARAMETERS;
    if (b.pending !== 0n) return FFA_RET.DENIED;
    this.bitmaps.delete(vm);
    return 0;
  }

  /** The VM is gone: its bitmap goes whatever it holds. */
  forget(vm: number): void {
    this.bitmaps.delete(vm);
  }

  /** FFA_NOTIFICATION_BIND: partition `sp` may signal `bits` of VM `vm`. */
  bind(vm: number, sp: number, flags: number, bits: bigint): number {
    const b = this.bitmaps.get(vm);
    if (b === undefined) return FFA_RET.INVALID_PARAMETERS;
    if ((flags & BIND_FLAGS_MBZ) !== 0 || (flags & FFA_NOTIFICATION.FLAG_PER_VCPU) !== 0) return FFA_RET.INVALID_PARAMETERS;
    if (bits === 0n) return FFA_RET.INVALID_PARAMETERS;
    const p = this.peer(sp, vm);
    if (p === "unknown") return FFA_RET.INVALID_PARAMETERS;
    if (p === "denied") return FFA_RET.DENIED;
    for (const n of bitNumbers(bits)) {
      const owner = b.bindings.get(n);
      if (owner !== undefined && owner !== sp) return FFA_RET.DENIED;
    }
    for (const n of bitNumbers(bits)) b.bindings.set(n, sp);
    return 0;
  }

  /** FFA_NOTIFICATION_UNBIND: every bit must be bound to `sp`; its pending state goes with it. */
  unbind(vm: number, sp: number, flags: number, bits: bigint): number {
    const b = this.bitmaps.get(vm);
    if (b === undefined) return FFA_RET.INVALID_PARAMETERS;
    if (flags !== 0 || bits === 0n) return FFA_RET.INVALID_PARAMETERS;
    if (bitNumbers(bits).some((n) => b.bindings.get(n) !== sp)) return FFA_RET.DENIED;
    for (const n of bitNumbers(bits)) b.bindings.delete(n);
    b.pending &= ~bits;
    return 0;
  }

  /** FFA_NOTIFICATION_SET from partition `sp` to VM `vm`. */
  set(sp: number, vm: number, bits: bigint): number {
    const b = this.bitmaps.get(vm);
    if (b === undefined || bits === 0n || bits >> 64n !== 0n || bits < 0n) return FFA_RET.INVALID_PARAMETERS;
    if (bitNumbers(bits).some((n) => b.bindings.get(n) !== sp)) return FFA_RET.DENIED;
    b.pending |= bits;
    b.reported = false;
    this.scheduleReceiver(vm);
    return 0;
  }

  /** FFA_NOTIFICATION_GET for VM `vm`: reads and clears the partitions' bits when `flags` asks for them. */
  get(vm: number, vcpu: number, flags: number): NotificationGet | number {
    const b = this.bitmaps.get(vm);
    if (b === undefined) return FFA_RET.INVALID_PARAMETERS;
    if ((flags & GET_FLAGS_MBZ) !== 0 || vcpu >= b.vcpus) return FFA_RET.INVALID_PARAMETERS;
    if ((flags & FFA_NOTIFICATION.GET_SP) === 0) return { fromSp: 0n };
    const fromSp = b.pending;
    b.pending = 0n;
    return { fromSp };
  }

  /**
   * FFA_NOTIFICATION_INFO_GET: the VMs with notifications not reported yet, one list each (global
   * notifications: the ID alone), at most INFO_GET_MAX_LISTS; `more` when some were left for next time.
   */
  infoGet(): { ids: number[]; more: boolean } {
    const ids: number[] = [];
    let more = false;
    for (const [vm, b] of this.bitmaps) {
      if (b.pending === 0n || b.reported) continue;
      if (ids.length === INFO_GET_MAX_LISTS) {
        more = true;
        break;
      }
      ids.push(vm);
      b.reported = true;
    }
    return { ids, more };
  }

  counters(vm: number): NotificationCounters {
    const b = this.bitmaps.get(vm);
    if (b === undefined) return { bitmaps: 0, bindings: 0, pending: 0 };
    return { bitmaps: 1, bindings: b.bindings.size, pending: bitNumbers(b.pending).length };
  }
}

function bitNumbers(bits: bigint): number[] {
  const out: number[] = [];
  for (let n = 0; n < 64; n++) if (((bits >> BigInt(n)) & 1n) !== 0n) out.push(n);
  return out;
}
