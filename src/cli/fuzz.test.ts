/**
 * `smcvisor fuzz`: a short campaign per example config (the scenario of `npm start` included) finds no
 * violation, a broken handler is reported with the command that replays it (exit 1), and operator mistakes
 * are one line and exit 2.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { ServiceDefinition } from "../router/service.js";
import { STANDARD_SERVICES } from "../services/standard.js";
import { OEN } from "../smccc/owners.js";
import type { Io } from "./args.js";
import { fuzzCommand } from "./fuzz.js";
import { main } from "./main.js";

const ROOT = resolve(import.meta.dirname, "../..");

function io() {
  const out: string[] = [], err: string[] = [];
  const sink: Io = { out: (s) => out.push(s), err: (s) => err.push(s), cwd: ROOT };
  return { out, err, sink };
}

async function run(...argv: string[]) {
  const o = io();
  const code = await main(argv, o.sink);
  return { code, out: o.out, err: o.err, json: () => JSON.parse(o.out.join("\n")) };
}

describe("smcvisor fuzz", () => {
  // A few thousand calls per example, seeds fixed: every call checked, on both machines.
  it.each([
    ["examples/policy.yaml", 3000],
    ["examples/tee.yaml", 4000],
    ["examples/demo.yaml", 3000],
  ])("finds no violation in %s", async (config, calls) => {
    const r = await run("fuzz", "--config", config, "--calls", String(calls), "--seed", "1", "--json");
    const j = r.json();
    expect(j.violation, JSON.stringify(j.violation)).toBeNull();
    expect(r.code).toBe(0);
    expect(j).toMatchObject({ config, seed: 1, calls });
    expect(j.callsPerSecond).toBeGreaterThan(0);
    expect(Object.values(j.stats.perVm as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(calls);
    if (config !== "examples/policy.yaml") expect(j.stats.optee.sessions).toBeGreaterThan(0);
  }, 60_000);

  it("prints the rate and what it checked", async () => {
    const r = await run("fuzz", "--config", "examples/tee.yaml", "--calls", "500", "--seed", "0x2a");
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe("smcvisor fuzz: examples/tee.yaml, 3 VMs (media, apps, tools), seed 42");
    expect(r.out[1]).toMatch(/^ {2}500 calls in [\d.]+ s: [\d.]+k? calls\/s/);
    expect(r.out.at(-1)).toMatch(/no violation/);
  });

  it("reports a violation with its call and the command that replays it, exit 1; the replay finds it again", async () => {
    // A broken handler: OEM call 0x100 clobbers x5, which an SMCCC 1.1 caller expects preserved.
    const clobber: ServiceDefinition = {
      name: "clobber",
      enabled: () => true,
      claims: () => [{ service: "clobber", owner: OEN.OEM, types: [2, 3], first: 0x100, last: 0x100 }],
      create: () => ({ handle: (call, res) => { res.ret(0); call.regs[10] = 0xbad; }, features: () => 0 }),
    };
    const hooks = { hypervisor: { services: [...STANDARD_SERVICES, clobber] } };
    // VM a is told SMCCC 1.1: x4-x17 are preserved across every call it makes.
    const config = join(mkdtempSync(join(tmpdir(), "smcvisor-fuzz-")), "smccc11.yaml");
    writeFileSync(config, 'vms:\n  a: { smccc: "1.1", vcpus: 2 }\n  b: { smccc: "1.2", conduit: hvc }\n');
    const first = io();
    const code = await fuzzCommand(["--config", config, "--calls", "5000", "--seed", "9"], first.sink, hooks);
    expect(code).toBe(1);
    const line = first.out.find((l) => l.startsWith("VIOLATION"));
    expect(line).toMatch(/^VIOLATION \(registers\) at call (\d+) \(\w+ vCPU \d, (smc|hvc) 0x[C8]3000100\): .*x5 changed from 0x[0-9a-f]+ to 0xbad/);
    const at = Number(/at call (\d+)/.exec(line!)![1]);
    const replay = first.out.find((l) => l.includes("replay:"))!;
    expect(replay).toBe(`  replay: smcvisor fuzz --config ${config} --seed 9 --calls ${at + 1}`);
    const again = io();
    expect(await fuzzCommand(replay.replace("  replay: smcvisor fuzz ", "").split(" "), again.sink, hooks)).toBe(1);
    expect(again.out.find((l) => l.startsWith("VIOLATION"))).toBe(line);
  });

  it("refuses what is not a campaign: one line, exit 2", async () => {
    for (const argv of [["fuzz"], ["fuzz", "--config"], ["fuzz", "--config", "examples/tee.yaml", "--calls", "0"], ["fuzz", "--config", "examples/tee.yaml", "--calls", "1e3"], ["fuzz", "--config", "examples/tee.yaml", "--seed", "-1"], ["fuzz", "--config", "examples/tee.yaml", "--seed", "2^60"], ["fuzz", "--config", "examples/tee.yaml", "extra"], ["fuzz", "--config", "examples/tee.yaml", "--verbose"]]) {
      const r = await run(...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err[0], argv.join(" ")).toMatch(/^smcvisor: /);
    }
    const missing = await run("fuzz", "--config", "no/such.yaml");
    expect(missing.code).toBe(2);
    expect(missing.err).toEqual([expect.stringMatching(/^no\/such.yaml: \(file\): cannot read/)]);
  });
});
