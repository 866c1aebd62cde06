import { describe, expect, it } from "vitest";
import { mergeDts, rootNodes, type DtOverrides } from "./dtb.js";
import { guestMap } from "./guest-map.js";

/** The shape of QEMU 7.2's virt tree (dtc -O dts of `-M virt,virtualization=on,dumpdtb=`), cut down. */
const QEMU_DTS = `/dts-v1/;

/ {
\tinterrupt-parent = <0x8003>;
\tpsci {
\t\tmigrate = <0xc4000005>;
\t\tcpu_on = <0xc4000003>;
\t\tcpu_off = <0x84000002>;
\t\tcpu_suspend = <0xc4000001>;
\t\tmethod = "smc";
\t\tcompatible = "arm,psci-1.0\\0arm,psci-0.2\\0arm,psci";
\t};

\tmemory@40000000 {
\t\treg = <0x00 0x40000000 0x00 0x20200000>;
\t\tdevice_type = "memory";
\t};

\tplatform-bus@c000000 {
\t};

\tfw-cfg@9020000 {
\t};

\tvirtio_mmio@a000000 {
\t};

\tgpio-keys {
\t};

\tpcie@10000000 {
\t};

\tpl011@9000000 {
\t};

\tintc@8000000 {
\t\tinterrupts = <0x01 0x09 0x04>;
\t\treg = <0x00 0x8000000 0x00 0x10000 0x00 0x8010000 0x00 0x10000 0x00 0x8030000 0x00 0x10000 0x00 0x8040000 0x00 0x10000>;

\t\tv2m@8020000 {
\t\t};
\t};

\tflash@0 {
\t};

\tcpus {
\t\tcpu-map {
\t\t};

\t\tcpu@0 {
\t\t};

\t\tcpu@1 {
\t\t};
\t};

\ttimer {
\t};

\tchosen {
\t};
};
`;

const o = (over: Partial<DtOverrides> = {}): DtOverrides => ({
  conduit: "hvc",
  bootargs: 'console=ttyAMA0 x="y"',
  initrd: { start: 0x4800_0000n, end: 0x4810_0000n },
  optee: true,
  map: guestMap(0x4000_0000n, 512n << 20n, 2, 2),
  psci: { version: "1.1" },
  ...over,
});

/** The merged block smcvisor appends (dtc merges it into QEMU's root). */
const merged = (over: Partial<DtOverrides> = {}) => mergeDts(QEMU_DTS, o(over)).slice(QEMU_DTS.length - 1);

describe("the guest's device tree", () => {
  it("keeps only what the guest is given: every other node of QEMU's tree is deleted, by allowlist", () => {
    expect(rootNodes(QEMU_DTS)).toContain("fw-cfg@9020000");
    const m = merged();
    for (const n of ["platform-bus@c000000", "fw-cfg@9020000", "virtio_mmio@a000000", "gpio-keys", "pcie@10000000", "flash@0"]) expect(m).toContain(`/delete-node/ ${n};`);
    for (const n of ["pl011@9000000", "intc@8000000", "cpus", "timer", "chosen", "psci", "memory@40000000"]) expect(m).not.toContain(`/delete-node/ ${n};`);
  });

  it("keeps the flash node for a firmware guest only, as QEMU wrote it (both banks), and still nothing else", () => {
    const m = merged({ map: guestMap(0x4000_0000n, 512n << 20n, 2, 2, { flash: true }) });
    expect(m).not.toContain("/delete-node/ flash@0;");
    for (const n of ["platform-bus@c000000", "fw-cfg@9020000", "virtio_mmio@a000000", "gpio-keys", "pcie@10000000"]) expect(m).toContain(`/delete-node/ ${n};`);
  });

  it("describes the guest's RAM (not the machine's), and the GIC as the guest sees it", () => {
    const m = merged();
    expect(m).toContain('memory@40000000 { device_type = "memory"; reg = <0x0 0x40000000 0x0 0x20000000>; };');
    expect(m).toMatch(/intc@8000000 \{ reg = <0x0 0x8000000 0x0 0x10000 0x0 0x8010000 0x0 0x2000>; \/delete-property\/ interrupts; \/delete-node\/ v2m@8020000; \};/);
    const v3 = merged({ map: guestMap(0x4000_0000n, 512n << 20n, 4, 3) });
    expect(v3).toContain("intc@8000000 { reg = <0x0 0x8000000 0x0 0x10000 0x0 0x80a0000 0x0 0x80000>;");
    expect(mergeDts(QEMU_DTS, o()).includes("/memreserve/")).toBe(false);
  });

  it("says the PSCI version the policy sets, with the VM's conduit, and PSCI 0.1 IDs only when the VM has them", () => {
    expect(merged({ psci: { version: "0.2" } })).toContain('psci { compatible = "arm,psci-0.2"; method = "hvc"; /delete-property/ cpu_suspend; /delete-property/ cpu_off; /delete-property/ cpu_on; /delete-property/ migrate; };');
    expect(merged({ psci: { version: "1.3" }, conduit: "smc" })).toContain('psci { compatible = "arm,psci-1.0", "arm,psci-0.2"; method = "smc";');
    const legacy = merged({ psci: { version: "1.0", v0_1: { cpu_suspend: 0x95c1_ba5e, cpu_off: 0x95c1_ba5f, cpu_on: 0x95c1_ba60, migrate: 0x95c1_ba61 } } });
    expect(legacy).toContain('compatible = "arm,psci-1.0", "arm,psci-0.2", "arm,psci";');
    expect(legacy).toContain("cpu_on = <0x95c1ba60>;");
    const none = merged({ psci: null });
    expect(none).toContain("/delete-node/ psci;");
    expect(none).not.toMatch(/\tpsci \{/);
  });

  it("offers idle states (cpuIdle) under /cpus/idle-states, each CPU pointing at all of them, shallowest first", () => {
    const idleStates = [
      { name: "cpu-standby", param: 0x1, entryLatencyUs: 20, exitLatencyUs: 40, minResidencyUs: 100 },
      { name: "cpu-power-down", param: 0x4000_0002, entryLatencyUs: 150, exitLatencyUs: 300, minResidencyUs: 1000 },
    ];
    const m = merged({ psci: { version: "1.1", idleStates } });
    expect(m).toContain(
      '\tcpus { idle-states { entry-method = "psci"; smcv_idle_0: cpu-standby { compatible = "arm,idle-state"; arm,psci-suspend-param = <0x1>; entry-latency-us = <20>; exit-latency-us = <40>; min-residency-us = <100>; }; smcv_idle_1: cpu-power-down { compatible = "arm,idle-state"; arm,psci-suspend-param = <0x40000002>;',
    );
    // Every CPU node, not cpu-map.
    expect(m).toContain("cpu@0 { cpu-idle-states = <&smcv_idle_0 &smcv_idle_1>; }; cpu@1 { cpu-idle-states = <&smcv_idle_0 &smcv_idle_1>; }; };");
    expect(m).not.toContain("cpu-map { cpu-idle-states");
    expect(merged()).not.toContain("idle-states");
    expect(merged({ psci: null })).not.toContain("idle-states");
  });

  it("carries bootargs, the initrd and the OP-TEE node, and refuses what is not device-tree source", () => {
    const m = merged();
    expect(m).toContain('bootargs = "console=ttyAMA0 x=\\"y\\"";');
    expect(m).toContain("linux,initrd-start = /bits/ 64 <0x48000000>;");
    expect(m).toContain('firmware { optee { compatible = "linaro,optee-tz"; method = "hvc"; }; };');
    expect(merged({ optee: false, initrd: null })).not.toMatch(/optee|initrd/);
    expect(() => mergeDts("/ { };", o())).toThrow("/dts-v1/");
  });

  it("describes an emulated virtio-mmio transport (the device window) with its reg and edge-triggered SPI, and none without a disk", () => {
    const m = merged({ virtio: [{ base: 0x0c00_0000n, size: 0x200n, spi: 112 }] });
    expect(m).toContain('virtio_mmio@c000000 { compatible = "virtio,mmio"; reg = <0x0 0xc000000 0x0 0x200>; interrupts = <0x0 0x70 0x1>; dma-coherent; };');
    // QEMU's own platform bus at the same address stays deleted.
    expect(m).toContain("/delete-node/ platform-bus@c000000;");
    expect(merged()).not.toContain('"virtio,mmio"');
  });
});
