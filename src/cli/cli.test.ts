import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { main, reportError } from "./main.js";

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

describe("operator input: one line, exit 2, never a stack trace", () => {
  const dir = mkdtempSync(join(tmpdir(), "smcvisor-cli-input-"));
  const oneLine = (r: { err: string[] }) => {
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).not.toMatch(/\n|    at /);
  };

  it("--vcpu names a vCPU the VM has, that is on, as a non-negative integer", async () => {
    const none = await run("call", "--config", "examples/policy.yaml", "--vm", "dom0", "--vcpu", "5", "0x80000000");
    expect(none.code).toBe(2);
    oneLine(none);
    expect(none.err[0]).toMatch(/--vcpu 5: dom0 has 2 vCPUs \(0-1\)/);
    const off = await run("call", "--config", "examples/policy.yaml", "--vm", "dom0", "--vcpu", "1", "0x80000000");
    expect(off.code).toBe(2);
    oneLine(off);
    expect(off.err[0]).toMatch(/vCPU 1 of dom0 is off at boot/);
    for (const bad of ["-1", "1.5", "x", "0x1_0000_0000"]) {
      const r = await run("call", "--vcpu", bad, "0x80000000");
      expect(r.code, bad).toBe(2);
      oneLine(r);
      expect(r.err[0]).not.toMatch(/18446744073709552000/);
    }
    expect((await run("call", "--imm", "-1", "0x80000000")).err[0]).toMatch(/--imm .*: "-1" is not a non-negative integer/);
    expect((await run("call", "--config", "examples/policy.yaml", "--vm", "dom0", "--vcpu", "0", "0x80000000", "--json")).json()).toMatchObject({ vcpu: 0, x0: "0x10002" });
  });

  it("a VM above 1 GiB runs in call and demo (its RAM is kept where the guest writes it)", async () => {
    const f = join(dir, "big.yaml");
    writeFileSync(f, "vms:\n  big: { memory: { size: 16GiB } }\n  small: {}\n");
    const r = await run("call", "--config", f, "--vm", "big", "0x84000000", "--json");
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ vm: "big", decision: { action: "emulate" } });
    const d = await run("demo", "--config", f, "--trace", join(dir, "big-trace.json"));
    expect(d.code).toBe(0);
    expect(d.out.join("\n")).toMatch(/big \(VM ID/);
  });

  it("a VM beyond what the in-process machine holds is refused with its path", async () => {
    const f = join(dir, "huge.yaml");
    writeFileSync(f, "vms:\n  huge: { memory: { size: 0x20000000000 } }\n");
    const r = await run("call", "--config", f, "0x80000000");
    expect(r.code).toBe(2);
    oneLine(r);
    expect(r.err[0]).toMatch(/vms\.huge\.memory(\.size)?: /);
  });

  it("resolves a delegate's module against the config file's directory, not the working directory", async () => {
    const sub = join(dir, "policy");
    mkdirSync(join(sub, "handlers"), { recursive: true });
    writeFileSync(join(sub, "handlers", "answer.mjs"), "export function handle() { return { regs: [0, 42] }; }\n");
    writeFileSync(join(sub, "p.yaml"), 'delegates:\n  h: { module: handlers/answer.mjs, thread: hypervisor }\nvms:\n  a:\n    grants:\n      - { id: 0x83000001, action: "delegate:h" }\n');
    const r = await run("call", "--config", join(sub, "p.yaml"), "0x83000001", "--json");
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ x0: "0x0", x1: "0x2A" });
    // The example policy names its delegate relative to itself too.
    expect((await run("call", "--config", "examples/policy.yaml", "--vm", "domU", "0x83000001", "--json")).json()).toMatchObject({ x1: "0x1" });
    // A module that is not there: one line naming it, exit 2.
    writeFileSync(join(sub, "missing.yaml"), 'delegates:\n  h: { module: handlers/nope.mjs }\nvms:\n  a: {}\n');
    const missing = await run("call", "--config", join(sub, "missing.yaml"), "0x80000000");
    expect(missing.code).toBe(2);
    oneLine(missing);
    expect(missing.err[0]).toMatch(/delegate "h": cannot load handlers\/nope\.mjs/);
  });

  it("a trace path that cannot be written is refused before anything runs", async () => {
    const d = await run("demo", "--trace", "/dev/null/x.json");
    expect(d.code).toBe(2);
    oneLine(d);
    expect(d.err[0]).toBe("smcvisor: --trace: cannot write /dev/null/x.json: part of its directory is not a directory");
    expect(d.out).toEqual([]);
    const r = await run("run", "examples/demo.yaml", "--trace", "/dev/null/x.json");
    expect(r.code).toBe(2);
    oneLine(r);
    expect(r.out).toEqual([]);
  });

  it("a config the machine cannot run is one line per problem", async () => {
    const f = join(dir, "board.yaml");
    writeFileSync(f, "vms:\n  a: { board: exynos9 }\n");
    const r = await run("call", "--config", f, "0x80000000");
    expect(r.code).toBe(2);
    oneLine(r);
    expect(r.err[0]).toMatch(/vms\.a\.board: no board profile named "exynos9"/);
  });

  it("an internal error is one line without a stack, unless SMCVISOR_DEBUG=1", () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (l: string) => err.push(l), cwd: ROOT };
    const bug = new TypeError("cannot read properties of undefined\nsecond line");
    const before = process.env.SMCVISOR_DEBUG;
    try {
      delete process.env.SMCVISOR_DEBUG;
      expect(reportError(bug, io)).toBe(1);
      expect(err).toEqual(["smcvisor: internal error: cannot read properties of undefined (SMCVISOR_DEBUG=1 shows where)"]);
      process.env.SMCVISOR_DEBUG = "1";
      expect(reportError(bug, io)).toBe(1);
      expect(err[1]).toMatch(/internal error: TypeError: cannot read properties of undefined[\s\S]*    at /);
    } finally {
      if (before === undefined) delete process.env.SMCVISOR_DEBUG;
      else process.env.SMCVISOR_DEBUG = before;
    }
  });
});

describe("smcvisor help and --version", () => {
  it("lists every command in the overview and explains each one with `help <command>` and `<command> --help`", async () => {
    const all = await run("help");
    expect(all.code).toBe(0);
    for (const name of ["decode", "call", "explain", "config", "demo", "run", "conform", "fuzz"]) {
      expect(all.out.join("\n"), name).toMatch(new RegExp(`^  smcvisor ${name} `, "m"));
      const one = await run("help", name);
      expect(one.code, name).toBe(0);
      expect(one.out.join("\n"), name).toMatch(new RegExp(`^usage: smcvisor ${name}`));
      expect(one.out.join("\n"), name).toMatch(/Exit status/);
      expect((await run(name, "--help")).out, name).toEqual(one.out);
    }
    // Every flag a command's usage line names is explained in its help.
    const call = (await run("help", "call")).out.join("\n");
    for (const flag of ["--config", "--vm", "--vcpu", "--conduit", "--aarch32", "--imm", "--json"]) expect(call).toMatch(new RegExp(`^  ${flag}`, "m"));
  });

  it("refuses help for a command that does not exist, naming the ones that do", async () => {
    const r = await run("help", "nope");
    expect(r.code).toBe(2);
    expect(r.err[0]).toBe('smcvisor: help: no command "nope" (commands: decode, call, explain, config, demo, run, replay, conform, fuzz)');
  });

  it("--version names the package version, the shim protocol and Node", async () => {
    const r = await run("--version");
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
    expect(r.out[0]!.startsWith(`smcvisor ${version}`)).toBe(true);
    expect(r.out[0]).toMatch(/^smcvisor \S+( \([0-9a-f]{7,}\))?, shim protocol \d+, Node v\d+\./);
  });
});
