// The main demo under QEMU: two Debian Linux VMs with different policies, booted once for all these checks.
import { beforeAll, describe, expect, it } from "vitest";
import { runScenario, type RunReport, type VmReport } from "../../src/cli/run.js";
import { loadScenario, type Scenario } from "../../src/machine/qemu/scenario.js";
import { CPU_PROFILES } from "../../src/policy/platform.js";

let scenario: Scenario;
let report: RunReport;

beforeAll(async () => {
  const s = loadScenario("examples/demo.yaml");
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  scenario = s.scenario;
  report = await runScenario(scenario);
}, 400_000);

const vm = (name: string): VmReport => report.vms.find((v) => v.name === name)!;
const line = (v: VmReport, prefix: string) => v.console.find((l) => l.startsWith(prefix));

describe("examples/demo.yaml under QEMU", () => {
  it("every VM powers off through PSCI SYSTEM_OFF and every expectation of the scenario holds", () => {
    expect(report.vms.flatMap((v) => v.failures.map((f) => `${v.name}: ${f}`))).toEqual([]);
    for (const v of report.vms) expect(v.exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)" });
  });

  it("each VM's kernel reports the PSCI version and SMCCC version its policy sets", () => {
    expect(line(vm("dom0"), "[") ?? "").toBeTruthy();
    expect(vm("dom0").console.some((l) => l.includes("psci: PSCIv1.1 detected"))).toBe(true);
    expect(vm("domU").console.some((l) => l.includes("psci: PSCIv1.0 detected"))).toBe(true);
    expect(vm("dom0").console.some((l) => l.includes("SMC Calling Convention v1.2"))).toBe(true);
    expect(vm("domU").console.some((l) => l.includes("SMC Calling Convention v1.1"))).toBe(true);
  });

  it("the Spectre lines agree with the platform profile's workaround answers", () => {
    const w = CPU_PROFILES[scenario.config.platform.cpu as keyof typeof CPU_PROFILES];
    for (const v of report.vms) {
      const v2 = line(v, "SMCV-VULN spectre_v2=")!;
      if (w.wa1 === "required") expect(v2).toContain("Mitigation: Branch predictor hardening");
      else if (w.wa1 === "not-required") expect(v2).toContain("Not affected");
      else expect(v2).toContain("Vulnerable");
      if (w.wa3 === "required") expect(v2).toContain("BHB");
      const ssb = line(v, "SMCV-VULN spec_store_bypass=")!;
      if (w.wa2 === "dynamic") expect(ssb).toContain("Mitigation: Speculative Store Bypass disabled via prctl");
    }
  });

  it("the TRNG backs dom0's /dev/hwrng; domU's TRNG calls are denied and it has none", () => {
    expect(line(vm("dom0"), "SMCV-RNG current=")).toContain("smccc_trng");
    expect(line(vm("dom0"), "SMCV-RNG bytes=")).toMatch(/bytes=[0-9a-f]{32}$/);
    expect(report.events.some((e) => e.vm === "dom0" && e.fid === 0xc400_0053 && e.action === "emulate")).toBe(true);
    expect(report.events.some((e) => e.vm === "domU" && e.fid === 0x8400_0050 && e.action === "deny" && e.x0 === 0xffff_ffffn)).toBe(true);
    expect(line(vm("domU"), "SMCV-RNG current=smccc_trng")).toBeUndefined();
  });

  it("each secondary vCPU came up through a physical CPU_ON the hypervisor made for it (R9)", () => {
    for (const name of ["dom0", "domU"]) {
      const virtual = report.events.filter((e) => e.vm === name && ((e.fid & 0xbfff_ffff) >>> 0) === 0x8400_0003);
      expect(virtual.map((e) => e.x0)).toEqual([0n]);
      const physical = report.events.filter((e) => e.conduit === "hypervisor" && e.fid === 0xc400_0003 && (e.origin ?? "").includes(name));
      expect(physical.length).toBe(1);
    }
  });

  it("each VM's last call is PSCI SYSTEM_OFF, by its policy's conduit", () => {
    for (const [name, conduit] of [["dom0", "smc"], ["domU", "hvc"]] as const) {
      const last = report.events.filter((e) => e.vm === name).at(-1)!;
      expect(last).toMatchObject({ fid: 0x8400_0008, conduit, outcome: "halt" });
    }
  });
});
