// Firmware guests under QEMU (issue 13, part 1): Debian's U-Boot and UEFI in the VM's flash, entered at EL1 at
// their reset address under the EL2 shim, driven through their serial port. One boot per scenario:
// examples/firmware.yaml (four VMs: U-Boot and EDK2's UEFI, each with PSCI 1.1 over SMC and PSCI 1.0 over HVC),
// then a hostile scenario for the new input channel and the firmware's boundary.
import { readFileSync, readlinkSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureFirmware } from "../../guests/firmware/firmware.js";
import { runScenario, type RunReport, type VmReport } from "../../src/cli/run.js";
import type { QemuMachine } from "../../src/machine/qemu/machine.js";
import { consoleText, loadScenario, parseScenario } from "../../src/machine/qemu/scenario.js";
import type { TraceEvent } from "../../src/trace/ring.js";

const vm = (r: RunReport, name: string): VmReport => r.vms.find((v) => v.name === name)!;
const calls = (r: RunReport, name: string) => r.events.filter((e: TraceEvent) => e.vm === name && e.conduit !== "hypervisor");
const PSCI = { VERSION: 0x8400_0000, FEATURES: 0x8400_000a, SYSTEM_OFF: 0x8400_0008, SYSTEM_RESET: 0x8400_0009 };

describe("examples/firmware.yaml: Debian's U-Boot and UEFI under smcvisor", () => {
  let report: RunReport;
  const uboot = () => report.vms.filter((v) => v.name.startsWith("u-boot-"));
  const uefi = () => report.vms.filter((v) => v.name.startsWith("uefi-"));

  beforeAll(async () => {
    const s = loadScenario("examples/firmware.yaml");
    if (!s.ok) throw new Error(JSON.stringify(s.errors));
    report = await runScenario(s.scenario);
  }, 300_000);

  it("runs all four VMs, and every expectation of the scenario holds", () => {
    expect(report.vms.map((v) => v.name).sort()).toEqual(["u-boot-hvc", "u-boot-smc", "uefi-hvc", "uefi-smc"]);
    expect(report.vms.flatMap((v) => v.failures.map((f) => `${v.name}: ${f}`))).toEqual([]);
  });

  it("U-Boot reaches its prompt twice (a reset between), powers off through PSCI SYSTEM_OFF", () => {
    for (const v of uboot()) {
      expect(v.exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)", boots: 2 });
      expect(v.console.filter((l) => l.startsWith("U-Boot 2023.01")).length, v.name).toBe(2);
      expect(v.console.filter((l) => l.startsWith("=> ")).map((l) => l.trim()), v.name).toEqual(["=> reset", "=> poweroff"]);
      // U-Boot found its flash (the VM's own) and took the device tree from the start of RAM: its memory is the VM's.
      expect(v.console, v.name).toContain("DRAM:  256 MiB");
      expect(v.console, v.name).toContain("Flash: 64 MiB");
      expect(v.exit.aborts, v.name).toBe(0n);
    }
  });

  it("the trace shows U-Boot's PSCI probe (PSCI_VERSION, PSCI_FEATURES), its SYSTEM_RESET and, on the next boot, its SYSTEM_OFF, over each VM's conduit", () => {
    for (const [name, conduit, version] of [["u-boot-smc", "smc", 0x1_0001n], ["u-boot-hvc", "hvc", 0x1_0000n]] as const) {
      const mine = calls(report, name);
      expect(mine.map((e) => e.fid >>> 0), name).toEqual([PSCI.VERSION, PSCI.FEATURES, PSCI.SYSTEM_RESET, PSCI.SYSTEM_OFF]);
      expect(mine.every((e) => e.conduit === conduit && e.action === "emulate"), name).toBe(true);
      expect(mine[0]!.x0, name).toBe(version);
      // The hypervisor reset the VM's domain for its SYSTEM_RESET (its own call, traced as such).
      expect(report.events.some((e) => e.conduit === "hypervisor" && e.fid >>> 0 === PSCI.SYSTEM_RESET && (e.origin ?? "").includes(`reset ${name}`)), name).toBe(true);
    }
  });

  it("UEFI reaches its shell twice (`reset` between), powers off with `reset -s`, nothing outside its map", () => {
    expect(uefi().length).toBe(2);
    for (const v of uefi()) {
      expect(v.exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)", boots: 2 });
      expect(v.exit.aborts, v.name).toBe(0n);
      // Patterns see the lines without their terminal control sequences; the console keeps what UEFI printed.
      const text = v.console.map(consoleText);
      expect(text.filter((l) => l.includes("UEFI Interactive Shell v2.2")).length, v.name).toBe(2);
      expect(text.filter((l) => l.startsWith("Shell> ")).map((l) => l.trim()), v.name).toEqual(["Shell> dmem 4000000 40", "Shell> reset", "Shell> reset -s"]);
      expect(v.console.some((l) => l.includes("\x1b[") && consoleText(l).startsWith("Shell> reset")), v.name).toBe(true);
      // Flash bank 0 is the image (its shell ran from it); no disk, no network: no mapping.
      expect(text, v.name).toContain("map: No mapping found.");
      // Flash bank 1 started as zeros (no file behind it): UEFI wrote its variable store's firmware volume there.
      expect(text.map((l) => l.trim()), v.name).toContain("04000020: 00 00 0C 00 00 00 00 00-5F 46 56 48 36 0E 00 00  *........_FVH6...*");
    }
  });

  it("the trace shows UEFI's SYSTEM_RESET and, on the next boot, its SYSTEM_OFF over each VM's conduit, and no other call", () => {
    for (const [name, conduit] of [["uefi-smc", "smc"], ["uefi-hvc", "hvc"]] as const) {
      const mine = calls(report, name);
      expect(mine.map((e) => e.fid >>> 0), name).toEqual([PSCI.SYSTEM_RESET, PSCI.SYSTEM_OFF]);
      expect(mine.every((e) => e.conduit === conduit && e.action === "emulate"), name).toBe(true);
      expect(report.events.some((e) => e.conduit === "hypervisor" && e.fid >>> 0 === PSCI.SYSTEM_RESET && (e.origin ?? "").includes(`reset ${name}`)), name).toBe(true);
    }
  });
});

/**
 * A hostile scenario: it types QEMU's multiplexer escapes (Ctrl-A c: the monitor, Ctrl-A x: quit), reads
 * fw_cfg and a doorbell transport from the firmware, writes the flash and reads it back after a reset. A
 * second VM types only its own commands and must see none of the first one's.
 */
const HOSTILE = {
  platform: { name: "hostile-board" },
  vms: {
    typist: { vcpus: 1, memory: { base: 0x4000_0000, size: "256MiB" }, conduit: "smc", services: { psci: { version: "1.1" } } },
    bystander: { vcpus: 1, memory: { base: 0x4000_0000, size: "256MiB" }, conduit: "hvc", services: { psci: { version: "1.1" } } },
  },
  guests: {
    typist: {
      firmware: "u-boot-qemu",
      boots: 2,
      input: [
        { after: "Hit any key to stop autoboot", send: " " },
        // QEMU's mux escapes (monitor, quit, help, send break): only U-Boot's line editor sees them.
        { after: "=>", send: "\u0001c\u0001x\u0001h\u0001b\n" },
        { after: "=>", send: "echo typed-after-escapes\n" },
        // The device tree at the start of RAM: what the VM is given, as virt gives it to firmware.
        { after: "=>", send: "fdt addr 0x40000000; fdt list /\n" },
        { after: "=>", send: "fdt print /psci\n" },
        { after: "=>", send: "fdt print /memory@40000000\n" },
        // A firmware guest's /chosen has no Linux command line: only the boot number the hypervisor keeps there.
        { after: "=>", send: "fdt print /chosen\n" },
        // The flash is the VM's own: U-Boot erases its environment's sectors in bank 1 and writes them (QEMU
        // 7.2's pflash times out U-Boot's buffered write in the second sector, under plain QEMU with -bios
        // too), and what it wrote stays, across the VM's reset, in QEMU's pflash device.
        { after: "=>", send: "md.l 0x04000000 1\n" },
        { after: "=>", send: "saveenv\n" },
        // Bank 0 left in CFI query mode (reads are no longer the image) when the VM resets.
        { after: "=>", send: "mw.l 0x0 0x98 1; md.l 0x0 1\n" },
        // fw_cfg (DMA to any address) is not mapped: a synchronous external abort, U-Boot resets.
        { after: "=>", send: "md.l 0x09020000 1\n" },
        { after: "Hit any key to stop autoboot", send: " " },
        { after: "=>", send: "md.l 0x04000000 1\n" },
        { after: "=>", send: "md.l 0x0 1\n" },
        { after: "=>", send: "poweroff\n" },
      ],
    },
    bystander: {
      firmware: "u-boot-qemu",
      input: [
        { after: "Hit any key to stop autoboot", send: " " },
        { after: "=>", send: "echo bystander-here\n" },
        { after: "=>", send: "poweroff\n" },
      ],
    },
  },
};

describe("console input and the firmware's boundary", () => {
  let report: RunReport;
  const args = new Map<string, string[]>();
  const stdin = new Map<string, string>();

  beforeAll(async () => {
    const parsed = parseScenario("hostile", HOSTILE, () => ({}));
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    let machine: QemuMachine | undefined;
    report = await runScenario(parsed.scenario, {
      onStart: (m) => (machine = m),
      onConsole: (name) => {
        if (args.has(name) || !machine) return;
        const pid = machine.vm(name).pid!;
        args.set(name, readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"));
        stdin.set(name, readlinkSync(`/proc/${pid}/fd/0`));
      },
    });
  }, 200_000);

  const typist = () => vm(report, "typist");

  it("both VMs end by their own SYSTEM_OFF", () => {
    expect(report.vms.flatMap((v) => v.failures.map((f) => `${v.name}: ${f}`))).toEqual([]);
    expect(typist().exit).toMatchObject({ state: "off", boots: 2 });
    expect(vm(report, "bystander").exit).toMatchObject({ state: "off", boots: 1 });
  });

  it("QEMU's standard input is the serial port only: no multiplexer, no monitor, no firmware drive; Ctrl-A sequences reach U-Boot and nothing else", () => {
    for (const [name, a] of args) {
      expect(a.join(" "), name).toContain("-serial stdio");
      expect(a.join(" "), name).toContain("-monitor none");
      expect(a.some((x) => /mux|mon:|-bios|-pflash|if=pflash|-drive|semihosting/.test(x)), name).toBe(false);
      // The one monitor is the hypervisor's QMP, on a unix socket in the VM's run directory.
      expect(a[a.indexOf("-qmp") + 1], name).toMatch(/^unix:\/.+\/qmp\.sock,server=on,wait=off$/);
      // Node's "pipe" for a child's stdio is a socket pair.
      expect(stdin.get(name), name).toMatch(/^(pipe|socket):/);
    }
    const c = typist().console;
    // QEMU did not quit (the run went on to the next boot), printed no monitor prompt and no mux help.
    expect(c.some((l) => l.includes("(qemu)") || l.includes("C-a h") || l.includes("QEMU: Terminated"))).toBe(false);
    expect(c).toContain("typed-after-escapes");
  });

  it("one VM's input never reaches another VM", () => {
    const b = vm(report, "bystander").console;
    expect(b).toContain("bystander-here");
    expect(b.some((l) => /typed-after-escapes|saveenv|fdt |md\.l/.test(l))).toBe(false);
    expect(typist().console.some((l) => l.includes("bystander-here"))).toBe(false);
  });

  it("the device tree at the start of RAM lists only what the VM is given, and PSCI as the policy says", () => {
    const c = typist().console.map((l) => l.trim());
    const nodes = c.filter((l) => /^[a-z][\w,.-]*(@[0-9a-f]+)? \{$/.test(l)).map((l) => l.slice(0, -2));
    for (const n of ["flash@0", "pl011@9000000", "intc@8000000", "psci", "memory@40000000", "chosen"]) expect(nodes, n).toContain(n);
    for (const n of nodes) expect(n).not.toMatch(/fw-cfg|virtio_mmio|pcie|pl031|pl061|gpio-keys|platform-bus/);
    expect(c).toContain('compatible = "arm,psci-1.0", "arm,psci-0.2";');
    expect(c).toContain('method = "smc";');
    expect(c).toContain("reg = <0x00000000 0x40000000 0x00000000 0x10000000>;");
    expect(c).toContain('bootargs = "smcvisor.boot=0001";');
  });

  it("fw_cfg is not mapped for firmware either: a synchronous external abort, counted, and U-Boot resets through PSCI", () => {
    const c = typist().console;
    expect(c.some((l) => l.includes('"Synchronous Abort" handler, esr 0x96000010'))).toBe(true);
    expect(typist().exit.aborts).toBe(1n);
    expect(calls(report, "typist").map((e) => e.fid >>> 0)).toContain(PSCI.SYSTEM_RESET);
  });

  it("what U-Boot writes to its flash stays in the VM's flash, across its reset (QEMU's pflash device, no host file)", () => {
    const c = typist().console;
    expect(c).toContain("Erased 2 sectors");
    // Bank 1 starts as zeros (no file behind it); after the erase and what U-Boot wrote before its write timed
    // out (the environment's first sector, from its CRC on), the next boot reads U-Boot's own word back.
    const words = c.filter((l) => l.startsWith("04000000: ")).map((l) => l.slice(10, 18));
    expect(words.length).toBe(2);
    expect(words[0]).toBe("00000000");
    expect(words[1]).not.toBe("00000000");
  });

  it("a reset brings the image back in flash bank 0 even when the firmware left the bank in command mode", () => {
    const c = typist().console;
    const first = readFileSync(ensureFirmware("u-boot-qemu")).readUInt32LE(0).toString(16).padStart(8, "0");
    expect(c.filter((l) => l.startsWith("00000000: ")).map((l) => l.slice(10, 18))).toEqual([expect.not.stringMatching(first), first]);
  });
});
