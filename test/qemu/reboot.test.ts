// Reboots under QEMU (issue 10, part 4): a 2-vCPU and a 4-vCPU Debian Linux reboot ten times in a row
// (SYSTEM_RESET2 warm and SYSTEM_RESET through sysrq) and power off on their eleventh boot; every boot must
// bring up all CPUs and OP-TEE again. Booted once for all these checks (test/fixtures/reboot.yaml).
import { beforeAll, describe, expect, it } from "vitest";
import { runScenario, splitBoots, type RunReport, type VmReport } from "../../src/cli/run.js";
import { loadScenario } from "../../src/machine/qemu/scenario.js";

let report: RunReport;
const vm = (name: string): VmReport => report.vms.find((v) => v.name === name)!;

beforeAll(async () => {
  const s = loadScenario("test/fixtures/reboot.yaml");
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  report = await runScenario(s.scenario);
}, 600_000);

describe("ten reboots in a row", () => {
  it("each VM powers off cleanly on its eleventh boot and every expectation of the scenario holds", () => {
    expect(report.vms.flatMap((v) => v.failures.map((f) => `${v.name}: ${f}`))).toEqual([]);
    for (const v of report.vms) expect(v.exit).toMatchObject({ state: "off", boots: 11 });
  });

  it("every boot brings up every CPU (no CPU_ON refused after a reset) and knows its number", () => {
    for (const [name, cpus] of [["two", "0-1"], ["four", "0-3"]] as const) {
      const boots = splitBoots(vm(name).console);
      expect(boots).toHaveLength(11);
      boots.forEach((b, k) => {
        expect(b.some((l) => l === `SMCV-CPUS online=${cpus}`), `${name} boot ${k + 1}`).toBe(true);
        expect(b[0], `${name} boot ${k + 1}`).toContain(`smcvisor.boot=${String(k + 1).padStart(4, "0")}`);
      });
      expect(vm(name).console.filter((l) => /failed to boot CPU|WARNING|BUG|soft lockup/.test(l))).toEqual([]);
    }
  });

  it("the resets were the calls the scenario asked for, one per reboot, and the secure world's CPUs followed", () => {
    const calls = (name: string, fn: number) => report.events.filter((e) => e.vm === name && e.fid === fn).length;
    expect(calls("two", 0xc400_0012)).toBe(10); // PSCI_SYSTEM_RESET2 (reboot=warm)
    expect(calls("four", 0x8400_0009)).toBe(10); // PSCI_SYSTEM_RESET (sysrq b)
    // Every boot's CPU_ONs succeeded: one per secondary per boot.
    const cpuOns = (name: string) => report.events.filter((e) => e.vm === name && (e.fid === 0xc400_0003 || e.fid === 0x8400_0003));
    expect(cpuOns("two")).toHaveLength(11);
    expect(cpuOns("four")).toHaveLength(33);
  });
});
