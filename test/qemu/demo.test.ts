// The main demo under QEMU: two Debian Linux VMs with different policies, booted once for all these checks.
import { beforeAll, describe, expect, it } from "vitest";
import { runScenario, type RunReport, type VmReport } from "../../src/cli/run.js";
import { loadScenario, type Scenario } from "../../src/machine/qemu/scenario.js";
import { chacha20 } from "../../src/firmware/optee/chacha20.js";
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
    expect(vm("domU").console.some((l) => l.includes("SMC Calling Convention v1.2"))).toBe(true);
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

  it("the SMCCC TRNG is a hardware RNG in each VM and gives bytes; the SoC ID comes from SMCCC_ARCH_SOC_ID", () => {
    for (const v of report.vms) {
      // With OP-TEE enabled Linux may prefer optee-rng as rng_current; the guest selects each source in turn.
      expect(line(v, "SMCV-RNG current="), v.name).toMatch(/available=smccc_trng optee-rng\s*$/);
      expect(line(v, "SMCV-RNG smccc_trng bytes="), v.name).toMatch(/bytes=[0-9a-f]{32}$/);
      expect(report.events.some((e) => e.vm === v.name && e.fid === 0xc400_0053 && e.action === "emulate" && e.x0 === 0n)).toBe(true);
      expect(line(v, "SMCV-SOC soc_id="), v.name).toBe("SMCV-SOC soc_id=jep106:007f:0d07");
    }
  });

  it("domU's policy hides the hypervisor's identity: its vendor-hypervisor UID call is denied with -1", () => {
    const uid = report.events.filter((e) => e.fid === 0x8600_ff01);
    expect(uid.filter((e) => e.vm === "domU").map((e) => [e.action, e.x0])).toEqual([["deny", 0xffff_ffffn]]);
    // dom0 uses SMC: Linux asks for KVM-style hypervisor services only over HVC, so it never asks.
    expect(uid.filter((e) => e.vm === "dom0")).toEqual([]);
  });

  it("Linux's OP-TEE driver binds in both VMs through the mediator, with dynamic shared memory, and optee-rng reads the RNG TA", () => {
    for (const v of report.vms) {
      expect(v.console.some((l) => l.includes("optee: dynamic shared memory is enabled")), v.name).toBe(true);
      expect(line(v, "SMCV-TEE present=/dev/tee0"), v.name).toBeDefined();
      expect(line(v, "SMCV-TEE present=/dev/teepriv0"), v.name).toBeDefined();
      expect(line(v, "SMCV-RNG current=")!, v.name).toMatch(/available=.*optee-rng/);
      expect(line(v, "SMCV-RNG optee-rng bytes="), v.name).toMatch(/bytes=[0-9a-f]{32}$/);
      // Every OP-TEE call went to the mediator: none was denied or failed.
      const tee = report.events.filter((e) => e.vm === v.name && ((e.fid >>> 24) & 0x3f) >= 50);
      expect(tee.length).toBeGreaterThan(100);
      expect(tee.filter((e) => e.action !== "mediate" || e.outcome === "error")).toEqual([]);
    }
  });

  it("a libteec client in each VM invokes the hello-world TA and decrypts with its own VM's key", () => {
    const fnv1a = (p: Uint8Array) => {
      let h = 0xcbf29ce484222325n;
      for (const b of p) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
      return h.toString(16).padStart(16, "0");
    };
    const hashes = new Set<string>();
    for (const v of report.vms) {
      expect(line(v, "SMCV-RUN SMCV-TEEC hello"), v.name).toBe("SMCV-RUN SMCV-TEEC hello 0x0 41 42");
      const d = line(v, "SMCV-RUN SMCV-TEEC decrypt")!.split(" ");
      // Decrypting 64 KiB of zeros gives the ChaCha20 keystream of this VM's key with nonce (7, 9).
      const key = scenario.config.vms.find((c) => c.name === v.name)!.tee!.contentKey!;
      const nonce = new Uint8Array(12);
      new DataView(nonce.buffer).setUint32(0, 7, true);
      new DataView(nonce.buffer).setUint32(4, 9, true);
      const out = new Uint8Array(65536);
      chacha20(key, nonce, 0, new Uint8Array(65536), out);
      expect(d.slice(3, 6), v.name).toEqual(["0x0", "65536", fnv1a(out)]);
      hashes.add(d[5]!);
      expect(line(v, "SMCV-RUN SMCV-TEEC threads 4 calls"), v.name).toMatch(/calls [1-9]\d* errors 0$/);
    }
    expect(hashes.size).toBe(2);
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
