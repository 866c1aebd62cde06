// examples/ffa.yaml under QEMU: one Debian VM reaches the modelled OP-TEE through FF-A (Linux's FF-A driver
// and an optee.ko built with the FF-A ABI, the FF-A mediator, the modelled SPMC and OP-TEE's partition),
// another through OP-TEE's SMC ABI, against the same OP-TEE. Booted once for all these checks.
import { beforeAll, describe, expect, it } from "vitest";
import { runScenario, type RunReport, type VmReport } from "../../src/cli/run.js";
import { chacha20 } from "../../src/firmware/optee/chacha20.js";
import { loadScenario, type Scenario } from "../../src/machine/qemu/scenario.js";
import { FFA_FUNCTIONS as F } from "../../src/smccc/functions/ffa.js";

let scenario: Scenario;
let report: RunReport;

beforeAll(async () => {
  const s = loadScenario("examples/ffa.yaml");
  if (!s.ok) throw new Error(JSON.stringify(s.errors));
  scenario = s.scenario;
  report = await runScenario(scenario);
}, 400_000);

const vm = (name: string): VmReport => report.vms.find((v) => v.name === name)!;
const has = (v: VmReport, text: string) => v.console.some((l) => l.includes(text));

/** The first 8 bytes of the VM's keystream for nonce (7, 9): what `teec-client decrypt` of zeros prints. */
function keystreamHead(vmName: string): string {
  const key = scenario.config.vms.find((v) => v.name === vmName)!.tee!.contentKey!;
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setUint32(0, 7, true);
  new DataView(nonce.buffer).setUint32(4, 9, true);
  const out = new Uint8Array(8);
  chacha20(key, nonce, 0, new Uint8Array(8), out);
  return Buffer.from(out).toString("hex");
}

describe("examples/ffa.yaml under QEMU", () => {
  it("both VMs power off cleanly and every expectation of the scenario holds", () => {
    expect(report.vms.flatMap((v) => v.failures.map((f) => `${v.name}: ${f}`))).toEqual([]);
    for (const v of report.vms) expect(v.exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)" });
  });

  it("the FF-A VM's kernel negotiates FF-A and binds optee over it; the SMC VM never sees FF-A", () => {
    expect(has(vm("ffa"), "ARM FF-A: Firmware version 1.2 found")).toBe(true);
    expect(has(vm("ffa"), "optee: initialized driver")).toBe(true);
    expect(has(vm("ffa"), "optee: dynamic shared memory is enabled")).toBe(false); // the SMC ABI's line
    expect(has(vm("smc"), "optee: dynamic shared memory is enabled")).toBe(true);
    expect(has(vm("smc"), "ARM FF-A")).toBe(false);
  });

  it("each VM decrypts with its own key, through its own ABI", () => {
    for (const name of ["ffa", "smc"]) {
      const l = vm(name).console.find((x) => x.includes("SMCV-TEEC decrypt "))!;
      expect(l, name).toMatch(new RegExp(`SMCV-TEEC decrypt 0x0 262144 [0-9a-f]{16} ${keystreamHead(name)}$`));
    }
    expect(keystreamHead("ffa")).not.toBe(keystreamHead("smc"));
  });

  it("the trace shows the FF-A VM's calls mediated, and the hypervisor's own FF-A calls to the SPMC", () => {
    const mine = report.events.filter((e) => e.vm === "ffa" && e.conduit !== "hypervisor");
    expect(mine.some((e) => e.fid === F.FFA_MSG_SEND_DIRECT_REQ.smc32 && e.action === "mediate")).toBe(true);
    expect(mine.some((e) => (e.fid === F.FFA_MEM_SHARE.smc32 || e.fid === F.FFA_MEM_SHARE.smc64) && e.action === "mediate")).toBe(true);
    expect(report.events.some((e) => e.conduit === "hypervisor" && e.fid === F.FFA_MSG_SEND_DIRECT_REQ.smc32)).toBe(true);
    // The SMC VM made no FF-A call at all.
    expect(report.events.some((e) => e.vm === "smc" && e.conduit !== "hypervisor" && (e.fid >>> 0 & 0xbfff_ff00) === 0x8400_0000 && (e.fid & 0xff) >= 0x60)).toBe(false);
  });
});
