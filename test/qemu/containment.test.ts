// Containment under QEMU (issue 10): what a hostile kernel tries first is refused, QEMU runs without
// semihosting, and a vCPU that waits for the hypervisor neither stops its siblings nor spins.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runScenario, type RunReport } from "../../src/cli/run.js";
import { emptyReport, parseGuestLine, writeScriptImage, type GuestReport } from "../../src/machine/qemu/baremetal.js";
import { MAILBOX } from "../../src/machine/qemu/channel.js";
import { QemuMachine } from "../../src/machine/qemu/machine.js";
import type { VmExit } from "../../src/machine/qemu/qemu-vm.js";
import { parseScenario } from "../../src/machine/qemu/scenario.js";
import { parseConfigText } from "../../src/policy/load.js";
import { holdControl, type HeldCall } from "../fixtures/hold-delegate.js";

const dir = mkdtempSync(join(tmpdir(), "smcvisor-containment-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RAM = 256n << 20n;
const BASE = 0x4000_0000n;

/** ESR_EL1 of a synchronous external abort injected for a data access from EL1 (EC 0x25, IL, FSC 0x10). */
const DABT_EXTERNAL = 0x9600_0010n;
/** ... for an instruction fetch from EL1 (EC 0x21). */
const IABT_EXTERNAL = 0x8600_0010n;
/** An UNDEFINED instruction taken at EL1 (EC 0, IL). */
const UNDEFINED = 0x200_0000n;

/** /proc/<pid>/cmdline of a running process, as its arguments. */
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");

describe.each([2, 3] as const)("a hostile kernel's first tries under GICv%i", (gicVersion) => {
  let report: GuestReport;
  let exit: VmExit;
  let args: string[] = [];
  let logs: string[] = [];

  beforeAll(async () => {
    const cfg = parseConfigText(`vms:\n  vm0:\n    vcpus: 2\n    memory: { size: ${RAM / (1n << 20n)}MiB }\n`);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    const image = join(dir, `probe-v${gicVersion}.img`);
    writeScriptImage(image, [{ vcpu: 0, conduit: "hvc", regs: [0x8400_0000n] }, { vcpu: 0, conduit: "hvc", regs: [0x8400_0008n], halts: true }], 0, { probes: { ramEnd: BASE + RAM } });
    report = emptyReport();
    logs = [];
    const m = await QemuMachine.create(cfg.value, {
      gicVersion,
      images: new Map([["vm0", { kernel: image }]]),
      log: (l) => logs.push(l),
      console: (_vm, l) => {
        parseGuestLine(l, report);
        if (args.length === 0 && l === "SMCV-BOOT") args = cmdline(m.vm("vm0").pid!);
      },
    });
    [exit] = await m.run(60_000);
  }, 90_000);

  it("QEMU runs without semihosting, and the guest's HLT #0xF000 is an UNDEFINED instruction at EL1", () => {
    expect(args.length).toBeGreaterThan(10);
    expect(args.some((a) => /semihosting/i.test(a))).toBe(false);
    expect(report.probes.get("semihosting-open")).toEqual({ refused: true, esr: UNDEFINED, far: 0n });
  });

  it("every access outside the guest's RAM and devices is a synchronous external abort at EL1 with the faulting address in FAR_EL1", () => {
    const beyond = BASE + RAM;
    const expected: Record<string, [bigint, bigint]> = {
      "below-ram": [DABT_EXTERNAL, BASE - 8n],
      "ram-end": [DABT_EXTERNAL, beyond],
      "ram-end-write": [DABT_EXTERNAL, beyond],
      "far-beyond-ram": [DABT_EXTERNAL, beyond + 0x4000_0000n],
      "exec-beyond-ram": [IABT_EXTERNAL, beyond],
      flash: [DABT_EXTERNAL, 0n],
      "gic-v2m": [DABT_EXTERNAL, 0x0802_0000n],
      "gic-hyp": [DABT_EXTERNAL, 0x0803_0000n],
      "gic-vcpu": [DABT_EXTERNAL, 0x0804_0000n],
      "gic-its": [DABT_EXTERNAL, 0x0808_0000n],
      rtc: [DABT_EXTERNAL, 0x0901_0000n],
      "fw-cfg": [DABT_EXTERNAL, 0x0902_0000n],
      gpio: [DABT_EXTERNAL, 0x0903_0000n],
      "virtio-mmio": [DABT_EXTERNAL, 0x0a00_0000n],
      "virtio-mmio-write": [DABT_EXTERNAL, 0x0a00_0050n],
      "pcie-ecam": [DABT_EXTERNAL, 0x3f00_0000n],
      "pcie-mmio": [DABT_EXTERNAL, 0x1000_0000n],
    };
    for (const [probe, [esr, far]] of Object.entries(expected)) expect(report.probes.get(probe), probe).toEqual({ refused: true, esr, far });
    // The hypervisor heard of every one of them (the shim counts what it refused and reports it).
    expect(exit.aborts).toBe(BigInt(Object.keys(expected).length));
    expect(logs.some((l) => l.includes("outside the VM's memory map refused"))).toBe(true);
  });

  it("the guest's RAM starts at its base with its device tree, not the shim; its own RAM and its GIC are reachable", () => {
    // The first bytes of RAM are the flattened device tree's magic (0xd00dfeed, big-endian).
    const base = report.probes.get("ram-base");
    expect(base?.refused).toBe(false);
    expect(base && !base.refused ? base.value & 0xffff_ffffn : 0n).toBe(0xedfe_0dd0n);
    expect(report.probes.get("ram-base-write")).toMatchObject({ refused: false });
    expect(report.probes.get("gic-distributor")).toMatchObject({ refused: false });
    // And the VM went on to make its calls and power off: nothing it wrote reached the shim.
    expect(report.steps.get(0)![0]).toBe(0x1_0001n);
    expect(exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)" });
  });
});

describe("a hostile AArch32 kernel", () => {
  it("gets UNDEFINED for semihosting, and ends only its own VM at its first access outside its map (never reaching the host)", async () => {
    const cfg = parseConfigText(`vms:\n  a32:\n    vcpus: 1\n    aarch32: true\n    memory: { size: ${RAM / (1n << 20n)}MiB }\n  other:\n    vcpus: 1\n    memory: { size: 64MiB }\n`);
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    const a32 = join(dir, "probe-a32.img"), other = join(dir, "other.img");
    writeScriptImage(a32, [{ vcpu: 0, conduit: "hvc", regs: [0x8400_0008n], halts: true }], 0, { probes: { ramEnd: BASE + RAM }, aarch32: true });
    writeScriptImage(other, [...Array.from({ length: 50 }, () => ({ vcpu: 0, conduit: "hvc" as const, regs: [0x8400_0000n] })), { vcpu: 0, conduit: "hvc", regs: [0x8400_0008n], halts: true }]);
    const reports = new Map([["a32", emptyReport()], ["other", emptyReport()]]);
    const m = await QemuMachine.create(cfg.value, { images: new Map([["a32", { kernel: a32 }], ["other", { kernel: other }]]), console: (vm, l) => void parseGuestLine(l, reports.get(vm)!) });
    const exits = new Map((await m.run(60_000)).map((e) => [e.name, e]));
    // AArch32's HLT #0xF000 is UNDEFINED at EL1 (no fault status: DFSR/IFSR are not written for it).
    expect(reports.get("a32")!.probes.get("semihosting-open")).toEqual({ refused: true, esr: 0n, far: 0n });
    expect(reports.get("a32")!.probes.has("below-ram")).toBe(false);
    expect(exits.get("a32")).toMatchObject({ state: "failed", reason: expect.stringContaining("accessed IPA 0x3ffffff8 outside the VM's memory map") });
    expect(exits.get("other")).toMatchObject({ state: "off" });
    expect(reports.get("other")!.steps.size).toBe(50);
  }, 90_000);
});

describe("a vCPU waiting for the hypervisor (Linux, 2 vCPUs)", () => {
  const HOLD_MS = 2000;
  let report: RunReport;
  let held: HeldCall | undefined;
  /** The waiting vCPU's mailbox `sleeping` flag, sampled every 20 ms over the middle of the hold. */
  const sleepingSamples: number[] = [];
  let qemuCpuSeconds = -1;
  let nodeCpuSeconds = -1;
  /** QEMU's and Node's CPU time over 1.5 s while the guest sat idle (its `sleep 2`). */
  let idleQemu = -1, idleNode = -1;
  /** Each SMCV-TICK line: when it reached us, which vCPU printed it, and the guest's uptime when it did. */
  const arrivals: { at: number; cpu: number; uptime: number }[] = [];

  /** utime + stime of a process in seconds (proc(5): fields 14 and 15, in clock ticks of 100 Hz). */
  const cpuSeconds = (pid: number) => {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  };

  beforeAll(async () => {
    const ctl = holdControl();
    const source = `
delegates:
  hold: { module: test/fixtures/hold-delegate.ts, timeoutMs: 10000, thread: hypervisor }
vms:
  vm0:
    vcpus: 2
    memory: { size: 256MiB }
    conduit: smc
    services: { psci: { version: "1.1" } }
    grants:
      - { name: held-trng, id: 0xC4000053, action: "delegate:hold" }
guests:
  vm0:
    kernel: debian
    run: |
      echo "SMCV-HOLD ready"
      sleep 2
      for c in 0 1; do
        taskset -c $c sh -c 'i=0; while [ $i -lt 40 ]; do echo "SMCV-TICK cpu='$c' $(cut -d" " -f1 /proc/uptime)"; sleep 0.1; i=$((i+1)); done' &
      done
      sleep 0.5
      echo "SMCV-HOLD arm"
      sleep 0.3
      echo "SMCV-HOLD bits=$(taskset -c 0 head -c 24 /dev/hwrng | od -An -tx1 | tr -d ' \\n')"
      wait
`;
    const s = parseScenario("hold", (await import("yaml")).parse(source), () => ({}));
    if (!s.ok) throw new Error(JSON.stringify(s.errors));
    let machine: QemuMachine | null = null;
    let nodeAtStart = 0, qemuAtStart = 0;
    ctl.onStart = (call) => {
      held = call;
      const vm = machine!.vm("vm0");
      qemuAtStart = cpuSeconds(vm.pid!);
      nodeAtStart = process.cpuUsage().user + process.cpuUsage().system;
      // The shim wakes every sleep_ticks (10 ms) to look again and polls briefly before it sleeps again, and a
      // loaded host may deschedule it mid-poll: one sample could land there, so many are taken.
      const sampler = setInterval(() => {
        sleepingSamples.push(new DataView(vm.mailbox(call.vcpu).buffer, vm.mailbox(call.vcpu).byteOffset).getUint32(MAILBOX.sleeping, true));
      }, 20);
      setTimeout(() => clearInterval(sampler), (HOLD_MS * 3) / 4);
      setTimeout(() => {
        qemuCpuSeconds = cpuSeconds(vm.pid!) - qemuAtStart;
        const u = process.cpuUsage();
        nodeCpuSeconds = (u.user + u.system - nodeAtStart) / 1e6;
      }, HOLD_MS - 100);
    };
    report = await runScenario(s.scenario, {
      onStart: (m) => (machine = m),
      onConsole: (_vm, line) => {
        // The next TRNG call (ours on vCPU 0, or the kernel's hwrng thread's) is held, while both tick loops run.
        if (line.startsWith("SMCV-RUN SMCV-HOLD arm")) ctl.armMs = HOLD_MS;
        if (line.startsWith("SMCV-RUN SMCV-HOLD ready")) {
          const pid = machine!.vm("vm0").pid!;
          let q0 = 0, n0 = 0;
          setTimeout(() => {
            q0 = cpuSeconds(pid);
            const u = process.cpuUsage();
            n0 = u.user + u.system;
          }, 200);
          setTimeout(() => {
            idleQemu = cpuSeconds(pid) - q0;
            const u = process.cpuUsage();
            idleNode = (u.user + u.system - n0) / 1e6;
          }, 1700);
        }
        const t = /SMCV-TICK cpu=(\d) ([\d.]+)/.exec(line);
        if (t) arrivals.push({ at: performance.now(), cpu: Number(t[1]), uptime: Number(t[2]) });
      },
    });
  }, 300_000);

  it("the call is held for the time the delegate takes, then answered, and the VM powers off cleanly", () => {
    expect(report.vms[0]!.failures).toEqual([]);
    expect(held).toBeDefined();
    expect(held!.end - held!.start).toBeGreaterThanOrEqual(HOLD_MS - 5);
    // The held answer reached userspace intact: Linux's arm_smccc_trng driver hands out x3, then x2, then x1
    // (DEN0098: x3 holds the lowest 64 bits), each in little-endian byte order.
    expect(report.vms[0]!.console.find((l) => l.includes("SMCV-HOLD bits="))).toBe("SMCV-RUN SMCV-HOLD bits=88887777666655554444333322221111efcdab8967452301");
  });

  it("while one vCPU waits, its sibling keeps running and its timers keep ticking (in the guest's own time)", () => {
    const ticks = (cpu: number) => arrivals.filter((a) => a.cpu === cpu).map((a) => a.uptime);
    // The waiting vCPU's loop stops for the whole hold: the longest gap between its ticks is the hold.
    const mine = ticks(held!.vcpu);
    let gap = [0, 0] as [number, number];
    for (let i = 1; i < mine.length; i++) if (mine[i]! - mine[i - 1]! > gap[1] - gap[0]) gap = [mine[i - 1]!, mine[i]!];
    expect(gap[1] - gap[0], JSON.stringify(arrivals)).toBeGreaterThan((HOLD_MS / 1000) * 0.9);
    // The sibling printed all through that gap, every ~100 ms (each one a timer expiry), never stalling.
    const sibling = ticks(1 - held!.vcpu).filter((t) => t > gap[0] && t < gap[1]);
    expect(sibling.length, JSON.stringify(arrivals)).toBeGreaterThanOrEqual(8);
    const spacing = sibling.slice(1).map((t, i) => t - sibling[i]!);
    expect(Math.max(...spacing, sibling[0]! - gap[0], gap[1] - sibling[sibling.length - 1]!)).toBeLessThan(0.6);
  });

  it("an idle VM costs next to no host CPU: its vCPUs sit in the guest's own WFI and nothing polls", () => {
    expect(idleQemu).toBeGreaterThanOrEqual(0);
    expect(idleQemu).toBeLessThan(1.5 * 0.2);
    expect(idleNode).toBeLessThan(1.5 * 0.2);
  });

  it("a waiting vCPU sleeps (WFI) after its short poll instead of spinning, and the hypervisor does not spin either", () => {
    // Sampled from the start of the hold: the first ones may still see the short poll.
    expect(sleepingSamples.length).toBeGreaterThanOrEqual(20);
    expect(sleepingSamples.filter((v) => v === 1).length / sleepingSamples.length, JSON.stringify(sleepingSamples)).toBeGreaterThanOrEqual(0.8);
    // Over the hold the VM's QEMU used far less than the one host core a spinning vCPU would take (its sibling
    // mostly sleeps in `sleep 0.1`), and Node only served the console.
    expect(qemuCpuSeconds).toBeGreaterThanOrEqual(0);
    expect(qemuCpuSeconds).toBeLessThan((HOLD_MS / 1000) * 0.5);
    expect(nodeCpuSeconds).toBeLessThan((HOLD_MS / 1000) * 0.5);
  });
});
