// The virtio-mmio transport and the read-only virtio-blk device driven as a guest driver would (virtio
// v1.2 §3.1 initialisation, §2.7 split queues), then as a hostile guest: descriptors outside RAM, loops,
// huge lengths, bad sizes, queue changes while ready.
import { describe, expect, it } from "vitest";
import { ArrayGuestMemory } from "../scripted/memory.js";
import { decodeDataAbort, loadedValue, MmioBus, type MmioAccess } from "./mmio-access.js";
import { INT_USED_BUFFER, MAGIC, REG, STATUS, VirtioMmio, VIRTIO_F_VERSION_1 } from "./virtio-mmio.js";
import { QUEUE_MAX, SECTOR, VirtioBlk, VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, type BlockSource } from "./virtio-blk.js";
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from "./virtqueue.js";

const RAM = 0x4000_0000n;
const BASE = 0x0c00_0000n;
const DESC = RAM + 0x1000n, AVAIL = RAM + 0x2000n, USED = RAM + 0x3000n, BUF = RAM + 0x10000n;

/** A disk whose byte at offset i is (i * 7 + (i >> 9)) & 0xff: every sector different. */
const pattern = (i: number) => (i * 7 + (i >> 9)) & 0xff;
class PatternDisk implements BlockSource {
  reads = 0;
  constructor(readonly size: number) {}
  read(at: number, into: Uint8Array): void {
    this.reads++;
    for (let i = 0; i < into.length; i++) into[i] = pattern(at + i);
  }
}

const word: MmioAccess = { size: 4, write: false, srt: 0, signExtend: false, sixtyFour: false };
const wr: MmioAccess = { ...word, write: true };

function setup(sectors = 64) {
  const mem = new ArrayGuestMemory(RAM, 1n << 24n);
  const disk = new PatternDisk(sectors * SECTOR);
  const t = new VirtioMmio("disk", BASE, new VirtioBlk(disk), mem);
  let irqs = 0;
  t.onInterrupt = () => irqs++;
  const bus = new MmioBus();
  bus.add(t);
  const r = (off: number) => {
    const x = bus.access(BASE + BigInt(off), word, 0n);
    if (!x.ok) throw new Error(x.reason);
    return Number(x.value);
  };
  const w = (off: number, v: number | bigint) => {
    const x = bus.access(BASE + BigInt(off), wr, BigInt(v));
    if (!x.ok) throw new Error(x.reason);
  };
  const dv = () => new DataView(mem.bytes.buffer);
  const off = (ipa: bigint) => Number(ipa - RAM);
  /** §3.1.1 initialisation, queue 0 of `num` entries. */
  const init = (num = 8) => {
    w(REG.Status, 0);
    w(REG.Status, STATUS.ACKNOWLEDGE);
    w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    w(REG.DriverFeaturesSel, 1);
    w(REG.DriverFeatures, 1); // VIRTIO_F_VERSION_1
    w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    expect(r(REG.Status) & STATUS.FEATURES_OK).toBe(STATUS.FEATURES_OK);
    w(REG.QueueSel, 0);
    w(REG.QueueNum, num);
    w(REG.QueueDescLow, Number(DESC & 0xffff_ffffn));
    w(REG.QueueDescHigh, 0);
    w(REG.QueueDriverLow, Number(AVAIL & 0xffff_ffffn));
    w(REG.QueueDeviceLow, Number(USED & 0xffff_ffffn));
    w(REG.QueueReady, 1);
    w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK);
  };
  const desc = (i: number, addr: bigint, len: number, flags: number, next = 0) => {
    const v = dv();
    v.setBigUint64(off(DESC) + 16 * i, addr, true);
    v.setUint32(off(DESC) + 16 * i + 8, len, true);
    v.setUint16(off(DESC) + 16 * i + 12, flags, true);
    v.setUint16(off(DESC) + 16 * i + 14, next, true);
  };
  let availIdx = 0;
  /** Makes `head` available and notifies. */
  const submit = (head: number) => {
    const v = dv();
    v.setUint16(off(AVAIL) + 4 + 2 * (availIdx % 8), head, true);
    availIdx = (availIdx + 1) & 0xffff;
    v.setUint16(off(AVAIL) + 2, availIdx, true);
    w(REG.QueueNotify, 0);
  };
  /** A request: header at BUF, data at BUF + 0x100, status at BUF + 0x80. */
  const request = (type: number, sector: bigint, dataLen: number, dataAddr = BUF + 0x100n) => {
    const v = dv();
    v.setUint32(off(BUF), type, true);
    v.setBigUint64(off(BUF) + 8, sector, true);
    mem.bytes[off(BUF) + 0x80] = 0xee;
    desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
    desc(1, dataAddr, dataLen, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
    desc(2, BUF + 0x80n, 1, VIRTQ_DESC_F_WRITE);
    submit(0);
  };
  const usedIdx = () => dv().getUint16(off(USED) + 2, true);
  const usedLen = (n: number) => dv().getUint32(off(USED) + 4 + 8 * (n % 8) + 4, true);
  const status = () => mem.bytes[off(BUF) + 0x80];
  return { mem, disk, t, bus, r, w, init, desc, submit, request, usedIdx, usedLen, status, off, irqs: () => irqs };
}

describe("virtio-mmio transport (virtio v1.2 §4.2.2)", () => {
  it("identifies a version-2 block device and offers VERSION_1 and RO", () => {
    const d = setup();
    expect(d.r(REG.MagicValue)).toBe(MAGIC);
    expect(d.r(REG.Version)).toBe(2);
    expect(d.r(REG.DeviceID)).toBe(2);
    d.w(REG.DeviceFeaturesSel, 0);
    expect(BigInt(d.r(REG.DeviceFeatures)) & VIRTIO_BLK_F_RO).toBe(VIRTIO_BLK_F_RO);
    d.w(REG.DeviceFeaturesSel, 1);
    expect(BigInt(d.r(REG.DeviceFeatures)) << 32n).toBe(VIRTIO_F_VERSION_1);
    d.w(REG.QueueSel, 0);
    expect(d.r(REG.QueueNumMax)).toBe(QUEUE_MAX);
    // Capacity in the configuration space, read in any width: 64 sectors.
    expect(d.bus.access(BASE + 0x100n, { ...word, size: 8, sixtyFour: true }, 0n)).toEqual({ ok: true, value: 64n });
    expect(d.bus.access(BASE + 0x100n, { ...word, size: 1 }, 0n)).toEqual({ ok: true, value: 64n });
  });

  it("refuses FEATURES_OK without VIRTIO_F_VERSION_1 or with features it did not offer", () => {
    const d = setup();
    d.w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    d.w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    expect(d.r(REG.Status) & STATUS.FEATURES_OK).toBe(0);
    d.w(REG.DriverFeaturesSel, 1);
    d.w(REG.DriverFeatures, 1 | 2); // VERSION_1 and bit 33, never offered
    d.w(REG.Status, STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    expect(d.r(REG.Status) & STATUS.FEATURES_OK).toBe(0);
  });

  it("refuses sub-word register accesses, writes to read-only registers, unknown offsets and config writes", () => {
    const d = setup();
    expect(d.bus.access(BASE + 0x70n, { ...word, size: 1 }, 0n)).toMatchObject({ ok: false, reason: expect.stringContaining("32-bit") });
    expect(d.bus.access(BASE + 0x00n, wr, 1n)).toMatchObject({ ok: false, reason: expect.stringContaining("read-only or unknown") });
    expect(d.bus.access(BASE + 0x0e0n, word, 0n)).toMatchObject({ ok: false });
    expect(d.bus.access(BASE + 0x100n, wr, 1n)).toMatchObject({ ok: false, reason: expect.stringContaining("read-only") });
    expect(d.bus.access(BASE + 0x100n + 24n, word, 0n)).toMatchObject({ ok: false, reason: expect.stringContaining("past") });
    // Outside the transport, and misaligned.
    expect(d.bus.access(BASE + 0x200n, word, 0n)).toMatchObject({ ok: false, reason: expect.stringContaining("no device") });
    expect(d.bus.access(BASE + 0x102n, word, 0n)).toMatchObject({ ok: false, reason: expect.stringContaining("misaligned") });
  });

  it("serves reads: the sectors asked for land in the guest's buffer, status OK, used length, an interrupt", () => {
    const d = setup();
    d.init();
    d.request(VIRTIO_BLK_T_IN, 3n, 2 * SECTOR);
    expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    expect(d.usedIdx()).toBe(1);
    expect(d.usedLen(0)).toBe(2 * SECTOR + 1);
    const got = d.mem.bytes.subarray(d.off(BUF + 0x100n), d.off(BUF + 0x100n) + 2 * SECTOR);
    expect([...got]).toEqual(Array.from({ length: 2 * SECTOR }, (_, i) => pattern(3 * SECTOR + i)));
    expect(d.r(REG.InterruptStatus)).toBe(INT_USED_BUFFER);
    expect(d.irqs()).toBe(1);
    d.w(REG.InterruptACK, INT_USED_BUFFER);
    expect(d.r(REG.InterruptStatus)).toBe(0);
    // GET_ID answers its serial; a write to the read-only medium fails; an unknown type is unsupported.
    d.request(VIRTIO_BLK_T_GET_ID, 0n, 20);
    expect(new TextDecoder().decode(d.mem.bytes.subarray(d.off(BUF + 0x100n), d.off(BUF + 0x100n) + 13))).toBe("smcvisor-disk");
    d.request(VIRTIO_BLK_T_OUT, 0n, SECTOR);
    expect(d.status()).toBe(VIRTIO_BLK_S_IOERR);
    d.request(99, 0n, SECTOR);
    expect(d.status()).toBe(VIRTIO_BLK_S_UNSUPP);
    expect(d.usedIdx()).toBe(4);
  });

  it("a read past the disk's end or of a partial sector is an I/O error, and nothing is copied", () => {
    const d = setup(64);
    d.init();
    d.request(VIRTIO_BLK_T_IN, 63n, 2 * SECTOR);
    expect(d.status()).toBe(VIRTIO_BLK_S_IOERR);
    d.request(VIRTIO_BLK_T_IN, 2n ** 63n, SECTOR);
    expect(d.status()).toBe(VIRTIO_BLK_S_IOERR);
    d.request(VIRTIO_BLK_T_IN, 0n, 100);
    expect(d.status()).toBe(VIRTIO_BLK_S_IOERR);
    expect(d.disk.reads).toBe(0);
  });
});

describe("a hostile driver", () => {
  const broken = (d: ReturnType<typeof setup>) => (d.r(REG.Status) & STATUS.DEVICE_NEEDS_RESET) !== 0;

  it("a data buffer outside guest RAM (the shim's region below it, past its end) stops the device; nothing is written there", () => {
    for (const addr of [RAM - 0x20_0000n, RAM + (1n << 24n) - 0x100n, 0xffff_ffff_ffff_f000n]) {
      const d = setup();
      d.init();
      d.request(VIRTIO_BLK_T_IN, 0n, SECTOR, addr);
      expect(broken(d), addr.toString(16)).toBe(true);
      expect(d.t.problem).toContain("outside the VM's RAM");
      expect(d.usedIdx()).toBe(0);
      expect(d.disk.reads).toBe(0);
      // Until the driver resets the device, notifications are ignored; a reset brings it back.
      d.request(VIRTIO_BLK_T_IN, 0n, SECTOR);
      expect(d.usedIdx()).toBe(0);
      d.init();
      d.request(VIRTIO_BLK_T_IN, 0n, SECTOR);
      expect(d.status()).toBe(VIRTIO_BLK_S_OK);
    }
  });

  it("a descriptor loop, an index outside the table, an indirect descriptor, a huge length: refused without hanging", () => {
    const cases: [string, (d: ReturnType<typeof setup>) => void][] = [
      ["loops", (d) => { d.desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1); d.desc(1, BUF + 0x80n, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2); d.desc(2, BUF + 0x90n, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1); }],
      ["outside the table", (d) => d.desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 200)],
      ["indirect", (d) => d.desc(0, BUF, 16, VIRTQ_DESC_F_INDIRECT)],
      ["more than", (d) => { d.desc(0, BUF, 16, VIRTQ_DESC_F_NEXT, 1); d.desc(1, BUF, 0xffff_ffff, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2); d.desc(2, BUF, 0xffff_ffff, VIRTQ_DESC_F_WRITE); }],
      ["readable after a writable", (d) => { d.desc(0, BUF + 0x80n, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1); d.desc(1, BUF, 16, 0); }],
    ];
    for (const [what, make] of cases) {
      const d = setup();
      d.init();
      make(d);
      d.submit(0);
      expect(broken(d), what).toBe(true);
      expect(d.t.problem, what).toContain(what);
      expect(d.disk.reads, what).toBe(0);
    }
  });

  it("a head index beyond the queue, or an available index racing ahead, is refused", () => {
    const d = setup();
    d.init();
    d.submit(9);
    expect(d.t.problem).toContain("chain head 9");
    const e = setup();
    e.init();
    new DataView(e.mem.bytes.buffer).setUint16(e.off(AVAIL) + 2, 1000, true);
    e.w(REG.QueueNotify, 0);
    expect(e.t.problem).toContain("made 1000 buffers available");
  });

  it("queue areas outside RAM or misaligned are refused at QueueReady; queue registers are frozen while ready", () => {
    const d = setup();
    d.w(REG.QueueSel, 0);
    d.w(REG.QueueNum, 8);
    d.w(REG.QueueDescLow, 0x4000_0008); // not 16-byte aligned
    d.w(REG.QueueDriverLow, Number(AVAIL));
    d.w(REG.QueueDeviceLow, Number(USED));
    d.w(REG.QueueReady, 1);
    expect(d.r(REG.QueueReady)).toBe(0);
    expect(d.t.problem).toContain("not 16-byte aligned");
    const e = setup();
    e.init();
    expect(e.bus.access(BASE + BigInt(REG.QueueDescLow), wr, 0x3fe0_0000n)).toMatchObject({ ok: false, reason: expect.stringContaining("changed while ready") });
    const f = setup();
    f.w(REG.QueueNum, 3);
    f.w(REG.QueueReady, 1);
    expect(f.t.problem).toContain("not a power of two");
  });
});

describe("data-abort syndromes (Arm ARM D17.2.37)", () => {
  const esr = (fields: number) => ((0x24 << 26) | (1 << 25) | fields | 0b000111) >>> 0; // translation fault, level 3
  it("decodes size, direction, register, sign extension, width", () => {
    const a = decodeDataAbort(esr((1 << 24) | (2 << 22) | (5 << 16) | (1 << 6)));
    expect(a).toEqual({ ok: true, access: { size: 4, write: true, srt: 5, signExtend: false, sixtyFour: false } });
    const b = decodeDataAbort(esr((1 << 24) | (0 << 22) | (1 << 21) | (31 << 16) | (1 << 15)));
    expect(b).toEqual({ ok: true, access: { size: 1, write: false, srt: 31, signExtend: true, sixtyFour: true } });
    expect(loadedValue((b as { access: MmioAccess }).access, 0x80n)).toBe(0xffff_ffff_ffff_ff80n);
    expect(loadedValue({ size: 2, write: false, srt: 0, signExtend: true, sixtyFour: false }, 0x8001n)).toBe(0xffff_8001n);
    expect(loadedValue(word, 0x1_2345_6789n)).toBe(0x2345_6789n);
  });
  it("refuses what it cannot emulate: no ISV, a stage-1 walk, cache maintenance, a permission fault, another class", () => {
    expect(decodeDataAbort(esr(0))).toMatchObject({ ok: false, reason: expect.stringContaining("ISV = 0") });
    expect(decodeDataAbort(esr((1 << 24) | (1 << 7)))).toMatchObject({ ok: false });
    expect(decodeDataAbort(esr((1 << 24) | (1 << 8)))).toMatchObject({ ok: false });
    expect(decodeDataAbort(((0x24 << 26) | (1 << 24) | 0b001111) >>> 0)).toMatchObject({ ok: false, reason: expect.stringContaining("fault status") });
    expect(decodeDataAbort(((0x16 << 26) | (1 << 24)) >>> 0)).toMatchObject({ ok: false, reason: expect.stringContaining("class") });
  });
});
