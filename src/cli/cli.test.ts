import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "./main.js";

const ROOT = resolve(import.meta.dirname, "../..");

async function run(...argv: string[]) {
  const out: string[] = [], err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s), cwd: ROOT });
  return { code, out, err, json: () => JSON.parse(out.join("\n")) };
}

describe("smcvisor decode", () => {
  it("names PSCI_CPU_ON with every field", async () => {
    const r = await run("decode", "0xC4000003", "--json");
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ fid: "0xC4000003", owner: 4, ownerName: "Standard Secure", fast: true, smc64: true, function: 3, name: "PSCI_CPU_ON" });
  });

  it("prints a readable form", async () => {
    const r = await run("decode", "0x32000004");
    expect(r.out.join("\n")).toMatch(/OPTEE_SMC_CALL_WITH_ARG[\s\S]*yielding/);
  });

  it("rejects what is not a 32-bit ID", async () => {
    expect((await run("decode", "0x1FFFFFFFF")).code).toBe(2);
    expect((await run("decode", "zz")).err[0]).toMatch(/not a number/);
  });
});

describe("smcvisor call", () => {
  it("denies domU's SiP call with -1", async () => {
    const r = await run("call", "--config", "examples/policy.yaml", "--vm", "domU", "0x82000001", "--json");
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ x0: "0xFFFFFFFF", ret: "-1", decision: { action: "deny" } });
  });

  it("forwards dom0's SiP call", async () => {
    const r = await run("call", "--config", "examples/policy.yaml", "--vm", "dom0", "0x82000001", "--json");
    expect(r.json().decision.action).toBe("forward");
  });

  it("runs without a config, with the standard services", async () => {
    const r = await run("call", "0x80000000", "--json");
    expect(r.json()).toMatchObject({ vm: "vm0", x0: "0x10002", decision: { action: "emulate", rule: "default:arch" } });
  });

  it("takes arguments, the conduit and AArch32", async () => {
    const r = await run("call", "--conduit", "hvc", "--aarch32", "0x80000001", "0x80008000", "--json");
    expect(r.json()).toMatchObject({ aarch32: true, conduit: "hvc", x0: "0x0", pcAdvance: 0 });
  });

  it("names an unknown VM", async () => {
    const r = await run("call", "--config", "examples/policy.yaml", "--vm", "nope", "0x80000000");
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/no VM named "nope" \(have: dom0, domU, drv\)/);
  });
});

describe("smcvisor explain", () => {
  it("names the rule behind a decision", async () => {
    const r = await run("explain", "--config", "examples/policy.yaml", "--vm", "domU", "0xC2000001", "--json");
    expect(r.json().decision).toMatchObject({ action: "deny", rule: "domU-no-sip" });
  });

  it("names the convention rule for malformed IDs", async () => {
    const r = await run("explain", "--config", "examples/policy.yaml", "--vm", "dom0", "0x82040001");
    expect(r.out.join("\n")).toMatch(/smccc:mbz-bits-23-17/);
  });
});

describe("smcvisor config check", () => {
  const dir = mkdtempSync(join(tmpdir(), "smcvisor-cli-"));

  it("exits 0 for a valid config", async () => {
    expect((await run("config", "check", "examples/policy.yaml")).code).toBe(0);
  });

  it("prints one line per problem with its path and exits 2", async () => {
    const f = join(dir, "bad.yaml");
    writeFileSync(f, "vms:\n  a:\n    cpus: 2\n    grants:\n      - { owner: sip, action: allow }\n      - { owner: trusted-os, action: \"mediate:nosuch\" }\n");
    const r = await run("config", "check", f);
    expect(r.code).toBe(2);
    expect(r.out.map((l) => l.replace(f + ": ", ""))).toEqual([
      "vms.a.cpus: unknown field",
      "vms.a.grants[0].action: action is emulate, forward, deny, mediate:<name> or delegate:<name>",
    ]);
  });

  it("checks mediator names once the schema is satisfied", async () => {
    const f = join(dir, "med.json");
    writeFileSync(f, JSON.stringify({ vms: { a: { grants: [{ owner: "trusted-os", action: "mediate:nosuch" }] } } }));
    const r = await run("config", "check", f, "--json");
    expect(r.code).toBe(2);
    expect(r.json().errors[0].path).toBe("vms.a.grants[0].action");
  });

  it("says when the file cannot be read", async () => {
    const r = await run("config", "check", join(dir, "missing.yaml"));
    expect(r.code).toBe(2);
    expect(r.out[0]).toMatch(/cannot read .*ENOENT/);
  });
});

describe("the installed command", () => {
  it("runs through npx from the package", () => {
    const out = execFileSync("npx", ["--no-install", "smcvisor", "decode", "0xC4000003", "--json"], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    expect(JSON.parse(out)).toMatchObject({ name: "PSCI_CPU_ON", owner: 4, fast: true, smc64: true, function: 3 });
  });

  it("exits 2 on usage errors", () => {
    let status = 0;
    try {
      execFileSync("node", ["bin/smcvisor.mjs", "frobnicate"], { cwd: ROOT, stdio: "ignore" });
    } catch (e) {
      status = (e as { status: number }).status;
    }
    expect(status).toBe(2);
  });
});
