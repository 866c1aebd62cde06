import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { seededGenerator } from "../firmware/monitor/entropy.js";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import { parseConfigText } from "../policy/load.js";
import { Recorder } from "../record/recorder.js";
import { main } from "./main.js";

const ROOT = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "smcvisor-replay-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TEXT = `vms:
  dom0:
    memory: { base: 0x40000000, size: 1MiB }
  domU:
    memory: { base: 0x40000000, size: 1MiB }
`;

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), cwd: dir });
  return { code, out, err };
}

// One recording for every case: both VMs ask for the SMCCC version, the TRNG and the hypervisor's UID.
const file = join(dir, "run.ndjson");
{
  const parsed = parseConfigText(TEXT);
  if (!parsed.ok) throw new Error("bad test config");
  const recorder = new Recorder(file, { smcvisor: "test", config: { kind: "config", name: "inline.yaml", text: TEXT } }, { limitBytes: 1 << 20 });
  const m = ScriptedMachine.fromConfig(parsed.value, { observer: recorder, entropy: seededGenerator(5) });
  for (const vm of ["dom0", "domU"]) for (const fid of [0x8000_0000, 0xc400_0053, 0x8600_ff01]) m.vm(vm).vcpu(0).hvc(fid, 64);
  recorder.close();
}

describe("smcvisor replay", () => {
  it("exits 0 with no difference against the recorded config", async () => {
    const r = await cli("replay", "run.ndjson");
    expect(r.err).toEqual([]);
    expect(r.out[0]).toMatch(/^smcvisor replay: run\.ndjson \(6 calls of dom0, domU, recorded by smcvisor test at .+\) against inline\.yaml \(as recorded\)$/);
    expect(r.out.slice(1)).toEqual(["no difference in 6 calls"]);
    expect(r.code).toBe(0);
  });

  it("exits 1 and shows each changed call against a policy that hides the hypervisor's UID from domU", async () => {
    writeFileSync(join(dir, "new.yaml"), TEXT.replace("  domU:\n", "  domU:\n    grants:\n      - { name: domU-no-hyp-uid, id: 0x8600FF01, action: deny }\n"));
    const r = await cli("replay", "run.ndjson", "--config", "new.yaml");
    expect(r.out.slice(1)).toEqual([
      "#6 domU vCPU 0 hvc VENDOR_HYP_SERVICE_CALL_UID (0x8600FF01)",
      "  decision: emulate (default:hyp-info) → deny (domU-no-hyp-uid)",
      expect.stringMatching(/^ {2}x0: 0x[0-9a-f]+ → 0xffffffff$/),
      expect.stringMatching(/^ {2}x1: 0x[0-9a-f]+ → 0x0$/),
      expect.stringMatching(/^ {2}x2: 0x[0-9a-f]+ → 0x0$/),
      expect.stringMatching(/^ {2}x3: 0x[0-9a-f]+ → 0x0$/),
      "1 of 6 calls differ",
    ]);
    expect(r.code).toBe(1);
    const j = await cli("replay", "run.ndjson", "--config", "new.yaml", "--json");
    expect(j.code).toBe(1);
    const report = JSON.parse(j.out.join("\n"));
    expect(report).toMatchObject({ recording: "run.ndjson", config: "new.yaml", calls: 6, differing: 1, notes: [] });
    expect(report.diffs[0]).toMatchObject({ n: 6, vm: "domU", fid: "0x8600FF01", name: "VENDOR_HYP_SERVICE_CALL_UID", before: { action: "emulate" }, after: { action: "deny", rule: "domU-no-hyp-uid" } });
  });

  it("exits 2 with one clear line for a missing, corrupt, cut or newer file, and a bad --config", async () => {
    const good = readFileSync(file, "utf8");
    const lines = good.trimEnd().split("\n");
    writeFileSync(join(dir, "corrupt.ndjson"), good.replace('"vcpu":0', '"vcpu":"zero"'));
    writeFileSync(join(dir, "cut.ndjson"), good.slice(0, good.length - 30));
    writeFileSync(join(dir, "newer.ndjson"), good.replace('"version":1', '"version":2'));
    writeFileSync(join(dir, "bad.yaml"), "vms: { dom0: { vcpus: -1 } }\n");
    writeFileSync(join(dir, "empty.ndjson"), "");
    // A bad line after good ones: the calls before it were replayed, but the command says only why it stopped.
    writeFileSync(join(dir, "late.ndjson"), [...lines.slice(0, -2), lines[lines.length - 2]!.replace(/"outcome":"[a-z]+"/, '"outcome":7'), lines[lines.length - 1]].join("\n") + "\n");
    const cases: [string[], RegExp][] = [
      [["replay"], /^smcvisor: usage: smcvisor replay <recording>/],
      [["replay", "none.ndjson"], /^smcvisor: cannot read none\.ndjson: ENOENT$/],
      [["replay", "."], /^smcvisor: cannot read \.: not a regular file$/],
      [["replay", "corrupt.ndjson"], /^smcvisor: corrupt\.ndjson: line 2: vcpu: /],
      [["replay", "cut.ndjson"], new RegExp(`^smcvisor: cut\\.ndjson: line ${lines.length}: not JSON \\(the file may be cut short\\)$`)],
      [["replay", "newer.ndjson"], /^smcvisor: newer\.ndjson: line 1: format version 2 is newer than this smcvisor reads \(1\)/],
      [["replay", "run.ndjson", "--config", "bad.yaml"], /^smcvisor: bad\.yaml: vms\.dom0\.vcpus: /],
      [["replay", "run.ndjson", "--frob"], /^smcvisor: unknown option --frob$/],
      [["replay", "empty.ndjson"], /^smcvisor: empty\.ndjson: the file is empty: not a smcvisor recording$/],
      [["replay", "late.ndjson"], new RegExp(`^smcvisor: late\\.ndjson: line ${lines.length - 1}: outcome: `)],
    ];
    for (const [argv, want] of cases) {
      const r = await cli(...argv);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.err[0], argv.join(" ")).toMatch(want);
      expect(r.out, argv.join(" ")).toEqual([]);
    }
  });

  it("streams a recording of many megabytes (lines across read chunks), and notes one that was cut short", async () => {
    const parsed = parseConfigText(TEXT);
    if (!parsed.ok) throw new Error("bad test config");
    const big = join(dir, "big.ndjson");
    const recorder = new Recorder(big, { smcvisor: "test", config: { kind: "config", name: "inline.yaml", text: TEXT } }, { limitBytes: 1 << 30 });
    const m = ScriptedMachine.fromConfig(parsed.value, { observer: recorder, entropy: seededGenerator(9) });
    const v = m.vm("dom0").vcpu(0);
    for (let i = 0; i < 8000; i++) v.hvc(0xc400_0053, 1 + (i % 192));
    recorder.close();
    const size = readFileSync(big).length;
    expect(size).toBeGreaterThan(2 << 20);
    const r = await cli("replay", "big.ndjson");
    expect(r.out.slice(1)).toEqual(["no difference in 8000 calls"]);
    expect(r.code).toBe(0);
    // Killed mid-write: the last line is half there. Replay stops at it, naming it.
    writeFileSync(join(dir, "killed.ndjson"), readFileSync(big).subarray(0, size - 100));
    const k = await cli("replay", "killed.ndjson");
    expect(k.err).toEqual([expect.stringMatching(/^smcvisor: killed\.ndjson: line 8001: not JSON \(the file may be cut short\)$/)]);
    expect(k.code).toBe(2);
    // Killed between two records: what is there replays, with a note.
    const text = readFileSync(big, "utf8");
    writeFileSync(join(dir, "between.ndjson"), text.slice(0, text.lastIndexOf("\n", text.length - 2) + 1));
    const b = await cli("replay", "between.ndjson");
    expect(b.out.slice(1)).toEqual(["note: the recording is cut short (no end record): the run did not finish writing it", "no difference in 8000 calls"]);
    expect(b.code).toBe(0);
  }, 120_000);

  it("is in help, and run refuses a bad --record-limit or an unwritable --record before booting anything", async () => {
    const h = await cli("help", "replay");
    expect(h.out.join("\n")).toContain("usage: smcvisor replay <recording> [--config FILE] [--json]");
    expect((await cli("help", "run")).out.join("\n")).toContain("--record-limit MIB");
    const demo = join(ROOT, "examples/demo.yaml");
    for (const [args, want] of [
      [["--record", "r.ndjson", "--record-limit", "0"], 'smcvisor: --record-limit: "0" is not a size in MiB from 1 to 65536'],
      [["--record-limit", "5"], "smcvisor: --record-limit: give --record FILE too"],
      [["--record", "run.ndjson/x"], `smcvisor: --record: cannot write ${join(dir, "run.ndjson/x")}: part of its directory is not a directory`],
    ] as const) {
      const r = await cli("run", demo, "--trace", join(dir, "t.json"), ...args);
      expect(r.err).toEqual([want]);
      expect(r.code).toBe(2);
    }
  });
});
