import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MappedGuestMemory } from "./guest-memory.js";
import { SHIM_SIZE } from "./layout.js";
import { SharedRam } from "./shared-ram.js";

const path = () => `/dev/shm/smcvisor-test-${process.pid}-${Math.random().toString(36).slice(2)}`;

describe("the shared RAM file", () => {
  it("is one mapping shared with every process that maps the file: writes go both ways without system calls", () => {
    const ram = new SharedRam(path(), 4 << 20);
    try {
      expect(statSync(ram.path).mode & 0o777).toBe(0o600);
      ram.bytes.set([1, 2, 3, 4], 4096);
      // Another process reads what this one wrote (through the page cache the mapping is).
      expect([...readFileSync(ram.path).subarray(4096, 4100)]).toEqual([1, 2, 3, 4]);
      // ... and this one sees what another process writes, in place.
      execFileSync("python3", ["-c", `f=open(${JSON.stringify(ram.path)},"r+b"); f.seek(8192); f.write(bytes([9,8,7])); f.close()`]);
      expect([...ram.bytes.subarray(8192, 8195)]).toEqual([9, 8, 7]);
      // Atomics work on the mapping (the channel's sequence words use them).
      const words = new Int32Array(ram.bytes.buffer, 0, 4);
      Atomics.store(words, 1, 42);
      expect(readFileSync(ram.path).readInt32LE(4)).toBe(42);
    } finally {
      ram.dispose();
    }
  });

  it("never takes over an existing file, and after dispose is gone with every view of it empty", () => {
    const p = path();
    writeFileSync(p, "someone else's");
    expect(() => new SharedRam(p, 1 << 20)).toThrow(/EEXIST/);
    expect(readFileSync(p, "utf8")).toBe("someone else's");
    execFileSync("rm", [p]);
    const ram = new SharedRam(path(), 1 << 20);
    const view = ram.view(0, 64);
    ram.dispose();
    ram.dispose();
    expect(existsSync(ram.path)).toBe(false);
    expect(ram.bytes.length).toBe(0);
    expect(view.length).toBe(0);
    expect(ram.mapped).toBe(false);
    expect(() => new SharedRam(path(), 1000)).toThrow(/multiple of 4 KiB/);
  });
});

describe("guest memory through the mapping", () => {
  it("reaches the guest's RAM by IPA, above the shim's region, and nothing outside it", () => {
    const ram = new SharedRam(path(), Number(SHIM_SIZE) + (2 << 20));
    const base = 0x4000_0000n;
    const m = new MappedGuestMemory(ram, base, 2n << 20n);
    try {
      expect(m.write(base + 16n, Uint8Array.of(0xaa, 0xbb))).toBe(true);
      expect([...ram.bytes.subarray(Number(SHIM_SIZE) + 16, Number(SHIM_SIZE) + 18)]).toEqual([0xaa, 0xbb]);
      expect([...m.read(base + 16n, 2)!]).toEqual([0xaa, 0xbb]);
      // The shim's region is below base: no IPA reaches it; nor anything past the end, nor a negative length.
      expect(m.read(base - 1n, 1)).toBeNull();
      expect(m.write(base - 4096n, new Uint8Array(8))).toBe(false);
      expect(m.read(base + (2n << 20n) - 1n, 2)).toBeNull();
      expect(m.read(base, -1)).toBeNull();
      expect(ram.bytes.subarray(0, Number(SHIM_SIZE)).every((b) => b === 0)).toBe(true);
      // read() is a copy: what a handler keeps cannot change under it; view() is the guest's bytes in place.
      const r = m.read(base + 16n, 2)!;
      const v = m.view(base + 16n, 2)!;
      m.write(base + 16n, Uint8Array.of(1, 1));
      expect([...r]).toEqual([0xaa, 0xbb]);
      expect([...v]).toEqual([1, 1]);
      expect(m.view(base - 1n, 2)).toBeNull();
      expect(m.view(base + (2n << 20n) - 1n, 2)).toBeNull();
    } finally {
      ram.dispose();
    }
    expect(m.read(base, 1)).toBeNull();
    expect(m.view(base, 1)).toBeNull();
    expect(m.write(base, Uint8Array.of(1))).toBe(false);
  });
});
