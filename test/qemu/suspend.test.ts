// Suspend that wakes (DEN0022 §5.4, §6.5) under QEMU, from real EL1 code: a power-down CPU_SUSPEND stays
// suspended until a wake-up event and then resumes at its entry point; a standby returns after its wait.
// One boot of the bare-metal guest for all of it (docs/suspend.md).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { emptyReport, GUEST_SECONDARY_ENTRY, HALT_ACKS_OFFSET, parseGuestLine, SCRIPT_ADDRESS, SCRIPT_OFFSET, writeScriptImage, type GuestReport, type ScriptStep } from "../../src/machine/qemu/baremetal.js";
import type { WakeStats } from "../../src/machine/qemu/channel.js";
import { QemuMachine } from "../../src/machine/qemu/machine.js";
import type { VmExit } from "../../src/machine/qemu/qemu-vm.js";
import { parseConfigText } from "../../src/policy/load.js";

const dir = mkdtempSync(join(tmpdir(), "smcvisor-suspend-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CPU_ON = 0xc400_0003n;
const CPU_SUSPEND = 0xc400_0001n;
const PSCI_VERSION = 0x8400_0000n;
const AFFINITY_INFO = 0xc400_0004n;
/** DEN0022 §5.4.2, extended format (PSCI 1.0+): bit 30 is a power-down state. */
const POWER_DOWN = 0x4000_0000n;
const STANDBY = 0n;

describe.each([2, 3] as const)("CPU_SUSPEND under QEMU waits for a wake-up event (GICv%i)", (gicVersion) => {
  it("a power-down suspend stays suspended until woken, then resumes at its entry with x0 = context; standby returns after its bounded wait", async () => {
    const steps: ScriptStep[] = [
      { vcpu: 0, conduit: "smc", regs: [CPU_ON, 1n, GUEST_SECONDARY_ENTRY, 1n] },
      { vcpu: 1, conduit: "smc", regs: [CPU_SUSPEND, POWER_DOWN, GUEST_SECONDARY_ENTRY, 0xabcn], halts: true },
      { vcpu: 0, conduit: "hvc", regs: [CPU_SUSPEND, STANDBY, 0n, 0n] },
      { vcpu: 0, conduit: "smc", regs: [AFFINITY_INFO, 1n, 0n] },
      { vcpu: 1, conduit: "smc", regs: [PSCI_VERSION] },
    ];
    const image = join(dir, "guest.img");
    writeScriptImage(image, steps, 0, { hostAcksHalts: true });
    const cfg = parseConfigText(`vms:\n  vm0:\n    vcpus: 2\n    services:\n      psci:\n        version: "1.1"\n`);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    const report = emptyReport();
    let halts = 0n;
    let whileSuspended: { stats: WakeStats; entries: number; wokeWaiting: boolean } | null = null;
    let afterWake: WakeStats | null = null;
    let standby: WakeStats | null = null;
    const m = await QemuMachine.create(cfg.value, {
      images: new Map([["vm0", { kernel: image }]]),
      gicVersion,
      console: (_vm, line) => {
        parseGuestLine(line, report);
        // Step 3 (vCPU 0's AFFINITY_INFO) has returned: vCPU 1 has been suspended for a while. Give it more
        // time to (wrongly) resume on its own, then send the host's wake-up event.
        if (/^SMCV-STEP 3 /.test(line.trim())) {
          setTimeout(() => {
            const vm = m.vm("vm0");
            const stats = vm.wakeStats(1);
            const entries = report.entries.filter((e) => e.cpu === 1).length;
            whileSuspended = { stats, entries, wokeWaiting: vm.wake(1) };
          }, 300);
        }
        if (report.done) {
          afterWake = m.vm("vm0").wakeStats(1);
          standby = m.vm("vm0").wakeStats(0);
          m.vm("vm0").stop("script done");
        }
      },
      onHalt: () => {
        const word = new Uint8Array(8);
        new DataView(word.buffer).setBigUint64(0, ++halts, true);
        m.vm("vm0").memory.write(SCRIPT_ADDRESS + BigInt(HALT_ACKS_OFFSET), word);
      },
    });
    const [exit] = await m.run(30_000);
    expect(exit!.state, exit!.reason).toBe("stopped");
    expect(report.errors).toEqual([]);
    // While suspended: no wait had ended, vCPU 1 had entered once (its CPU_ON), and the shim was waiting.
    expect(whileSuspended).not.toBeNull();
    const ws = whileSuspended!;
    expect(ws.stats.wakes).toBe(0);
    expect(ws.entries).toBe(1);
    expect(ws.wokeWaiting).toBe(true);
    // AFFINITY_INFO of a suspended core is ON (DEN0022 §5.7).
    expect(report.steps.get(3)![0]).toBe(0n);
    // The wake-up: one wait ended, by the host; vCPU 1 resumed at its entry with x0 = context, and ran on.
    expect(afterWake).not.toBeNull();
    expect(afterWake!.wakes).toBe(1);
    expect(afterWake!.host).toBe(1);
    const entries1 = report.entries.filter((e) => e.cpu === 1);
    expect(entries1).toHaveLength(2);
    expect(entries1[1]!.x0).toBe(0xabcn);
    expect(report.steps.get(4)![0]).toBe(0x1_0001n);
    // Standby returned SUCCESS after its wait: with no interrupt for the guest, at its bound.
    expect(report.steps.get(2)![0]).toBe(0n);
    expect(standby).not.toBeNull();
    expect(standby!.bound).toBe(1);
    expect(standby!.wakes).toBe(1);
    expect(() => m.vm("vm0").wakeStats(0)).toThrow(/has ended/);
  }, 60_000);

});

/** guests/baremetal/guest.c: the step conduit that arms the virtual timer (x1 ticks; GICv2 at x2, x3). */
const CONDUIT_TIMER = 5;
const STEP_CONDUIT = (i: number) => SCRIPT_OFFSET + 48 + i * (16 + 18 * 8) + 4;
/** QEMU virt's GIC distributor, GICv2 CPU interface and GICv3 redistributor of vCPU 0. */
const GICD = 0x0800_0000n;
const GICC = 0x0801_0000n;
const GICR = 0x080a_0000n;

describe.each([2, 3] as const)("a guest interrupt is a wake-up event (GICv%i)", (gicVersion) => {
  it("a power-down suspend with the guest's virtual timer armed resumes when it fires, by the interrupt, with its latency noted", async () => {
    const steps: ScriptStep[] = [
      // 2 ms of counter (62.5 MHz): the suspend below is taken well before it fires.
      { vcpu: 0, conduit: "hvc", regs: [0n, 125_000n, GICD, gicVersion === 2 ? GICC : GICR, BigInt(gicVersion)] },
      { vcpu: 0, conduit: "smc", regs: [CPU_SUSPEND, POWER_DOWN, GUEST_SECONDARY_ENTRY, 0x77n], halts: true },
      { vcpu: 0, conduit: "smc", regs: [PSCI_VERSION] },
    ];
    const image = join(dir, `timer-v${gicVersion}.img`);
    writeScriptImage(image, steps, 0, { hostAcksHalts: true });
    const bytes = readFileSync(image);
    bytes.writeUInt32LE(CONDUIT_TIMER, STEP_CONDUIT(0));
    writeFileSync(image, bytes);
    const { exit, report, stats } = await bootUntilDone(image, gicVersion, 30_000, true);
    expect(exit!.state, exit!.reason).toBe("stopped");
    expect(report.steps.get(0)![0]).toBe(0n);
    // Resumed at the entry point with x0 = context, then ran on.
    expect(report.entries).toEqual([{ cpu: 0, x0: 0x77n }]);
    expect(report.steps.get(2)![0]).toBe(0x1_0001n);
    // One wait, ended by the guest's interrupt (no host wake-up was sent), and its latency measured.
    expect(stats).not.toBeNull();
    expect(stats!).toMatchObject({ wakes: 1, irq: 1, host: 0, bound: 0 });
    expect(stats!.latency.count).toBe(1);
    expect(stats!.samples).toEqual([stats!.latency.last]);
  }, 60_000);
});

/** guests/baremetal/guest.c: the step conduit that sets the binary point to 7 and acknowledges the timer's interrupt. */
const CONDUIT_ACTIVATE = 6;

describe.each([2, 3] as const)("a wait inside the guest's interrupt handler at running priority 0x00 (GICv%i)", (gicVersion) => {
  it("nothing can end a WFI there, so the shim polls: the standby returns at its bound and the vCPU runs on", async () => {
    const steps: ScriptStep[] = [
      { vcpu: 0, conduit: "hvc", regs: [0n, 125_000n, GICD, gicVersion === 2 ? GICC : GICR, BigInt(gicVersion)] },
      // Binary point 7, then the timer's PPI 27 acknowledged and left active: running priority 0x00.
      { vcpu: 0, conduit: "hvc", regs: [0n, 0n, GICD, gicVersion === 2 ? GICC : GICR, BigInt(gicVersion)] },
      { vcpu: 0, conduit: "hvc", regs: [CPU_SUSPEND, STANDBY, 0n, 0n] },
      { vcpu: 0, conduit: "smc", regs: [PSCI_VERSION] },
    ];
    const image = join(dir, `blocked-v${gicVersion}.img`);
    writeScriptImage(image, steps);
    const bytes = readFileSync(image);
    bytes.writeUInt32LE(CONDUIT_TIMER, STEP_CONDUIT(0));
    bytes.writeUInt32LE(CONDUIT_ACTIVATE, STEP_CONDUIT(1));
    writeFileSync(image, bytes);
    // Before the shim read the running priority, this wait never ended (the VM ran into this bound).
    const { exit, report, stats } = await bootUntilDone(image, gicVersion, 20_000, false);
    expect(exit!.state, exit!.reason).toBe("stopped");
    expect(report.errors).toEqual([]);
    expect(report.steps.get(1)![0]).toBe(27n);
    // The standby: SUCCESS at its bound (the active timer interrupt cannot be signalled, so it is no wake-up).
    expect(report.steps.get(2)![0]).toBe(0n);
    expect(report.steps.get(3)![0]).toBe(0x1_0001n);
    expect(stats).not.toBeNull();
    expect(stats!).toMatchObject({ wakes: 1, irq: 0, host: 0, bound: 1 });
    // The wake-up wait polled (and so may the wait for the call's reply have).
    expect(stats!.blocked).toBeGreaterThanOrEqual(1);
  }, 60_000);
});

describe("the host's wake-up event", () => {
  it("refuses to wake a vCPU the VM does not have, naming it", async () => {
    const cfg = parseConfigText(`vms:\n  vm0:\n    vcpus: 1\n`);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    const image = join(dir, "idle.img");
    writeScriptImage(image, [{ vcpu: 0, conduit: "hvc", regs: [PSCI_VERSION] }]);
    const report = emptyReport();
    const m = await QemuMachine.create(cfg.value, {
      images: new Map([["vm0", { kernel: image }]]),
      console: (_vm, line) => {
        if (parseGuestLine(line, report) && report.done) m.vm("vm0").stop("done");
      },
    });
    expect(() => m.vm("vm0").wake(1)).toThrow(/vCPU 1 does not exist/);
    expect(() => m.vm("vm0").wakeStats(7)).toThrow(/vCPU 7 does not exist/);
    const [exit] = await m.run(30_000);
    expect(exit!.state).toBe("stopped");
  }, 60_000);
});

/**
 * Boots a one-vCPU PSCI 1.1 VM on the bare-metal script in `image` until its script is done, keeping the
 * shim's wake-up counters of that moment; with `ackHalts`, each halting step is acknowledged in the script.
 */
async function bootUntilDone(image: string, gicVersion: 2 | 3, ms: number, ackHalts: boolean): Promise<{ exit: VmExit; report: GuestReport; stats: WakeStats | null }> {
  const cfg = parseConfigText(`vms:\n  vm0:\n    vcpus: 1\n    services:\n      psci:\n        version: "1.1"\n`);
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const report = emptyReport();
  let stats: WakeStats | null = null;
  let halts = 0n;
  const m = await QemuMachine.create(cfg.value, {
    images: new Map([["vm0", { kernel: image }]]),
    gicVersion,
    console: (_vm, line) => {
      if (parseGuestLine(line, report) && report.done) {
        stats = m.vm("vm0").wakeStats(0);
        m.vm("vm0").stop("script done");
      }
    },
    ...(ackHalts
      ? {
          onHalt: () => {
            const word = new Uint8Array(8);
            new DataView(word.buffer).setBigUint64(0, ++halts, true);
            m.vm("vm0").memory.write(SCRIPT_ADDRESS + BigInt(HALT_ACKS_OFFSET), word);
          },
        }
      : {}),
  });
  const [exit] = await m.run(ms);
  return { exit: exit!, report, stats };
}
