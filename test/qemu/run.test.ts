// `smcvisor run` with any kernel image: a raw bare-metal binary loaded like a Linux Image, its PL011 output
// as the console; and scenario errors that name the field.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { writeScriptImage } from "../../src/machine/qemu/baremetal.js";

const dir = mkdtempSync(join(tmpdir(), "smcvisor-run-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(...argv: string[]) {
  const out: string[] = [], err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), cwd: dir });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("smcvisor run", () => {
  it("boots a raw bare-metal image named in the scenario, streams its console with the VM's name and checks expectations", async () => {
    writeScriptImage(join(dir, "guest.img"), [
      { vcpu: 0, conduit: "hvc", regs: [0x8400_0000n] },
      { vcpu: 0, conduit: "smc", regs: [0x8200_0001n] },
      { vcpu: 0, conduit: "hvc", regs: [0x8400_0008n], halts: true },
    ]);
    writeFileSync(join(dir, "bare.yaml"), `
vms:
  tiny: { vcpus: 1, memory: { size: 64MiB }, conduit: hvc }
guests:
  tiny:
    kernel: guest.img
    cmdline: "ignored by this guest"
    expect:
      console: ["SMCV-BOOT", "/SMCV-STEP 0 0x10001 /"]
      calls: [PSCI_VERSION, PSCI_SYSTEM_OFF]
      denied: ["0x82000001"]
trace: trace.json
`);
    const r = await run("run", "bare.yaml");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^tiny \| SMCV-STEP 0 0x10001 /m);
    expect(r.out).toContain("tiny: off (powered off (PSCI_SYSTEM_OFF)); 3 calls, 1 denied, 0 handler errors");
    expect(r.out).toContain("every VM powered off cleanly and every expectation held");
  }, 60_000);

  it("exits 1 and says which expectation failed", async () => {
    writeFileSync(join(dir, "fail.yaml"), `
vms:
  tiny: { vcpus: 1, memory: { size: 64MiB } }
guests:
  tiny: { kernel: guest.img, expect: { console: ["never printed"] } }
trace: trace.json
`);
    const r = await run("run", "fail.yaml", "--quiet");
    expect(r.code).toBe(1);
    expect(r.out).toContain('FAILED: console never showed "never printed"');
  }, 60_000);

  it("rejects a malformed scenario with the path of each problem, before starting anything", async () => {
    writeFileSync(join(dir, "bad.yaml"), `
vms:
  a: { vcpus: 0 }
guests:
  a: { kernel: guest.img, expect: { consoel: [] } }
  b: { kernel: guest.img }
`);
    const r = await run("run", "bad.yaml");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.yaml: guests\.a\.expect: /);
    const r2 = await run("run", "missing.yaml");
    expect(r2.code).toBe(2);
    expect(r2.err).toContain("cannot read");
  });
});
