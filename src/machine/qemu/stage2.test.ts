import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { guestMap, VIRT } from "./guest-map.js";
import { MACHINE_RAM_BASE, SHIM_REGION, SHIM_SIZE } from "./layout.js";
import { buildStage2, translate, VTCR, type Stage2 } from "./stage2.js";

const TABLES = MACHINE_RAM_BASE + BigInt(SHIM_REGION.stage2);
const RAM = 512n << 20n;

function build(gic: 2 | 3, vcpus = 2, size = RAM): Stage2 {
  const r = buildStage2(guestMap(MACHINE_RAM_BASE, size, vcpus, gic), TABLES, SHIM_REGION.stage2Size);
  if (!r.ok) throw new Error(r.reason);
  return r.stage2;
}

describe("stage-2 tables", () => {
  it("map the guest's RAM from its base to machine RAM above the shim's region, as normal executable memory", () => {
    const s = build(2);
    expect(translate(s, TABLES, 0x4000_0000n)).toEqual({ pa: 0x4000_0000n + SHIM_SIZE, kind: "ram", executable: true });
    expect(translate(s, TABLES, 0x4000_0000n + RAM - 1n)).toEqual({ pa: 0x4000_0000n + SHIM_SIZE + RAM - 1n, kind: "ram", executable: true });
    expect(translate(s, TABLES, 0x4000_0000n + RAM)).toBeNull();
    expect(translate(s, TABLES, 0x4000_0000n - 1n)).toBeNull();
  });

  it("map the UART and the GIC at their own addresses as device memory no one can execute, and nothing else of the machine", () => {
    for (const gic of [2, 3] as const) {
      const s = build(gic, 4);
      expect(translate(s, TABLES, VIRT.uart + 0x18n)).toEqual({ pa: VIRT.uart + 0x18n, kind: "device", executable: false });
      expect(translate(s, TABLES, VIRT.gicDist + 0x100n)).toMatchObject({ pa: VIRT.gicDist + 0x100n, kind: "device" });
      if (gic === 2) {
        expect(translate(s, TABLES, VIRT.gicCpu + 0x1000n)).toMatchObject({ pa: VIRT.gicCpu + 0x1000n }); // GICC_DIR
        expect(translate(s, TABLES, VIRT.gicCpu + 0x2000n)).toBeNull();
      } else {
        expect(translate(s, TABLES, VIRT.gicRedist + 4n * VIRT.gicRedistStride - 1n)).toMatchObject({ kind: "device" });
        expect(translate(s, TABLES, VIRT.gicRedist + 4n * VIRT.gicRedistStride)).toBeNull(); // a 5th vCPU's frame
      }
      // What the VM is not given: fw_cfg (DMA to any address), virtio-mmio (the doorbells), PCIe, GICv2m, the
      // GIC's hypervisor and virtual CPU interfaces, the ITS, flash, RTC, GPIO.
      for (const ipa of [0x0n, 0x0802_0000n, 0x0803_0000n, 0x0804_0000n, 0x0808_0000n, 0x0901_0000n, 0x0902_0000n, 0x0903_0000n, 0x0a00_0000n, 0x0a00_0e00n, 0x1000_0000n, 0x3eff_0000n, 0x3f00_0000n]) {
        expect(translate(s, TABLES, ipa), `0x${ipa.toString(16)}`).toBeNull();
      }
    }
  });

  it("give a firmware guest virt's two flash banks at their own addresses, executable, in 2 MiB blocks, and nothing more", () => {
    const r = buildStage2(guestMap(MACHINE_RAM_BASE, RAM, 2, 3, { flash: true }), TABLES, SHIM_REGION.stage2Size);
    if (!r.ok) throw new Error(r.reason);
    const s = r.stage2;
    expect(translate(s, TABLES, 0x0n)).toEqual({ pa: 0x0n, kind: "flash", executable: true });
    expect(translate(s, TABLES, VIRT.flashBank - 4n)).toEqual({ pa: VIRT.flashBank - 4n, kind: "flash", executable: true });
    expect(translate(s, TABLES, 2n * VIRT.flashBank - 4n)).toEqual({ pa: 2n * VIRT.flashBank - 4n, kind: "flash", executable: true });
    // Right after bank 1: the GIC distributor (0x08000000) is the next thing mapped; what lies between is not.
    expect(translate(s, TABLES, 2n * VIRT.flashBank)).toMatchObject({ kind: "device" });
    for (const ipa of [0x0801_0000n - 0x1_0000n + 0x2_0000n, 0x0902_0000n, 0x0a00_0000n, 0x1000_0000n]) expect(translate(s, TABLES, ipa), `0x${ipa.toString(16)}`).toBeNull();
    // The flash adds 64 block descriptors to the first table and no level-3 table.
    expect(s.tables.length).toBe(build(3, 2).tables.length);
    // Still nothing of the shim's region.
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 36n) - 1n }), (ipa) => {
        const t = translate(s, TABLES, ipa);
        return t === null || t.pa < MACHINE_RAM_BASE || t.pa >= MACHINE_RAM_BASE + SHIM_SIZE;
      }),
      { numRuns: 5_000 },
    );
  });

  it("never translate any IPA to the shim's region (its code, mailboxes, host page and these tables)", () => {
    const s = build(3, 8, 3n << 30n);
    const shimEnd = MACHINE_RAM_BASE + SHIM_SIZE;
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 36n) - 1n }), (ipa) => {
        const t = translate(s, TABLES, ipa);
        return t === null || t.pa < MACHINE_RAM_BASE || t.pa >= shimEnd;
      }),
      { numRuns: 20_000 },
    );
    // And walking every page of the guest's RAM exhaustively: each lands above the shim, one to one.
    for (let ipa = MACHINE_RAM_BASE; ipa < MACHINE_RAM_BASE + (3n << 30n); ipa += 0x20_0000n) expect(translate(s, TABLES, ipa)!.pa).toBe(ipa + SHIM_SIZE);
  });

  it("fit their room, say VTCR/VTTBR as the shim loads them, and refuse what they cannot map", () => {
    const s = build(2);
    expect(s.tables.length % 4096).toBe(0);
    expect(s.tables.length).toBeLessThanOrEqual(SHIM_REGION.stage2Size);
    expect(s.vttbr & ((1n << 48n) - 1n)).toBe(TABLES);
    expect(VTCR & 0x3fn).toBe(30n); // 34-bit IPA
    expect((VTCR >> 6n) & 3n).toBe(0n); // start at level 2
    const bad = (regions: Parameters<typeof buildStage2>[0], room: number = SHIM_REGION.stage2Size) => {
      const r = buildStage2(regions, TABLES, room);
      return r.ok ? "ok" : r.reason;
    };
    expect(bad([{ name: "ram", ipa: 0x4000_1000n, pa: 0x4020_0000n, size: 0x20_0000n, kind: "ram" }])).toContain("not aligned");
    expect(bad([{ name: "dev", ipa: 0x900_0800n, pa: 0x900_0800n, size: 0x1000n, kind: "device" }])).toContain("not aligned");
    expect(bad([{ name: "huge", ipa: 1n << 34n, pa: 0n, size: 0x20_0000n, kind: "ram" }])).toContain("34-bit");
    expect(bad([{ name: "a", ipa: 0x900_0000n, pa: 0x900_0000n, size: 0x1000n, kind: "device" }, { name: "b", ipa: 0x900_0000n, pa: 0x900_0000n, size: 0x1000n, kind: "device" }])).toContain("mapped twice");
    expect(bad(guestMap(MACHINE_RAM_BASE, 4n << 30n, 1, 2), 4096)).toContain("need more than 4096 bytes");
    expect(bad(guestMap(MACHINE_RAM_BASE, 4n << 30n, 1, 2), 65536)).toContain("need more than 65536 bytes"); // the first table fits, its level-3 tables do not
    const r = buildStage2(guestMap(MACHINE_RAM_BASE, 512n << 20n, 1, 2), TABLES + 4096n, SHIM_REGION.stage2Size);
    expect(r.ok ? "ok" : r.reason).toContain("not aligned");
  });
});
