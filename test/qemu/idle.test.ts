// examples/idle.yaml under QEMU: Debian's Linux enters the device tree's idle states through its
// cpuidle-psci driver (CPU_SUSPEND standby and power-down), the shim waits for each wake-up event at EL2
// and resumes the core, and the guest keeps running correctly. On a GICv2 and a GICv3 machine (Linux's
// GICv3 driver switches group 1 off before a power-down: the shim's wait must still see the guest's timer).
// One boot of the two VMs for every check (docs/suspend.md).
import { beforeAll, describe, expect, it } from "vitest";
import { runScenario, type RunReport, type VmReport } from "../../src/cli/run.js";
import { loadScenario } from "../../src/machine/qemu/scenario.js";

let report: RunReport;

beforeAll(async () => {
  const s = loadScenario("examples/idle.yaml");
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  report = await runScenario(s.scenario);
}, 300_000);

/** "idle <when> cpuN stateM <name> usage=U time=T" lines of the guest. */
function usage(vm: VmReport, when: "before" | "after"): Map<string, { name: string; usage: number }> {
  const out = new Map<string, { name: string; usage: number }>();
  for (const l of vm.console) {
    const m = /^SMCV-RUN idle (\w+) (cpu\d+) (state\d+) (\S+) usage=(\d+) /.exec(l);
    if (m && m[1] === when) out.set(`${m[2]} ${m[3]}`, { name: m[4]!, usage: Number(m[5]) });
  }
  return out;
}

describe.each([
  ["idle", 2],
  ["idle-gicv3", 3],
] as const)("examples/idle.yaml: Linux's cpuidle-psci under smcvisor (VM %s, GICv%d)", (name, gic) => {
  let vm: VmReport;
  beforeAll(() => {
    vm = report.vms.find((v) => v.name === name)!;
  });

  it("runs on the GIC the scenario gave it", () => {
    const gicv3 = vm.console.some((l) => /GICv3: \d+ SPIs implemented/.test(l));
    expect(gicv3).toBe(gic === 3);
  });

  it("powers off through PSCI with every expectation of the scenario met", () => {
    expect(vm.failures).toEqual([]);
    expect(vm.exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)" });
  });

  it("Linux found the device tree's states: WFI, then the standby and the power-down state", () => {
    const before = usage(vm, "before");
    for (const cpu of ["cpu0", "cpu1"]) {
      expect(before.get(`${cpu} state0`)?.name, cpu).toBe("WFI");
      expect(before.get(`${cpu} state1`)?.name, cpu).toBe("cpu-standby");
      expect(before.get(`${cpu} state2`)?.name, cpu).toBe("cpu-power-down");
    }
  });

  it("the power-down state's usage grows on every CPU while the guest idles, and each entry was a real CPU_SUSPEND", () => {
    const before = usage(vm, "before"), after = usage(vm, "after");
    for (const cpu of ["cpu0", "cpu1"]) {
      const b = before.get(`${cpu} state2`)!.usage, a = after.get(`${cpu} state2`)!.usage;
      expect(a, cpu).toBeGreaterThan(b);
    }
    const suspends = report.events.filter((e) => e.vm === vm.name && (e.fid === 0xc400_0001 || e.fid === 0x8400_0001));
    // Each CPU_SUSPEND Linux made was answered SUCCESS (standby) or did not return (power-down) and then resumed.
    expect(suspends.length).toBeGreaterThan(0);
    expect(suspends.filter((e) => !((e.outcome === "return" && e.x0 === 0n) || e.outcome === "halt"))).toEqual([]);
    // Both kinds were entered: a power-down does not return to its caller (it resumes at the entry point).
    expect(suspends.some((e) => e.outcome === "halt")).toBe(true);
  });

  it("every power-down and standby wait ended with a wake-up event the shim counted, most by the guest's own interrupts", () => {
    const wakes = vm.exit.wakes!;
    expect(wakes).toHaveLength(2);
    const after = usage(vm, "after");
    for (const [i, w] of wakes.entries()) {
      // The shim's waits: at least the power-down entries the kernel counted (standby adds more).
      expect(w.wakes, `vCPU ${i}`).toBeGreaterThanOrEqual(after.get(`cpu${i} state2`)!.usage);
      expect(w.irq, `vCPU ${i}`).toBeGreaterThan(0);
      // Nobody but the guest woke it: the host sends no wake-up events in this scenario.
      expect(w.host, `vCPU ${i}`).toBe(0);
      expect(w.wakes).toBe(w.irq + w.host + w.bound);
    }
  });
});
