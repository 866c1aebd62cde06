// Forwarding under QEMU (issue 5): examples/policy.yaml with every VM running the bare-metal guest. dom0's
// SiP (EEMI-shaped) calls reach the modelled secure monitor, domU's are denied by policy, the driver domain
// reaches only its own node, and domU's OEM call is served by the delegate module.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emptyReport, parseGuestLine, writeScriptImage, type GuestReport, type ScriptStep } from "../../src/machine/qemu/baremetal.js";
import { QemuMachine } from "../../src/machine/qemu/machine.js";
import type { VmExit } from "../../src/machine/qemu/qemu-vm.js";
import { loadConfigFile } from "../../src/cli/config-file.js";
import { clockOf, PM_API, XST_PM } from "../../src/firmware/monitor/eemi.js";

const SIP = 0xc200_0000n;
const UART_0 = 33, UART_1 = 34, SD_0 = 39, SD_1 = 40, GPIO = 46;
const eemi = (api: number, a0 = 0, a1 = 0): bigint[] => [SIP | BigInt(api), (BigInt(a1) << 32n) | BigInt(a0)];
const SYSTEM_OFF: ScriptStep = { vcpu: 0, conduit: "hvc", regs: [0x8400_0008n], halts: true };

const SCRIPTS: Record<string, bigint[][]> = {
  dom0: [eemi(PM_API.PM_GET_API_VERSION), eemi(PM_API.PM_CLOCK_ENABLE, clockOf(UART_0)), eemi(PM_API.PM_REQUEST_NODE, UART_1, 1), eemi(PM_API.PM_REQUEST_NODE, GPIO, 1), eemi(PM_API.PM_REQUEST_NODE, SD_0, 1)],
  domU: [eemi(PM_API.PM_GET_API_VERSION), eemi(PM_API.PM_CLOCK_ENABLE, clockOf(UART_1)), [0x8300_0002n]],
  drv: [eemi(PM_API.PM_CLOCK_ENABLE, clockOf(SD_1)), eemi(PM_API.PM_REQUEST_NODE, SD_0, 1)],
};

const dir = mkdtempSync(join(tmpdir(), "smcvisor-fwd-"));
const reports = new Map<string, GuestReport>();
let exits: Map<string, VmExit>;
let machine: QemuMachine;

beforeAll(async () => {
  const loaded = loadConfigFile("examples/policy.yaml", { out: () => {}, err: () => {}, cwd: process.cwd() });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
  const images = new Map<string, { kernel: string }>();
  for (const [vm, calls] of Object.entries(SCRIPTS)) {
    const image = join(dir, `${vm}.img`);
    writeScriptImage(image, [...calls.map((regs): ScriptStep => ({ vcpu: 0, conduit: "smc", regs })), SYSTEM_OFF]);
    images.set(vm, { kernel: image });
    reports.set(vm, emptyReport());
  }
  machine = await QemuMachine.create(loaded.config, { images, console: (vm, line) => void parseGuestLine(line, reports.get(vm)!) });
  exits = new Map((await machine.run(60_000)).map((e) => [e.name, e]));
}, 90_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const x0 = (vm: string, step: number) => reports.get(vm)!.steps.get(step)![0]!;
const status = (vm: string, step: number) => Number(x0(vm, step) & 0xffff_ffffn);

describe("SiP forwarding from real EL1 code (examples/policy.yaml)", () => {
  it("every VM powers off cleanly", () => {
    for (const vm of Object.keys(SCRIPTS)) expect(exits.get(vm), vm).toMatchObject({ state: "off" });
  });

  it("dom0's GET_API_VERSION is forwarded: success in the low 32 bits of x0, the version above", () => {
    expect(status("dom0", 0)).toBe(XST_PM.SUCCESS);
    expect(x0("dom0", 0) >> 32n).toBe(1n << 16n);
    const ev = machine.hypervisor.router.trace.events().find((e) => e.vm === "dom0" && e.fid === 0xc200_0001)!;
    expect(ev).toMatchObject({ action: "forward", conduit: "smc" });
  });

  it("dom0 enables the clock of a node it owns, and gets the family's permission error for domU's node", () => {
    expect(status("dom0", 1)).toBe(XST_PM.SUCCESS);
    expect(status("dom0", 2)).toBe(XST_PM.NO_ACCESS);
    expect(status("dom0", 3)).toBe(XST_PM.SUCCESS); // a free node
    expect(status("dom0", 4)).toBe(XST_PM.DOUBLE_REQ); // a node it holds from boot
    expect(machine.hypervisor.model.eemi.nodeState(GPIO)!.owner).toBe("dom0");
    expect(machine.hypervisor.model.eemi.nodeState(UART_0)!.clockOn).toBe(true);
  });

  it("domU's SiP calls are denied by policy (-1) and never reach the monitor; its OEM call is served by the delegate", () => {
    // SMC64 calls: -1 in all of x0.
    expect(x0("domU", 0)).toBe(0xffff_ffff_ffff_ffffn);
    expect(x0("domU", 1)).toBe(0xffff_ffff_ffff_ffffn);
    expect(machine.hypervisor.model.eemi.nodeState(UART_1)!.clockOn).toBe(false);
    const ev = machine.hypervisor.router.trace.events().filter((e) => e.vm === "domU" && e.fid >>> 24 === 0xc2);
    expect(ev.map((e) => e.action)).toEqual(["deny", "deny"]);
    const oem = machine.hypervisor.router.trace.events().find((e) => e.vm === "domU" && e.fid === 0x8300_0002)!;
    expect(oem.action).toBe("delegate");
    expect(x0("domU", 2)).toBe(oem.x0);
  });

  it("the driver domain reaches its own node only: argument constraints deny the other", () => {
    expect(status("drv", 0)).toBe(XST_PM.SUCCESS);
    expect(machine.hypervisor.model.eemi.nodeState(SD_1)!.clockOn).toBe(true);
    expect(x0("drv", 1)).toBe(0xffff_ffff_ffff_ffffn);
  });
});
