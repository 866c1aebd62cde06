/**
 * The virtio-mmio transport, "version 2" (virtio 1.x) register layout: virtio spec v1.2 §4.2.2. One
 * transport per device, 0x200 bytes of registers: 0x000-0x0ff the transport's own (32-bit accesses only,
 * §4.2.2.2), from 0x100 the device's configuration space (any size). The device behind it (virtio-blk.ts)
 * sees only its queues and guest RAM through the GuestMemory port. Pure: no I/O.
 */
import type { GuestMemory } from "../../router/ports.js";
import type { MmioDevice, MmioResult } from "./mmio-access.js";
import { VirtQueue, type Chain } from "./virtqueue.js";

/** Register offsets (§4.2.2, table "MMIO Device Register Layout"). */
export const REG = {
  MagicValue: 0x000,
  Version: 0x004,
  DeviceID: 0x008,
  VendorID: 0x00c,
  DeviceFeatures: 0x010,
  DeviceFeaturesSel: 0x014,
  DriverFeatures: 0x020,
  DriverFeaturesSel: 0x024,
  QueueSel: 0x030,
  QueueNumMax: 0x034,
  QueueNum: 0x038,
  QueueReady: 0x044,
  QueueNotify: 0x050,
  InterruptStatus: 0x060,
  InterruptACK: 0x064,
  Status: 0x070,
  QueueDescLow: 0x080,
  QueueDescHigh: 0x084,
  QueueDriverLow: 0x090,
  QueueDriverHigh: 0x094,
  QueueDeviceLow: 0x0a0,
  QueueDeviceHigh: 0x0a4,
  SHMSel: 0x0ac,
  SHMLenLow: 0x0b0,
  SHMLenHigh: 0x0b4,
  SHMBaseLow: 0x0b8,
  SHMBaseHigh: 0x0bc,
  QueueReset: 0x0c0,
  ConfigGeneration: 0x0fc,
  Config: 0x100,
} as const;

const LEGACY_GUEST_PAGE_SIZE = 0x028;
const LEGACY_QUEUE_ALIGN = 0x03c;

export const MAGIC = 0x7472_6976; // "virt"
export const VERSION = 2;
export const TRANSPORT_SIZE = 0x200n;
/** Our vendor ID: "SMCV" would not fit the PCI-style space some drivers assume; any value is allowed (§4.2.2). */
export const VENDOR_ID = 0x534d_4356;

/** Device status bits (§2.1). */
export const STATUS = { ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8, DEVICE_NEEDS_RESET: 64, FAILED: 128 } as const;
/** Reserved feature bits the transport offers (§6): VIRTIO_F_VERSION_1, without which the layout is legacy. */
export const VIRTIO_F_VERSION_1 = 1n << 32n;
/** InterruptStatus bits (§4.2.2): a used buffer, a configuration change. */
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;

/** What a device type adds to the transport. */
export interface VirtioDevice {
  readonly deviceId: number;
  /** Device-specific feature bits (the transport adds VIRTIO_F_VERSION_1). */
  readonly features: bigint;
  readonly queueMax: number;
  readonly queues: number;
  /** Configuration space bytes (little-endian fields, §4.2.2.2 reads any width). */
  readonly config: Uint8Array;
  /** Serves one chain; returns the bytes written into its writable part, or a reason (the device then needs a reset). */
  serve(mem: GuestMemory, queue: number, chain: Chain): number | string;
}

export class VirtioMmio implements MmioDevice {
  private status = 0;
  private deviceFeatureSel = 0;
  private driverFeatureSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private readonly queues: VirtQueue[];
  /** Chains served since the transport was made (tests and docs' figures). */
  chains = 0;
  /** Why the device last set DEVICE_NEEDS_RESET, for the hypervisor's log. */
  problem: string | null = null;
  /** Called when InterruptStatus goes from 0 to non-zero (the machine raises the transport's interrupt). */
  onInterrupt: (() => void) | null = null;

  constructor(readonly name: string, readonly base: bigint, private readonly device: VirtioDevice, private readonly mem: GuestMemory) {
    this.queues = Array.from({ length: device.queues }, (_, i) => new VirtQueue(i, device.queueMax));
  }

  readonly size = TRANSPORT_SIZE;

  get offered(): bigint {
    return this.device.features | VIRTIO_F_VERSION_1;
  }

  get statusBits(): number {
    return this.status;
  }

  get negotiated(): bigint {
    return this.driverFeatures;
  }

  private get queue(): VirtQueue | undefined {
    return this.queues[this.queueSel];
  }

  read(offset: number, size: number): MmioResult {
    if (offset >= REG.Config) {
      const c = this.device.config;
      const at = offset - REG.Config;
      if (at + size > c.length) return { ok: false, reason: `${this.name}: read of ${size} bytes at config offset 0x${at.toString(16)} is past its ${c.length} bytes` };
      let v = 0n;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(c[at + i]!);
      return { ok: true, value: v };
    }
    if (size !== 4) return { ok: false, reason: `${this.name}: ${size}-byte read of register 0x${offset.toString(16)} (registers are 32-bit, virtio v1.2 §4.2.2.2)` };
    const q = this.queue;
    const word = (v: number | bigint): MmioResult => ({ ok: true, value: BigInt(v) & 0xffff_ffffn });
    switch (offset) {
      case REG.MagicValue:
        return word(MAGIC);
      case REG.Version:
        return word(VERSION);
      case REG.DeviceID:
        return word(this.device.deviceId);
      case REG.VendorID:
        return word(VENDOR_ID);
      case REG.DeviceFeatures:
        return word(this.deviceFeatureSel > 1 ? 0 : this.offered >> BigInt(32 * this.deviceFeatureSel));
      case REG.QueueNumMax:
        return word(q ? q.max : 0);
      case REG.QueueReady:
        return word(q?.ready ? 1 : 0);
      case REG.InterruptStatus:
        return word(this.interruptStatus);
      case REG.Status:
        return word(this.status);
      case REG.ConfigGeneration:
        return word(0);
      case REG.QueueNum:
      case REG.QueueDescLow:
      case REG.QueueDescHigh:
      case REG.QueueDriverLow:
      case REG.QueueDriverHigh:
      case REG.QueueDeviceLow:
      case REG.QueueDeviceHigh: {
        if (!q) return word(0);
        const v = { [REG.QueueNum]: BigInt(q.num), [REG.QueueDescLow]: q.desc, [REG.QueueDescHigh]: q.desc >> 32n, [REG.QueueDriverLow]: q.driver, [REG.QueueDriverHigh]: q.driver >> 32n, [REG.QueueDeviceLow]: q.device, [REG.QueueDeviceHigh]: q.device >> 32n }[offset]!;
        return word(v);
      }
      // No shared memory regions (§4.2.2: a length of all ones says there is none), no queue being reset.
      case REG.SHMLenLow:
      case REG.SHMLenHigh:
      case REG.SHMBaseLow:
      case REG.SHMBaseHigh:
        return word(0xffff_ffff);
      case REG.QueueReset:
        return word(0);
      default:
        return { ok: false, reason: `${this.name}: read of write-only or unknown register 0x${offset.toString(16)}` };
    }
  }

  write(offset: number, size: number, value: bigint): MmioResult {
    const done: MmioResult = { ok: true, value: 0n };
    if (offset >= REG.Config) return { ok: false, reason: `${this.name}: write to config offset 0x${(offset - REG.Config).toString(16)} (the configuration space is read-only)` };
    if (size !== 4) return { ok: false, reason: `${this.name}: ${size}-byte write to register 0x${offset.toString(16)} (registers are 32-bit, virtio v1.2 §4.2.2.2)` };
    const v = Number(value & 0xffff_ffffn);
    const q = this.queue;
    // §4.2.2.2: queue registers may be changed only while the queue is not ready.
    const setQueue = (f: (q: VirtQueue) => void): MmioResult => {
      if (!q) return { ok: false, reason: `${this.name}: queue ${this.queueSel} does not exist` };
      if (q.ready) return { ok: false, reason: `${this.name}: queue ${q.index} changed while ready` };
      f(q);
      return done;
    };
    const low = (old: bigint) => (old & ~0xffff_ffffn) | BigInt(v);
    const high = (old: bigint) => (old & 0xffff_ffffn) | (BigInt(v) << 32n);
    switch (offset) {
      case REG.DeviceFeaturesSel:
        this.deviceFeatureSel = v;
        return done;
      case REG.DriverFeaturesSel:
        this.driverFeatureSel = v;
        return done;
      case REG.DriverFeatures:
        if (this.driverFeatureSel > 1) return done;
        if (this.status & STATUS.FEATURES_OK) return { ok: false, reason: `${this.name}: features written after FEATURES_OK` };
        this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << BigInt(32 * this.driverFeatureSel))) | (BigInt(v) << BigInt(32 * this.driverFeatureSel));
        return done;
      case REG.QueueSel:
        this.queueSel = v;
        return done;
      case REG.QueueNum:
        return setQueue((q) => (q.num = v));
      case REG.QueueDescLow:
        return setQueue((q) => (q.desc = low(q.desc)));
      case REG.QueueDescHigh:
        return setQueue((q) => (q.desc = high(q.desc)));
      case REG.QueueDriverLow:
        return setQueue((q) => (q.driver = low(q.driver)));
      case REG.QueueDriverHigh:
        return setQueue((q) => (q.driver = high(q.driver)));
      case REG.QueueDeviceLow:
        return setQueue((q) => (q.device = low(q.device)));
      case REG.QueueDeviceHigh:
        return setQueue((q) => (q.device = high(q.device)));
      case REG.QueueReady: {
        if (!q) return { ok: false, reason: `${this.name}: queue ${this.queueSel} does not exist` };
        if (v === 0) {
          q.ready = false;
          return done;
        }
        const bad = q.check(this.mem);
        if (bad !== null) {
          this.needsReset(bad);
          return done;
        }
        q.ready = true;
        return done;
      }
      case REG.QueueNotify:
        this.notify(v & 0xffff);
        return done;
      case REG.InterruptACK:
        this.interruptStatus &= ~v;
        return done;
      case REG.Status:
        if (v === 0) {
          this.reset();
          return done;
        }
        // FEATURES_OK sticks only for a subset of what was offered, with VIRTIO_F_VERSION_1 (§2.2.2, §3.1.1):
        // the driver reads Status back to learn whether the device accepted its features.
        this.status = this.featuresAcceptable(v) ? v | (this.status & STATUS.DEVICE_NEEDS_RESET) : (v & ~STATUS.FEATURES_OK) | (this.status & STATUS.DEVICE_NEEDS_RESET);
        return done;
      case REG.QueueReset:
        return done;
      // The legacy layout's GuestPageSize and QueueAlign (§4.2.4) have no meaning here; some drivers
      // (EDK2's VirtioMmioDeviceLib) write them whatever the version: ignored.
      case LEGACY_GUEST_PAGE_SIZE:
      case LEGACY_QUEUE_ALIGN:
        return done;
      default:
        return { ok: false, reason: `${this.name}: write to read-only or unknown register 0x${offset.toString(16)}` };
    }
  }

  private featuresAcceptable(v: number): boolean {
    if (!(v & STATUS.FEATURES_OK)) return true;
    return (this.driverFeatures & ~this.offered) === 0n && (this.driverFeatures & VIRTIO_F_VERSION_1) !== 0n;
  }

  /** Status 0: the device forgets everything the driver set (§4.2.2.1). */
  reset(): void {
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeatureSel = this.driverFeatureSel = this.queueSel = 0;
    this.interruptStatus = 0;
    this.problem = null;
    for (const q of this.queues) q.reset();
  }

  private needsReset(reason: string): void {
    this.problem = `${this.name}: ${reason}`;
    this.status |= STATUS.DEVICE_NEEDS_RESET;
    this.raise(INT_CONFIG_CHANGE);
  }

  private raise(bit: number): void {
    const was = this.interruptStatus;
    this.interruptStatus |= bit;
    if (was === 0) this.onInterrupt?.();
  }

  /** The driver notified queue `index`: every chain it made available is served now, in order (§2.7.13). */
  private notify(index: number): void {
    const q = this.queues[index];
    if (!q || !q.ready || !(this.status & STATUS.DRIVER_OK) || this.status & STATUS.DEVICE_NEEDS_RESET) return;
    let served = 0;
    // At most a queue's worth per notification: another vCPU adding buffers meanwhile cannot keep this going.
    while (served < q.num) {
      const chain = q.next(this.mem);
      if (chain === null) break;
      if (typeof chain === "string") return this.needsReset(chain);
      const written = this.device.serve(this.mem, index, chain);
      if (typeof written === "string") return this.needsReset(written);
      if (!q.used(this.mem, chain.head, written)) return this.needsReset(`queue ${index}: used ring unwritable`);
      served++;
      this.chains++;
    }
    if (served > 0 && !q.noInterrupt(this.mem)) this.raise(INT_USED_BUFFER);
  }
}
