import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRequest, encodeReply, encodeRequest, fastKey, FrameSplitter, MAGIC, REPLY_SIZE, REQ, REQUEST_SIZE, RSP, VERSION } from "./channel.js";
import { mergeDts } from "./dtb.js";
import { kernelFootprint, layoutFor } from "./layout.js";

const trap = (over: Partial<Parameters<typeof encodeRequest>[0]> = {}) =>
  encodeRequest({ type: REQ.TRAP, vcpu: 1, esr: 0x5e00_0000, elr: 0x4020_1000n, spsr: 0x3c5n, far: 0n, cntvct: 123n, localCalls: 2n, regs: [0x8400_0000n, 0xffff_ffff_0000_0001n], ...over });

describe("channel frames (protocol version 2)", () => {
  it("decodes a TRAP into the router's 36-word register view", () => {
    const d = decodeRequest(trap({ wa2State: 2 }), 2);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.request).toMatchObject({ type: REQ.TRAP, vcpu: 1, esr: 0x5e00_0000, elr: 0x4020_1000n, cntvct: 123n, localCalls: 2n, wa2State: 2 });
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
    expect(bad(() => {}, 199)).toBe("request frame of 199 bytes (want 208)");
    expect(bad((v) => v.setUint32(0, 0x4141_4141, true))).toBe("bad magic 0x41414141");
    expect(bad((v) => v.setUint16(4, 1, true))).toBe("protocol version 1 (want 2)");
    expect(bad((v) => v.setUint16(6, 9, true))).toBe("unknown request type 9");
    expect(bad((v) => v.setUint32(8, 2, true))).toBe("vCPU 2 does not exist (the VM has 2)");
    expect(bad((v) => v.setBigUint64(56, 3n, true))).toBe("WORKAROUND_2 state 3 (want 0, 1 or 2)");
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (bytes) => {
      const d = decodeRequest(bytes, 4);
      return d.ok || typeof d.reason === "string";
    }));
  });

  it("encodes replies at fixed offsets, from 64-bit values or the router's word view", () => {
    const r = encodeReply({ type: RSP.RETURN, count: 18, advance: 4, regs: Uint32Array.of(1, 2, 3, 4) });
    const v = new DataView(r.buffer);
    expect(r.length).toBe(REPLY_SIZE);
    expect([v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true), v.getUint32(8, true), v.getUint32(12, true)]).toEqual([MAGIC, VERSION, RSP.RETURN, 18, 4]);
    expect([v.getBigUint64(40, true), v.getBigUint64(48, true)]).toEqual([0x2_0000_0001n, 0x4_0000_0003n]);
    const resume = new DataView(encodeReply({ type: RSP.RESUME_AT, entry: 0x4020_0000n, flags: 1n, regs: [-1n] }).buffer);
    expect([resume.getBigUint64(16, true), resume.getBigUint64(24, true), resume.getBigUint64(40, true)]).toEqual([0x4020_0000n, 1n, 0xffff_ffff_ffff_ffffn]);
    expect(fastKey(0x8000_7fff, { hvc: true, smc: false, recordsWa2: true })).toBe(0x8000_7fffn | (1n << 32n) | (1n << 34n));
  });

  it("splits a byte stream into whole frames however it is cut", () => {
    const frames = [trap({ vcpu: 0 }), trap({ vcpu: 1 }), trap({ vcpu: 0, cntvct: 9n })];
    const all = new Uint8Array(frames.length * REQUEST_SIZE);
    frames.forEach((f, i) => all.set(f, i * REQUEST_SIZE));
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: all.length }), { maxLength: 8 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const s = new FrameSplitter();
      const got: Uint8Array[] = [];
      let prev = 0;
      for (const p of [...points, all.length]) {
        got.push(...s.push(all.subarray(prev, p)));
        prev = p;
      }
      return got.length === 3 && got.every((g, i) => g.every((b, k) => b === frames[i]![k])) && s.buffered === 0;
    }));
  });
});

describe("guest RAM layout", () => {
  it("puts the kernel 2 MiB above the shim, then the device tree and the initrd, 2 MiB-aligned", () => {
    const l = layoutFor(0x4000_0000n, 512n << 20n, 40n << 20n, 1n << 20n, 10n << 20n);
    expect(l).toEqual({ ok: true, layout: { kernel: 0x4020_0000n, dtb: 0x42c0_0000n, initrd: 0x42e0_0000n, initrdEnd: 0x42e0_0000n + (10n << 20n) } });
  });

  it("refuses RAM that is not at virt's base or too small, with the reason", () => {
    expect(layoutFor(0x8000_0000n, 512n << 20n, 1n, 1n, null)).toMatchObject({ ok: false, reason: expect.stringContaining("memory.base is 0x80000000") });
    expect(layoutFor(0x4000_0000n, 16n << 20n, 40n << 20n, 1n << 20n, null)).toMatchObject({ ok: false, reason: expect.stringContaining("the VM has 16 MiB") });
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

describe("device tree", () => {
  it("merges the conduit, bootargs, initrd, OP-TEE node and the shim's reservation into QEMU's tree", () => {
    const dts = mergeDts("/dts-v1/;\n\n/ {\n\tpsci { method = \"smc\"; };\n};\n", { conduit: "hvc", bootargs: 'console=ttyAMA0 x="y"', initrd: { start: 0x4800_0000n, end: 0x4810_0000n }, optee: true });
    expect(dts.split("\n").slice(0, 2)).toEqual(["/dts-v1/;", "/memreserve/ 0x40000000 0x200000;"]);
    expect(dts).toContain('psci { method = "hvc"; };');
    expect(dts).toContain('bootargs = "console=ttyAMA0 x=\\"y\\"";');
    expect(dts).toContain("linux,initrd-start = /bits/ 64 <0x48000000>;");
    expect(dts).toContain('firmware { optee { compatible = "linaro,optee-tz"; method = "hvc"; }; };');
    expect(mergeDts("/dts-v1/;\n/ { };\n", { conduit: "smc", bootargs: "", initrd: null, optee: false })).not.toContain("optee");
    expect(() => mergeDts("/ { };", { conduit: "smc", bootargs: "", initrd: null, optee: false })).toThrow("/dts-v1/");
  });
});
