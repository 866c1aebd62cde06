// Record and replay with real guests: examples/demo.yaml (two Debian Linux VMs sharing OP-TEE) boots once
// under QEMU with `smcvisor run --record`; the recording then replays in-process with no difference against
// its own config, and against a policy that denies dom0 the TRNG with exactly dom0's TRNG calls differing.
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { parseRecording, type Recording } from "../../src/record/format.js";

const ROOT = resolve(import.meta.dirname, "../..");
const dir = mkdtempSync(join(tmpdir(), "smcvisor-record-qemu-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function cli(...argv: string[]) {
  const out: string[] = [], err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), cwd: dir });
  return { code, out, err };
}

const file = join(dir, "demo.ndjson");
let run: Awaited<ReturnType<typeof cli>>;
let recording: Recording;

beforeAll(async () => {
  run = await cli("run", join(ROOT, "examples/demo.yaml"), "--record", file, "--trace", join(dir, "trace.json"), "--quiet");
  const p = parseRecording(readFileSync(file, "utf8"));
  if (!p.ok) throw new Error(p.error);
  recording = p.recording;
}, 400_000);

const calls = () => recording.records.filter((r) => r.t === "call");

describe("smcvisor run --record, then smcvisor replay (examples/demo.yaml under QEMU)", () => {
  it("the run succeeds and records every call both Linux guests made, with what OP-TEE and the TRNG read", () => {
    expect(run.out.join("\n")).toContain("every VM powered off cleanly and every expectation held");
    expect(run.code).toBe(0);
    expect(run.out.some((l) => /^ {2}record: .*demo\.ndjson \(\d+ bytes; replay with/.test(l))).toBe(true);
    const summary = run.out.filter((l) => / calls, \d+ denied/.test(l)).map((l) => Number(/; (\d+) calls/.exec(l)![1]));
    const c = calls();
    // Every call the summary counts is in the recording, and the recording ended cleanly.
    expect(c.length).toBe(summary.reduce((a, b) => a + b, 0));
    expect(recording.records[recording.records.length - 1]).toEqual({ t: "end", calls: c.length, unattributed: 0 });
    expect(new Set(c.map((r) => r.vm))).toEqual(new Set(["dom0", "domU"]));
    expect(c.some((r) => r.in[0] === "0x32000004" && r.inputs.some((i) => i.k === "read"))).toBe(true); // OPTEE_SMC_CALL_WITH_ARG read its message
    expect(c.some((r) => r.in[0] === "0xc4000053" && r.inputs.some((i) => i.k === "entropy"))).toBe(true);
    expect(c.some((r) => r.action === "deny" && r.rule === "domU-no-hyp-uid")).toBe(true);
  });

  it("replays against its own config with no difference (exit 0)", async () => {
    const r = await cli("replay", file);
    expect(r.err).toEqual([]);
    expect(r.out.slice(1)).toEqual([`no difference in ${calls().length} calls`]);
    expect(r.code).toBe(0);
  }, 120_000);

  it("against a policy that denies dom0 the TRNG, exactly dom0's TRNG calls differ (exit 1)", async () => {
    const text = readFileSync(join(ROOT, "examples/demo.yaml"), "utf8").replace(
      "      - { name: dom0-sip, owner: sip, calls: [fast32, fast64], action: forward }\n",
      '      - { name: dom0-sip, owner: sip, calls: [fast32, fast64], action: forward }\n      - { name: dom0-no-trng, range: "0xC4000050-0xC4000053", action: deny }\n',
    );
    expect(text).toContain("dom0-no-trng");
    writeFileSync(join(dir, "strict.yaml"), text);
    const r = await cli("replay", file, "--config", "strict.yaml", "--json");
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out.join("\n")) as { differing: number; diffs: { n: number; vm: string; name: string; before: { action: string }; after: { action: string; rule: string } }[] };
    const trng = calls().filter((c) => c.vm === "dom0" && /^0xc400005[0-3]$/.test(c.in[0]!)).map((c) => c.n);
    expect(trng.length).toBeGreaterThan(0);
    expect(report.diffs.map((d) => d.n)).toEqual(trng);
    for (const d of report.diffs) expect(d).toMatchObject({ vm: "dom0", before: { action: "emulate" }, after: { action: "deny", rule: "dom0-no-trng" } });
  }, 120_000);
});
