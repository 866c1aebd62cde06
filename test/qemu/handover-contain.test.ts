// A handover VM that is not contained (docs/handover.md, "More than one vCPU"): a two-vCPU kernel hands over
// the CPU that loads the module only (its test hook only_this_cpu=1), so its other CPU, which the kernel
// started itself through QEMU's PSCI, keeps EL2. smcvisor learns from QEMU's PSCI that the CPU runs, waits
// for its handover, and ends the VM when it does not come. One boot.
import { beforeAll, expect, it } from "vitest";
import { runScenario, type RunReport } from "../../src/cli/run.js";
import { parseScenario } from "../../src/machine/qemu/scenario.js";

let report: RunReport;
const logs: string[] = [];

beforeAll(async () => {
  const s = parseScenario(
    "handover-contain",
    {
      timeoutSeconds: 150,
      vms: { partial: { vcpus: 2, handover: true, conduit: "smc", memory: { base: 0x4020_0000, size: "256MiB" }, services: { psci: { version: "1.0" } } } },
      guests: {
        partial: {
          kernel: "debian",
          // The VM must still run when smcvisor's wait for the second CPU ends (15 s after the first handover).
          run: 'insmod /lib/modules/smcv_handover.ko only_this_cpu=1 && echo "SMCV-HO module loaded"\nsleep 90\n',
        },
      },
    },
    () => ({}),
  );
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  report = await runScenario(s.scenario, { log: (l) => logs.push(l) });
}, 240_000);

it("one CPU handed over, the other kept EL2: smcvisor ends the VM, naming the CPU, and never calls it contained", () => {
  const v = report.vms[0]!;
  expect(v.exit.handedOver).toHaveLength(1);
  const mine = v.exit.handedOver![0]!, kept = 1 - mine;
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
  expect(logs.filter((l) => l.includes("the kernel handed EL2 over"))).toEqual([expect.stringContaining(`partial: vCPU ${mine}: the kernel handed EL2 over`)]);
  expect(logs.some((l) => l.includes("every CPU the kernel runs has handed EL2 over"))).toBe(false);
});
