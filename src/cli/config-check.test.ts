/**
 * Operator input at the command line: one line per problem with a path, exit 2, never a stack trace, and
 * before any work is done.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { MAX_CONFIG_BYTES } from "../policy/source.js";
import { main } from "./main.js";

const ROOT = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "smcvisor-check-"));

async function run(...argv: string[]) {
  const out: string[] = [], err: string[] = [];
  const code = await main(argv, { out: (s) => out.push(s), err: (s) => err.push(s), cwd: ROOT });
  return { code, out, err, lines: [...out, ...err], json: () => JSON.parse(out.join("\n")) };
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const noStack = (lines: readonly string[]) => lines.every((l) => !/\n\s+at /.test(l) && !/^\s+at /.test(l));

const BOMB = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ..."bcdefghi".split("").map((k, i) => `${k}: &${k} [${Array(9).fill(`*${"abcdefghi"[i]}`).join(",")}]`),
  "vms: { a: {} }",
].join("\n");

describe("a YAML alias bomb", () => {
  const f = file("bomb.yaml", BOMB);
  for (const argv of [["config", "check", f], ["call", "--config", f, "0x80000000"], ["explain", "--config", f, "--vm", "a", "0x80000000"], ["demo", "--config", f]]) {
    it(`fails at once in one line: ${argv[0]}`, async () => {
      const start = performance.now();
      const r = await run(...argv);
      expect(performance.now() - start).toBeLessThan(2000);
      expect(r.code).toBe(2);
      expect(r.lines).toHaveLength(1);
      expect(r.lines[0]).toMatch(/YAML aliases expand to more than 10000 values/);
    });
  }
});

describe("smcvisor config check", () => {
  it("refuses JSON that names a VM twice, with the path", async () => {
    const r = await run("config", "check", file("dup.json", '{"vms": {"a": {}, "a": {"vcpus": 2}}}'));
    expect(r.code).toBe(2);
    expect(r.out).toEqual([`${join(dir, "dup.json")}: vms.a: this key is given twice (JSON.parse would keep only the last) (line 1, column 19)`]);
  });

  it("refuses a file above 1 MiB before parsing it", async () => {
    const r = await run("config", "check", file("big.yaml", "vms:\n  a: {}\n" + "#".repeat(MAX_CONFIG_BYTES)));
    expect(r.code).toBe(2);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toMatch(/\(file\): \d+ bytes is more than a config may have \(1048576 bytes, 1 MiB\)/);
  });

  it("checks a scenario, as run takes it", async () => {
    const r = await run("config", "check", "examples/demo.yaml", "--json");
    expect(r.code).toBe(0);
    expect(r.json()).toMatchObject({ kind: "scenario", valid: true, vms: ["dom0", "domU"] });
  });

  it("checks a scenario's own fields: a console /regex/ that does not compile", async () => {
    const r = await run("config", "check", file("regex.yaml", 'guests:\n  a: { kernel: debian, expect: { console: ["/(unclosed/"] } }\nvms:\n  a: {}\n'));
    expect(r.code).toBe(2);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]).toMatch(/guests\.a\.expect\.console\[0\]: not a regular expression/);
  });

  it("checks the config inside a scenario, and the policy file it names", async () => {
    const inline = await run("config", "check", file("inline.yaml", "guests:\n  hypervisor: { kernel: debian }\nvms:\n  hypervisor: {}\n"));
    expect(inline.code).toBe(2);
    expect(inline.out[0]).toMatch(/vms\.hypervisor: "hypervisor" is reserved/);
    file("policy.yaml", "vms:\n  a: { id: 0x1FFFF }\n");
    const named = await run("config", "check", file("named.yaml", "guests:\n  a: { kernel: debian }\npolicy: policy.yaml\n"));
    expect(named.code).toBe(2);
    expect(named.out[0]).toMatch(/policy\.yaml: vms\.a\.id: id: 0x1FFFF is outside 0x1-0xFFFE/);
  });

  it("refuses what the QEMU backend cannot run, which a plain config may have", async () => {
    const vms = "vms:\n  a: { vcpus: 9 }\n";
    expect((await run("config", "check", file("nine.yaml", vms))).code).toBe(0);
    const r = await run("config", "check", file("nine-scenario.yaml", `guests:\n  a: { kernel: debian }\n${vms}`));
    expect(r.code).toBe(2);
    expect(r.out).toEqual([`${join(dir, "nine-scenario.yaml")}: vms.a.vcpus: the QEMU backend runs at most 8 vCPUs per VM (a GICv2 has eight CPU interfaces); this VM has 9`]);
  });

  it("refuses an exclusive grant that another VM's services would break", async () => {
    const r = await run("config", "check", file("excl.yaml", 'vms:\n  a:\n    grants:\n      - { range: "0x84000050-0x8400005F", action: forward, exclusive: true }\n  b: {}\n'));
    expect(r.code).toBe(2);
    expect(r.out[0]).toMatch(/vms\.b\.services\.trng: its trng service gives b/);
  });
});

describe("smcvisor run", () => {
  it("refuses 9 vCPUs before building anything: one line, a path, exit 2", async () => {
    const r = await run("run", file("run-nine.yaml", "guests:\n  a: { kernel: debian }\nvms:\n  a: { vcpus: 9 }\n"));
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(/vms\.a\.vcpus: the QEMU backend runs at most 8 vCPUs per VM/);
    expect(noStack(r.err)).toBe(true);
  });
});
