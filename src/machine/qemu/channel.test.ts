import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRequest, encodeHostPage, encodeReply, encodeRequest, fastKey, HOST_MAGIC, HOST_PAGE_SIZE, MAGIC, mailboxOffset, REPLY_SIZE, REQ, REQUEST_SIZE, RSP, VERSION, writeReply } from "./channel.js";
import { decodeWakeStats, MAILBOX, WAKE_LOG_SIZE } from "./channel.js";
import { kernelFootprint, layoutFor, ramFileOffset, SHIM_REGION, SHIM_SIZE } from "./layout.js";

const trap = (over: Partial<Parameters<typeof encodeRequest>[0]> = {}) =>
  encodeRequest({ type: REQ.TRAP, vcpu: 1, esr: 0x5e00_0000, elr: 0x4020_1000n, spsr: 0x3c5n, far: 0n, cntvct: 123n, localCalls: 2n, regs: [0x8400_0000n, 0xffff_ffff_0000_0001n], ...over });

describe("channel frames (protocol version 4, shim/protocol.h)", () => {
  it("decodes a TRAP into the router's 36-word register view, with the shim's counters", () => {
    const d = decodeRequest(trap({ wa2State: 2, aborts: 3n, abortIpa: 0x5000_0008n }), 2);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.request).toMatchObject({ type: REQ.TRAP, vcpu: 1, esr: 0x5e00_0000, elr: 0x4020_1000n, cntvct: 123n, localCalls: 2n, wa2State: 2, aborts: 3n, abortIpa: 0x5000_0008n });
    expect([...d.request.words.slice(0, 4)]).toEqual([0x8400_0000, 0, 1, 0xffff_ffff]);
    expect(d.request.words).toHaveLength(36);
  });

  it("names what is wrong with a malformed frame instead of throwing", () => {
    const bad = (mutate: (v: DataView) => void, size = REQUEST_SIZE) => {
      const f = new Uint8Array(size);
      f.set(trap().subarray(0, Math.min(size, REQUEST_SIZE)));
      mutate(new DataView(f.buffer));
      const d = decodeRequest(f, 2);
      return d.ok ? "ok" : d.reason;
    };
    expect(bad(() => {}, 199)).toBe(`request frame of 199 bytes (want ${REQUEST_SIZE})`);
    expect(bad((v) => v.setUint32(0, 0x4141_4141, true))).toBe("bad magic 0x41414141");
    expect(bad((v) => v.setUint16(4, 2, true))).toBe(`protocol version 2 (want ${VERSION})`);
    expect(bad((v) => v.setUint16(6, 9, true))).toBe("unknown request type 9");
    expect(bad((v) => v.setUint32(8, 2, true))).toBe("vCPU 2 does not exist (the VM has 2)");
    expect(bad((v) => v.setBigUint64(56, 3n, true))).toBe("WORKAROUND_2 state 3 (want 0, 1 or 2)");
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (bytes) => {
        const d = decodeRequest(bytes, 4);
        return d.ok || typeof d.reason === "string";
      }),
    );
  });

  it("encodes replies at fixed offsets, from 64-bit values or the router's word view, over whatever was there", () => {
    const r = encodeReply({ type: RSP.RETURN, count: 18, advance: 4, regs: Uint32Array.of(1, 2, 3, 4) });
    const v = new DataView(r.buffer);
    expect(r.length).toBe(REPLY_SIZE);
    expect([v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true), v.getUint32(8, true), v.getUint32(12, true)]).toEqual([MAGIC, VERSION, RSP.RETURN, 18, 4]);
    expect([v.getBigUint64(40, true), v.getBigUint64(48, true)]).toEqual([0x2_0000_0001n, 0x4_0000_0003n]);
    const resume = new DataView(encodeReply({ type: RSP.RESUME_AT, entry: 0x4020_0000n, flags: 1n, regs: [-1n] }).buffer);
    expect([resume.getBigUint64(16, true), resume.getBigUint64(24, true), resume.getBigUint64(40, true)]).toEqual([0x4020_0000n, 1n, 0xffff_ffff_ffff_ffffn]);
    // A mailbox's reply area is reused: a new reply leaves nothing of the old one.
    const area = new Uint8Array(REPLY_SIZE).fill(0xee);
    writeReply(area, { type: RSP.STOP });
    expect(area.subarray(8).every((b) => b === 0)).toBe(true);
    expect(fastKey(0x8000_7fff, { hvc: true, smc: false, recordsWa2: true })).toBe(0x8000_7fffn | (1n << 32n) | (1n << 34n));
  });

  it("lays out the host page the shim reads (struct host_page)", () => {
    const p = encodeHostPage({
      vcpus: 4,
      gicVersion: 3,
      vttbr: 0x1_0000_4018_0000n,
      vtcr: 0x8002_3559n,
      gicd: 0x0800_0000n,
      gicc: 0x080a_0000n,
      doorbell: 0x0a00_0000n,
      doorbellIntid: 48,
      spinTicks: 12_500,
      sleepTicks: 625_000,
      fast: [[fastKey(0x8000_8000, { hvc: true, smc: true }), 0n]],
    });
    const v = new DataView(p.buffer);
    expect(p.length).toBe(HOST_PAGE_SIZE);
    expect([v.getUint32(0, true), v.getUint32(4, true), v.getUint32(8, true), v.getUint32(12, true)]).toEqual([HOST_MAGIC, VERSION, 4, 1]);
    expect([v.getBigUint64(16, true), v.getBigUint64(24, true), v.getBigUint64(32, true), v.getBigUint64(40, true), v.getBigUint64(48, true)]).toEqual([0x1_0000_4018_0000n, 0x8002_3559n, 0x0800_0000n, 0x080a_0000n, 0x0a00_0000n]);
    expect([v.getUint32(56, true), v.getUint32(60, true), v.getUint32(64, true), v.getUint32(68, true)]).toEqual([48, 12_500, 625_000, 1]);
    expect(v.getBigUint64(72, true)).toBe(0x3_8000_8000n);
    expect(() => encodeHostPage({ ...{ vcpus: 1, gicVersion: 2, vttbr: 0n, vtcr: 0n, gicd: 0n, gicc: 0n, doorbell: 0n, doorbellIntid: 48, spinTicks: 0, sleepTicks: 0 }, fast: Array.from({ length: 9 }, () => [0n, 0n] as const) })).toThrow("at most 8");
    // The device window's flag (bit 3), set only for a VM with emulated devices.
    const base = { vcpus: 1, gicVersion: 3 as const, vttbr: 0n, vtcr: 0n, gicd: 0n, gicc: 0n, doorbell: 0n, doorbellIntid: 48, spinTicks: 0, sleepTicks: 0, fast: [] };
    expect(new DataView(encodeHostPage({ ...base, mmio: true }).buffer).getUint32(12, true)).toBe(1 | 8);
    expect(new DataView(encodeHostPage(base).buffer).getUint32(12, true)).toBe(1);
    // A REQ_MMIO frame is accepted; the next number is not.
    expect(decodeRequest(encodeRequest({ type: REQ.MMIO, vcpu: 0, esr: 0x9300_0046, elr: 0n, spsr: 0n, far: 0x0c00_0070n, cntvct: 0n, localCalls: 0n }), 1)).toMatchObject({ ok: true, request: { type: 5, far: 0x0c00_0070n } });
  });

  it("puts every mailbox in the shim's region, one page per vCPU, clear of the host page and the stage-2 tables", () => {
    for (let vcpu = 0; vcpu < 8; vcpu++) {
      const at = mailboxOffset(vcpu);
      expect(at).toBeGreaterThanOrEqual(SHIM_REGION.hostPage + 0x1000);
      expect(at + SHIM_REGION.mailboxStride).toBeLessThanOrEqual(SHIM_REGION.hostState);
    }
    expect(SHIM_REGION.hostState + 0x1000).toBeLessThanOrEqual(SHIM_REGION.stage2);
    expect(BigInt(SHIM_REGION.stage2 + SHIM_REGION.stage2Size)).toBe(SHIM_SIZE);
  });
});

describe("guest RAM layout", () => {
  it("puts the device tree at the base of the guest's RAM, the kernel 2 MiB above it, then the initrd, 2 MiB-aligned", () => {
    const l = layoutFor(0x4000_0000n, 512n << 20n, 40n << 20n, 1n << 20n, 10n << 20n);
    expect(l).toEqual({ ok: true, layout: { dtb: 0x4000_0000n, kernel: 0x4020_0000n, initrd: 0x42c0_0000n, initrdEnd: 0x42c0_0000n + (10n << 20n) } });
    // In the machine, guest RAM sits above the shim's 2 MiB: IPA 0x40000000 is RAM-file offset 2 MiB.
    expect(ramFileOffset(0x4000_0000n, 0x4000_0000n)).toBe(SHIM_SIZE);
  });

  it("refuses RAM that is not at virt's base, not in 2 MiB blocks or too small, with the reason", () => {
    expect(layoutFor(0x8000_0000n, 512n << 20n, 1n, 1n, null)).toMatchObject({ ok: false, reason: expect.stringContaining("memory.base is 0x80000000") });
    expect(layoutFor(0x4000_0000n, (512n << 20n) + 4096n, 1n, 1n, null)).toMatchObject({ ok: false, reason: expect.stringContaining("multiple of 2 MiB") });
    expect(layoutFor(0x4000_0000n, 16n << 20n, 40n << 20n, 1n << 20n, null)).toMatchObject({ ok: false, reason: expect.stringContaining("the VM has 16 MiB") });
    expect(layoutFor(0x4000_0000n, 64n << 20n, 1n, 3n << 20n, null)).toMatchObject({ ok: false, reason: expect.stringContaining("device tree") });
  });

  it("reads an arm64 Image header's image_size, and the file size otherwise", () => {
    const img = new Uint8Array(64);
    const v = new DataView(img.buffer);
    v.setBigUint64(16, 0x40_0000n, true);
    v.setUint32(56, 0x644d_5241, true);
    expect(kernelFootprint(img)).toBe(0x40_0000n);
    expect(kernelFootprint(new Uint8Array(100))).toBe(100n);
  });
});

describe("wake-up counters in the mailbox page (shim/suspend.c)", () => {
  it("reads the counters and the latency log's latest samples in order, and refuses a short page", () => {
    const page = new Uint8Array(0x1000);
    const v = new DataView(page.buffer);
    v.setUint32(MAILBOX.wakes, 7, true);
    v.setUint32(MAILBOX.wakesIrq, 4, true);
    v.setUint32(MAILBOX.wakesHost, 2, true);
    v.setUint32(MAILBOX.wakesBound, 1, true);
    v.setUint32(MAILBOX.blockedWaits, 5, true);
    // 258 timer wake-ups: the ring holds the last 256, the oldest two overwritten.
    for (let n = 0; n < 258; n++) v.setUint32(MAILBOX.wakeLog + 4 * (n % WAKE_LOG_SIZE), 1000 + n, true);
    v.setUint32(MAILBOX.wakeLatCount, 258, true);
    v.setUint32(MAILBOX.wakeLatMax, 1257, true);
    v.setBigUint64(MAILBOX.wakeLatSum, 12345n, true);
    const w = decodeWakeStats(page);
    expect(w).toMatchObject({ wakes: 7, irq: 4, host: 2, bound: 1, blocked: 5, latency: { count: 258, max: 1257, sum: 12345n } });
    expect(w.samples).toHaveLength(256);
    expect(w.samples[0]).toBe(1002);
    expect(w.samples.at(-1)).toBe(1257);
    const fresh = new Uint8Array(0x1000);
    const f = new DataView(fresh.buffer);
    for (let n = 0; n < 3; n++) f.setUint32(MAILBOX.wakeLog + 4 * n, 10 + n, true);
    f.setUint32(MAILBOX.wakeLatCount, 3, true);
    expect(decodeWakeStats(fresh).samples).toEqual([10, 11, 12]);
    expect(() => decodeWakeStats(page.subarray(0, 0x40))).toThrow(/mailbox page/);
  });
});

