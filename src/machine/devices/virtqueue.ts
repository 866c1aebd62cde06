/**
 * A split virtqueue (virtio spec v1.2 §2.7) as a device walks it, in guest RAM through the bounds-checked
 * GuestMemory port: every address and length comes from the guest and is checked before use. The driver's
 * three areas (descriptor table, available ring, used ring) are read with copies, never in place, so a
 * value checked is the value used. Pure (no I/O beyond the port).
 */
import type { GuestMemory } from "../../router/ports.js";

/** Descriptor flags (§2.7.5). */
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** Available ring flag (§2.7.6): the driver does not want an interrupt. */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

/** One buffer of a descriptor chain: guest RAM the device may read (out) or write (in). */
export interface Segment {
  readonly addr: bigint;
  readonly len: number;
  readonly writable: boolean;
}

export interface Chain {
  readonly head: number;
  readonly segments: readonly Segment[];
}

/** Bytes a whole chain may describe at most: more than any guest RAM QEMU gives a VM here. */
export const CHAIN_MAX_BYTES = 2 ** 32;

export class VirtQueue {
  /** Queue size (QueueNum), a power of two up to the device's maximum. */
  num = 0;
  ready = false;
  desc = 0n;
  driver = 0n;
  device = 0n;
  /** The next available-ring entry the device takes. */
  lastAvail = 0;
  /** The used ring's index, kept here: the device owns it, whatever the guest writes there. */
  usedIdx = 0;

  constructor(readonly index: number, readonly max: number) {}

  reset(): void {
    this.num = 0;
    this.ready = false;
    this.desc = this.driver = this.device = 0n;
    this.lastAvail = 0;
    this.usedIdx = 0;
  }

  /** Whether the driver's areas lie in guest RAM and are aligned as §2.7 requires. */
  check(mem: GuestMemory): string | null {
    const n = this.num;
    if (n === 0 || n > this.max || (n & (n - 1)) !== 0) return `queue ${this.index}: size ${n} is not a power of two up to ${this.max}`;
    const areas: [string, bigint, number, bigint][] = [
      ["descriptor table", this.desc, 16 * n, 16n],
      ["available ring", this.driver, 6 + 2 * n, 2n],
      ["used ring", this.device, 6 + 8 * n, 4n],
    ];
    for (const [name, at, len, align] of areas) {
      if (at % align !== 0n) return `queue ${this.index}: ${name} at 0x${at.toString(16)} is not ${align}-byte aligned`;
      if (!inRam(mem, at, len)) return `queue ${this.index}: ${name} at 0x${at.toString(16)} (+${len}) is outside the VM's RAM`;
    }
    return null;
  }

  /** The available ring's index and flags (a copy). */
  private availHeader(mem: GuestMemory): { flags: number; idx: number } | null {
    const b = mem.read(this.driver, 4);
    return b ? { flags: b[0]! | (b[1]! << 8), idx: b[2]! | (b[3]! << 8) } : null;
  }

  /** Whether the driver asked not to be interrupted. */
  noInterrupt(mem: GuestMemory): boolean {
    return ((this.availHeader(mem)?.flags ?? 0) & VIRTQ_AVAIL_F_NO_INTERRUPT) !== 0;
  }

  /**
   * The next chain the driver made available, null when there is none, or a string: what is wrong with
   * it (the device then stops using the queue). A chain longer than the queue is a loop (§2.7.5.2).
   */
  next(mem: GuestMemory): Chain | null | string {
    const avail = this.availHeader(mem);
    if (!avail) return "available ring unreadable";
    if (avail.idx === this.lastAvail) return null;
    if (((avail.idx - this.lastAvail) & 0xffff) > this.num) return `queue ${this.index}: the driver made ${(avail.idx - this.lastAvail) & 0xffff} buffers available in a queue of ${this.num}`;
    const slot = this.lastAvail % this.num;
    const e = mem.read(this.driver + 4n + BigInt(2 * slot), 2);
    if (!e) return "available ring unreadable";
    const head = e[0]! | (e[1]! << 8);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (head >= this.num) return `queue ${this.index}: chain head ${head} is outside the table of ${this.num}`;
    const table = mem.read(this.desc, 16 * this.num);
    if (!table) return "descriptor table unreadable";
    const v = new DataView(table.buffer, table.byteOffset, table.byteLength);
    const segments: Segment[] = [];
    let total = 0;
    let seenWritable = false;
    for (let i = head, n = 0; ; n++) {
      if (n >= this.num) return `queue ${this.index}: descriptor chain from ${head} loops (longer than the queue)`;
      const addr = v.getBigUint64(16 * i, true);
      const len = v.getUint32(16 * i + 8, true);
      const flags = v.getUint16(16 * i + 12, true);
      const nextIdx = v.getUint16(16 * i + 14, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) return `queue ${this.index}: indirect descriptor ${i} (VIRTIO_F_INDIRECT_DESC was not offered)`;
      const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
      // §2.7.4.2: device-readable buffers come before device-writable ones.
      if (!writable && seenWritable) return `queue ${this.index}: descriptor ${i} is readable after a writable one`;
      seenWritable ||= writable;
      total += len;
      if (total > CHAIN_MAX_BYTES) return `queue ${this.index}: chain from ${head} describes more than ${CHAIN_MAX_BYTES} bytes`;
      if (!inRam(mem, addr, len)) return `queue ${this.index}: descriptor ${i} (0x${addr.toString(16)}, ${len} bytes) is outside the VM's RAM`;
      segments.push({ addr, len, writable });
      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      if (nextIdx >= this.num) return `queue ${this.index}: descriptor ${i} chains to ${nextIdx}, outside the table of ${this.num}`;
      i = nextIdx;
    }
    return { head, segments };
  }

  /** Puts a finished chain on the used ring: `written` bytes the device wrote into it (§2.7.8). */
  used(mem: GuestMemory, head: number, written: number): boolean {
    const idx = this.usedIdx;
    const entry = new Uint8Array(8);
    const v = new DataView(entry.buffer);
    v.setUint32(0, head, true);
    v.setUint32(4, written, true);
    if (!mem.write(this.device + 4n + BigInt(8 * (idx % this.num)), entry)) return false;
    // The entry first, then the index that publishes it (the driver reads them in that order).
    this.usedIdx = (idx + 1) & 0xffff;
    return mem.write(this.device + 2n, Uint8Array.of(this.usedIdx & 0xff, this.usedIdx >> 8));
  }
}

/** Whether [addr, addr + len) is all guest RAM (a zero-length buffer at a RAM address counts). */
export function inRam(mem: GuestMemory, addr: bigint, len: number): boolean {
  return addr >= mem.base && addr + BigInt(len) <= mem.base + mem.size;
}
