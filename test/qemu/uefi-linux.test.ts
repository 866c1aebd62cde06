// UEFI boots Debian's kernel from a disk (issue 13, part 1): examples/uefi-linux.yaml, plus two probing VMs
// in the same run that reach into the device window from UEFI's shell. One boot of each VM.
// Firmware → (reset) → firmware → kernel's EFI stub → kernel → userspace, under the VM's policy; the disk is
// the emulated virtio-blk device in the device window (docs/devices.md).
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { runScenario, type RunReport, type VmReport } from "../../src/cli/run.js";
import type { QemuMachine } from "../../src/machine/qemu/machine.js";
import type { QemuVm } from "../../src/machine/qemu/qemu-vm.js";
import { consoleText, parseScenario } from "../../src/machine/qemu/scenario.js";
import { STATUS } from "../../src/machine/devices/virtio-mmio.js";

const PSCI = { VERSION: 0x8400_0000, SYSTEM_OFF: 0x8400_0008, SYSTEM_RESET: 0x8400_0009, CPU_ON: 0xc400_0003 };
const COUNTER_HZ = 62_500_000;

/** Probes typed into UEFI's shell: a register read through the window, then an access the device refuses. */
const probe = (hostile: string) => [
  { after: "to skip startup.nsh", send: "\u001b" },
  { after: "Shell>", send: "mm 0C000000 -w 4 -MMIO -n\r" },
  { after: "Shell>", send: `${hostile}\r` },
];

describe("examples/uefi-linux.yaml: UEFI boots Debian's kernel from a virtio-blk disk", () => {
  let report: RunReport;
  let machine: QemuMachine | undefined;
  const vm = (name: string): VmReport => report.vms.find((v) => v.name === name)!;
  const q = (name: string): QemuVm => machine!.vm(name);
  const logs: string[] = [];
  /** The disk's status register as Linux's init reports virtio_blk loaded. */
  let statusAtLoad: number | undefined;
  const calls = (name: string) => report.events.filter((e) => e.vm === name && e.conduit !== "hypervisor");

  beforeAll(async () => {
    const data = parse(readFileSync("examples/uefi-linux.yaml", "utf8")) as { vms: Record<string, unknown>; guests: Record<string, unknown> };
    const vmOf = { vcpus: 1, memory: { base: 0x4000_0000, size: "256MiB" }, conduit: "hvc", services: { psci: { version: "1.1" } } };
    data.vms["probe-size"] = vmOf;
    data.vms["probe-pair"] = vmOf;
    // A byte read of a 32-bit register (the device refuses it), and a copy of the window (dmem's CopyMem:
    // load pairs, which have no syndrome, ISV = 0: the shim refuses them).
    data.guests["probe-size"] = { firmware: "qemu-efi-aarch64", disk: "debian", input: probe("mm 0C000070 -w 1 -MMIO -n") };
    data.guests["probe-pair"] = { firmware: "qemu-efi-aarch64", disk: "debian", input: probe("dmem 0C000000 40") };
    const s = parseScenario("examples/uefi-linux.yaml", data, () => ({}));
    if (!s.ok) throw new Error(JSON.stringify(s.errors));
    report = await runScenario(s.scenario, {
      onStart: (m) => (machine = m),
      log: (l) => logs.push(l),
      // UEFI's exception handler loops; the probe has shown what it shows.
      onConsole: (name, line) => {
        if (name.startsWith("probe-") && line.includes("Synchronous Exception")) machine?.vm(name).stop("probe done");
        if (name === "uefi-linux" && line.includes("SMCV-MODULE loaded virtio_blk")) statusAtLoad = machine?.vm(name).diskTransport?.statusBits;
      },
    });
  }, 400_000);

  it("firmware, a reset, firmware again, the kernel's EFI stub from the disk, the kernel, userspace: powered off by the kernel", () => {
    const v = vm("uefi-linux");
    expect(v.failures).toEqual([]);
    expect(v.exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)", boots: 2 });
    const text = v.console.map(consoleText);
    expect(text.filter((l) => l.includes("UEFI Interactive Shell v2.2")).length).toBe(2);
    // UEFI found the disk, its MBR partition and the FAT file system on it.
    expect(text.some((l) => /FS0:.*BLK1/.test(l))).toBe(true);
    expect(text.some((l) => l.includes("HD(1,MBR,0x00000000,0x800,"))).toBe(true);
    expect(text.some((l) => l.endsWith("\\EFI\\DEBIAN\\LINUX.EFI initrd=\\INITRD console=ttyAMA0 rdinit=/init panic=-1"))).toBe(true);
    expect(text).toContain("EFI stub: Loaded initrd from command line option");
    expect(text).toContain("EFI stub: Exiting boot services...");
    // Userspace: the initramfs's init, with the command line startup.nsh gave the stub.
    expect(text.some((l) => /^SMCV-GUEST up kernel=6\.\S+ cmdline=\\EFI\\DEBIAN\\LINUX\.EFI initrd=\\INITRD console=ttyAMA0/.test(l))).toBe(true);
    expect(text).toContain("SMCV-CPUS online=0-1");
    expect(v.exit.aborts).toBe(0n);
  });

  it("the trace says which stage made each call: UEFI's SYSTEM_RESET, the kernel's PSCI probe and CPU_ON, and the power-off UEFI's runtime services make for the kernel", () => {
    const mine = calls("uefi-linux");
    // The sequence, runs of the same call and stage folded, for whoever reads the test's output.
    const runs: string[] = [];
    for (const e of mine) {
      const k = `${(e.fid >>> 0).toString(16)}/${e.stage}`;
      if (runs.length > 0 && runs[runs.length - 1]!.startsWith(`${k} `)) runs[runs.length - 1] = `${k} x${Number(runs[runs.length - 1]!.split(" x")[1]) + 1}`;
      else runs.push(`${k} x1`);
    }
    console.log(`uefi-linux calls by stage: ${runs.join(", ")}`);
    expect(mine.every((e) => e.stage === "firmware" || e.stage === "kernel")).toBe(true);
    // First boot: UEFI's shell `reset`.
    expect(mine[0]!.fid >>> 0).toBe(PSCI.SYSTEM_RESET);
    expect(mine[0]!.stage).toBe("firmware");
    // Second boot: the kernel's PSCI probe first, its secondary CPU's CPU_ON.
    const firstKernel = mine.findIndex((e) => e.stage === "kernel");
    expect(mine[firstKernel]!.fid >>> 0).toBe(PSCI.VERSION);
    expect(mine.slice(1, firstKernel)).toEqual([]);
    expect(mine.filter((e) => e.stage === "kernel").map((e) => e.fid >>> 0)).toContain(PSCI.CPU_ON);
    // The power-off: Linux on UEFI powers off through the ResetSystem runtime service, so the SYSTEM_OFF
    // is made by UEFI's code (identity-mapped, lower half), after the kernel's calls.
    const off = mine.filter((e) => e.fid >>> 0 === PSCI.SYSTEM_OFF);
    expect(off).toHaveLength(1);
    expect(off[0]!.stage).toBe("firmware");
    expect(mine.indexOf(off[0]!)).toBeGreaterThan(firstKernel);
    expect(mine.filter((e) => e.stage === "kernel").length).toBeGreaterThan(10);
  });

  it("the disk was read through the device window: device accesses emulated, chains served, the whole kernel and initrd read", () => {
    const d = q("uefi-linux");
    expect(d.mmioRefused).toBe(0);
    expect(d.mmioAccesses).toBeGreaterThan(100);
    expect(d.diskTransport!.chains).toBeGreaterThan(10);
    // The kernel Image is ~33 MB: at least that much was read by UEFI's FAT driver (in both boots' probing and the load).
    const blk = (d.diskTransport as unknown as { device: { sectorsRead: number } }).device;
    expect(blk.sectorsRead * 512).toBeGreaterThan(30_000_000);
    // UEFI reset the device when the stub exited boot services; Linux's virtio_blk set it up again: the
    // device's status when the console said the module had loaded.
    expect(statusAtLoad).toBeDefined();
    expect(statusAtLoad! & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
  });

  it("Linux drives the disk itself: virtio_mmio and virtio_blk bind, the MBR is read, the FAT partition mounts and startup.nsh reads back", () => {
    const text = vm("uefi-linux").console.map(consoleText);
    for (const m of ["virtio_mmio", "virtio_blk", "vfat"]) expect(text, m).toContain(`SMCV-MODULE loaded ${m}`);
    // The partition table was read through the interrupt path (vda1 found)...
    expect(text.some((l) => /virtio_blk virtio0: \[vda\] \d+ 512-byte logical blocks/.test(l))).toBe(true);
    expect(text.some((l) => / vda: vda1$/.test(l))).toBe(true);
    // ...and so were the run's reads: the MBR's signature, then the file through the FAT file system.
    // (startup.nsh has CRLF line ends: a CR may end each of its lines.)
    const run = text.filter((l) => l.startsWith("SMCV-RUN ")).map((l) => l.slice("SMCV-RUN ".length).trimEnd());
    expect(run[0]).toMatch(/ 55 aa$/);
    expect(run).toContain("fs0:");
    expect(run.some((l) => l.startsWith("\\EFI\\DEBIAN\\LINUX.EFI initrd=\\INITRD console=ttyAMA0"))).toBe(true);
    // Linux (booted by UEFI on GICv2) runs its interrupt handlers at running priority 0x00, so a wait of
    // the shim inside one cannot sleep (docs/qemu-channel.md, "Waiting"); how many polled instead:
    const blocked = vm("uefi-linux").exit.wakes!.map((w) => w.blocked);
    console.log(`uefi-linux: waits polled at running priority 0x00, per vCPU: ${blocked.join(", ")}`);
    // Dozens in the runs measured (the virtio-blk handler's accesses on vCPU 0): the condition occurred and was survived.
    expect(blocked.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    // No CPU stalled on the way (the stall this scenario once had: docs/devices.md).
    expect(text.filter((l) => /rcu.*stall|hung_task|blocked for more than/.test(l))).toEqual([]);
  });

  it("a register read from UEFI's shell goes through the window: the magic value", () => {
    for (const name of ["probe-size", "probe-pair"]) {
      expect(vm(name).console.map(consoleText).some((l) => l.includes("MMIO  0x000000000C000000 : 0x74726976")), name).toBe(true);
    }
  });

  it("a byte read of a 32-bit register is refused: an external abort for the guest, one log line, the VM only", () => {
    const v = vm("probe-size");
    expect(v.exit.state).toBe("stopped");
    expect(v.console.some((l) => l.includes("Synchronous Exception"))).toBe(true);
    expect(q("probe-size").mmioRefused).toBe(1);
    expect(logs.filter((l) => l.startsWith("probe-size:") && l.includes("1-byte read of register 0x70"))).toHaveLength(1);
  });

  it("a load pair in the window (no syndrome, ISV = 0) is refused by the shim, never emulated", () => {
    const v = vm("probe-pair");
    expect(v.exit.state).toBe("stopped");
    expect(v.console.some((l) => l.includes("Synchronous Exception"))).toBe(true);
    expect(v.exit.aborts).toBeGreaterThanOrEqual(1n);
    expect(q("probe-pair").mmioRefused + Number(v.exit.aborts)).toBeGreaterThanOrEqual(1);
  });

  it("figures: the shortest gaps between consecutive device accesses (an MMIO round trip and a few guest instructions)", () => {
    const gaps = [...q("uefi-linux").mmioGaps].sort((a, b) => a - b);
    expect(gaps.length).toBeGreaterThan(50);
    const us = (t: number) => (t / COUNTER_HZ) * 1e6;
    const p10 = us(gaps[Math.floor(gaps.length / 10)]!), median = us(gaps[Math.floor(gaps.length / 2)]!);
    console.log(`uefi-linux: ${gaps.length} device-access gaps: min ${us(gaps[0]!).toFixed(1)} µs, p10 ${p10.toFixed(1)} µs, median ${median.toFixed(1)} µs`);
    expect(gaps[0]!).toBeGreaterThan(0);
  });
});
