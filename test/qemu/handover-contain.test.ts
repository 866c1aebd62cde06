// A handover VM that is not contained (docs/handover.md, "More than one vCPU"): a two-vCPU kernel hands over
// the CPU that loads the module only (its test hook only_this_cpu=1), so its other CPU, which the kernel
// started itself through QEMU's PSCI, keeps EL2. smcvisor learns from QEMU's PSCI that the CPU runs, waits
// for its handover, and ends the VM when it does not come. One boot.
// Alongside, `again`, on a GICv3 (the shim's wake-up path uses each adopted CPU's redistributor and system
// registers), two boots: on the first the kernel takes CPU 1 offline (through QEMU's PSCI) before it hands
// over, so only CPU 0 hands over and smcvisor finds CPU 1 off: contained; CPU 1 then comes back through
// smcvisor's PSCI, entering the kernel at EL1 through the shim. It reboots through smcvisor's PSCI, and on
// the new boot (the kernel owns EL2 on every CPU again) both CPUs hand over.
import { beforeAll, expect, it } from "vitest";
import { runScenario, summaryLines, type RunReport } from "../../src/cli/run.js";
import { parseScenario } from "../../src/machine/qemu/scenario.js";

let report: RunReport;
const logs: string[] = [];

beforeAll(async () => {
  const s = parseScenario(
    "handover-contain",
    {
      timeoutSeconds: 150,
      vms: {
        partial: { vcpus: 2, handover: true, conduit: "smc", memory: { base: 0x4020_0000, size: "256MiB" }, services: { psci: { version: "1.0" } } },
        again: { vcpus: 2, handover: true, conduit: "smc", memory: { base: 0x4020_0000, size: "256MiB" }, services: { psci: { version: "1.0" } } },
      },
      guests: {
        partial: {
          kernel: "debian",
          // The VM must still run when smcvisor's wait for the second CPU ends (15 s after the first handover).
          run: 'insmod /lib/modules/smcv_handover.ko only_this_cpu=1 && echo "SMCV-HO module loaded"\nsleep 90\n',
        },
        again: {
          kernel: "debian",
          gic: 3,
          boots: 2,
          reboot: [
            "c1=/sys/devices/system/cpu/cpu1/online",
            'echo 0 > $c1 && echo "SMCV-HO cpu1 offline before: $(cat /sys/devices/system/cpu/online)"',
            "insmod /lib/modules/smcv_handover.ko",
            'echo 1 > $c1 && echo "SMCV-HO cpu1 online after: $(cat /sys/devices/system/cpu/online)"',
            'taskset -c 1 sh -c "echo 84000000 > /sys/module/smcv_handover/parameters/smc"',
            "reboot -f",
            "",
          ].join("\n"),
          run: 'insmod /lib/modules/smcv_handover.ko\ntaskset -c 1 sh -c "echo 84000000 > /sys/module/smcv_handover/parameters/smc"\n',
          expect: {
            everyBoot: ["smcv_handover: HVC_SET_VECTORS 0x40001800: stub=0x0 smcvisor=0x0 (CPU 0)"],
            console: ["SMCV-HO cpu1 offline before: 0", "SMCV-HO cpu1 online after: 0-1", "smcv_handover: HVC_SET_VECTORS 0x40001800: stub=0x0 smcvisor=0x0 (CPU 1)"],
          },
        },
      },
    },
    () => ({}),
  );
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  report = await runScenario(s.scenario, { log: (l) => logs.push(l) });
}, 240_000);

it("one CPU handed over, the other kept EL2: smcvisor ends the VM, naming the CPU, and never calls it contained", () => {
  const v = report.vms.find((x) => x.name === "partial")!;
  expect(v.exit.handedOver).toHaveLength(1);
  const mine = v.exit.handedOver![0]!, kept = 1 - mine;
  expect(v.exit.keptEl2).toEqual([kept]);
  expect(summaryLines(report).find((l) => l.startsWith("  partial:"))).toContain(`vCPUs handed over: ${mine} (vCPU ${kept} still owned EL2)`);
  expect(v.exit).toMatchObject({ state: "failed", reason: expect.stringMatching(new RegExp(`^vCPU ${kept} kept EL2: .* not handed over within 15 s of vCPU ${mine}'s handover \\(handed over: ${mine}\\); the VM is not contained$`)) });
  // What the kernel saw: its loading CPU's SMCs are smcvisor's (PSCI 1.0), the other CPU's still QEMU's (1.1).
  expect(v.console.some((l) => l.includes(`smcv_handover: HVC_SET_VECTORS 0x40001800: stub=0x0 smcvisor=0x0 (CPU ${mine})`))).toBe(true);
  expect(v.console.some((l) => l.includes(`smcv_handover: CPU ${kept} did not hand over`))).toBe(true);
  expect(v.console.some((l) => l.includes(`smcv_handover: after the handover: PSCI_VERSION=0x10000 (CPU ${mine})`))).toBe(true);
  expect(v.console.some((l) => l.includes(`smcv_handover: after the handover: PSCI_VERSION=0x10001 (CPU ${kept})`))).toBe(true);
  // The trace has the handed-over CPU's calls only; the log never says the VM was contained.
  const calls = report.events.filter((e) => e.vm === "partial" && e.conduit !== "hypervisor");
  expect(calls.length).toBeGreaterThan(0);
  expect(calls.every((e) => e.vcpu === mine)).toBe(true);
  const own = logs.filter((l) => l.startsWith("partial: "));
  expect(own.filter((l) => l.includes("the kernel handed EL2 over"))).toEqual([expect.stringContaining(`partial: vCPU ${mine}: the kernel handed EL2 over`)]);
  expect(own.some((l) => l.includes("every CPU the kernel runs has handed EL2 over"))).toBe(false);
});

it("a CPU that is off at the handover is contained by being off, and comes up under smcvisor; after a reset the kernel owns EL2 on both CPUs again and both hand over (GICv3)", () => {
  const v = report.vms.find((x) => x.name === "again")!;
  expect(v.console.some((l) => l.includes("GICv3: CPU1: found redistributor 1"))).toBe(true);
  expect(v.failures).toEqual([]);
  expect(v.exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)", boots: 2, handedOver: [0, 1], keptEl2: [] });
  // Boot 1: CPU 0 handed over, CPU 1 was off (QEMU's PSCI said so): contained. Boot 2: both handed over.
  expect(logs.filter((l) => l.startsWith("again: vCPU 0: the kernel handed EL2 over")).length).toBe(2);
  expect(logs.filter((l) => l.startsWith("again: vCPU 1: the kernel handed EL2 over")).length).toBe(1);
  expect(logs.filter((l) => l.startsWith("again: every CPU the kernel runs has handed EL2 over")).map((l) => /\((vCPU [\d, ]+ of 2),/.exec(l)?.[1])).toEqual(["vCPU 0 of 2", "vCPU 0, 1 of 2"]);
  const calls = report.events.filter((e) => e.vm === "again" && e.conduit !== "hypervisor");
  const reset = calls.findIndex((e) => e.fid >>> 0 === 0x8400_0009);
  expect(reset).toBeGreaterThan(0);
  // Boot 1: CPU 1 came back through smcvisor's CPU_ON (SUCCESS: its PSCI knew it was off), and its SMC was smcvisor's.
  const before = calls.slice(0, reset);
  const on = before.findIndex((e) => e.fid >>> 0 === 0xc400_0003);
  expect(on).toBeGreaterThan(0);
  expect([before[on]!.vcpu, before[on]!.x0]).toEqual([0, 0n]);
  expect(before.filter((e) => e.vcpu === 1).map((e) => [e.fid >>> 0, e.x0])).toEqual([[0x8400_0000, 0x1_0000n]]);
  // The reset was smcvisor's (the kernel was behind it): SYSTEM_RESET then, on the new boot, each CPU's handover first.
  for (const cpu of [0, 1]) {
    const next = calls.slice(reset + 1).find((e) => e.vcpu === cpu)!;
    expect([next.fid, next.conduit, next.rule.split(":").slice(0, 2).join(":")], `vCPU ${cpu}`).toEqual([0, "hvc", "hyp-stub:handover"]);
  }
  // CPU 1's SMC on the second boot (taskset) is smcvisor's.
  expect(calls.slice(reset + 1).some((e) => e.vcpu === 1 && e.fid >>> 0 === 0x8400_0000 && e.x0 === 0x1_0000n)).toBe(true);
});
