// Record and replay in-process: examples/tee.yaml's VMs make the calls a booting Linux guest makes, use the
// TRNG and OP-TEE (hello world and content decryption through shared memory) and power a vCPU on, under
// the recorder; the recording replays against its own config with no difference, and against a policy
// that denies the TRNG to one VM with exactly that VM's TRNG calls differing.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { seededGenerator } from "../src/firmware/monitor/entropy.js";
import { chacha20 } from "../src/firmware/optee/chacha20.js";
import { CONTENT_DECRYPT_UUID, TA_DECRYPT_CMD_DECRYPT } from "../src/firmware/optee/tas/content-decrypt.js";
import { HELLO_WORLD_UUID, TA_HELLO_WORLD_CMD_INC_VALUE } from "../src/firmware/optee/tas/hello-world.js";
import { ScriptedMachine } from "../src/machine/scripted/machine.js";
import { parseConfigText } from "../src/policy/load.js";
import { parseRecording } from "../src/record/format.js";
import { Recorder } from "../src/record/recorder.js";
import { recordedConfig, replayRecording } from "../src/record/replay.js";
import { TEEC } from "../src/smccc/optee/abi.js";
import { planPolicy } from "../src/ui/control.js";
import { parse as parseYaml } from "yaml";
import { interleave, OpteeGuest, param } from "./support/optee-guest.js";

const ROOT = resolve(import.meta.dirname, "..");
const TEXT = readFileSync(resolve(ROOT, "examples/tee.yaml"), "utf8");
const dir = mkdtempSync(join(tmpdir(), "smcvisor-record-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TRNG_RND64 = 0xc400_0053;

function config(text: string) {
  const r = parseConfigText(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
  return r.value;
}

/** The workload, recorded into `path`; returns what the guests saw, to compare with a run without recording. */
function workload(m: ScriptedMachine) {
  const seen: unknown[] = [];
  for (const name of ["media", "apps", "tools"]) {
    const v = m.vm(name).vcpu(0);
    for (const [fid, ...args] of [[0x8000_0000], [0x8000_0001, 0x8000_8000], [0x8400_0000], [0x8400_000a, 0x8000_0000], [TRNG_RND64, 64], [TRNG_RND64, 192], [0x8600_ff01]]) {
      seen.push(v.smc(fid!, ...args).regs.slice(0, 4));
    }
  }
  seen.push(m.vm("media").vcpu(0).smc(0xc400_0003, 1, 0x4008_0000, 0x1234).x0);
  const plain = Uint8Array.from({ length: 9000 }, (_, i) => (i * 7 + 1) & 0xff);
  function* session(g: OpteeGuest, key: Uint8Array) {
    yield* g.probe();
    const hello = (yield* g.openSession(HELLO_WORLD_UUID)).session;
    const inc = yield* g.invoke(hello, TA_HELLO_WORLD_CMD_INC_VALUE, [param.valueInout(41)]);
    yield* g.closeSession(hello);
    const s = (yield* g.openSession(CONTENT_DECRYPT_UUID)).session;
    const cipher = new Uint8Array(plain.length);
    chacha20(key, new Uint8Array(12), 0, plain, cipher);
    const input = g.allocShm(plain.length);
    const output = g.allocShm(plain.length);
    input.write(cipher);
    yield* g.registerShm(input);
    yield* g.registerShm(output);
    const dec = yield* g.invoke(s, TA_DECRYPT_CMD_DECRYPT, [param.rmem("in", input), param.rmem("out", output), param.valueIn(0, 0)]);
    return { value: inc.msg.params[0]!.a, ok: dec.result === TEEC.SUCCESS && output.read().every((b, i) => b === plain[i]) };
  }
  const keys = m.config.vms.map((v) => v.tee?.contentKey ?? null);
  seen.push(interleave([session(OpteeGuest.forVm(m.vm("media")), keys[0]!), session(OpteeGuest.forVm(m.vm("apps")), keys[1]!)]));
  return seen;
}

describe("record and replay in-process (examples/tee.yaml)", () => {
  const path = join(dir, "tee.ndjson");
  const base = config(TEXT);
  const recorder = new Recorder(path, { smcvisor: "test", config: { kind: "config", name: "examples/tee.yaml", text: TEXT } }, { limitBytes: 64 << 20 });
  const recorded = ScriptedMachine.fromConfig(base, { observer: recorder, entropy: seededGenerator(7) });
  const seenRecorded = workload(recorded);
  recorder.close();
  const parsed = parseRecording(readFileSync(path, "utf8"));
  if (!parsed.ok) throw new Error(parsed.error);
  const rec = parsed.recording;
  const calls = rec.records.filter((r) => r.t === "call");

  it("records every call without changing what the guests see", () => {
    const plain = ScriptedMachine.fromConfig(config(TEXT), { entropy: seededGenerator(7) });
    expect(seenRecorded).toEqual(workload(plain));
    // The OP-TEE sessions ran to the end in both VMs, recorded.
    expect(seenRecorded[seenRecorded.length - 1]).toEqual([{ value: 42n, ok: true }, { value: 42n, ok: true }]);
    expect(calls.length).toBe(recorded.trace.total - recorded.trace.events().filter((e) => e.conduit === "hypervisor").length);
    expect(rec.records[rec.records.length - 1]).toEqual({ t: "end", calls: calls.length, unattributed: 0 });
    expect(parsed.truncated).toBe(false);
    // What the answers depended on is in the file: entropy for the TRNG, guest memory for OP-TEE's messages.
    const trng = calls.find((c) => c.vm === "media" && c.in[0] === "0xc4000053" && c.in[1] === "0xc0")!;
    expect(trng.inputs.filter((i) => i.k === "entropy").reduce((n, i) => n + Buffer.from((i as { data: string }).data, "base64").length, 0)).toBe(24);
    expect(calls.some((c) => c.inputs.some((i) => i.k === "read" && i.len === 4096))).toBe(true);
    expect(calls.some((c) => c.writes.length > 0)).toBe(true);
    expect(rec.header.vms.map((v) => v.name)).toEqual(["media", "apps", "tools"]);
  });

  it("replays against its own config with no difference", async () => {
    const own = recordedConfig(rec.header);
    expect(own.ok).toBe(true);
    const r = await replayRecording(rec, (own as { config: typeof base }).config);
    if (!r.ok) throw new Error(r.errors.join("\n"));
    expect(r.report.calls).toBe(calls.length);
    expect(r.report.diffs).toEqual([]);
    expect(r.report.notes).toEqual([]);
  });

  it("against a policy that denies the TRNG to media, shows exactly media's TRNG calls as changed decisions", async () => {
    const denied = config(TEXT.replace("  media:\n", "  media:\n    grants:\n      - { name: media-no-trng, id: 0xC4000053, action: deny }\n"));
    const r = await replayRecording(rec, denied);
    if (!r.ok) throw new Error(r.errors.join("\n"));
    const want = calls.filter((c) => c.vm === "media" && c.in[0] === "0xc4000053").map((c) => c.n);
    expect(want.length).toBe(2);
    expect(r.report.diffs.map((d) => d.n)).toEqual(want);
    for (const d of r.report.diffs) {
      expect(d).toMatchObject({ vm: "media", name: "TRNG_RND64", conduit: "smc" });
      expect(d.before.action).toBe("emulate");
      expect(d.after).toMatchObject({ action: "deny", rule: "media-no-trng", outcome: "return" });
      expect(d.after!.regs[0]).toBe("0xffffffffffffffff");
      expect(d.changed).toContain("decision");
      expect(d.changed).toContain("x0");
    }
  });

  it("reports calls of a VM the new config does not have, and reads the recording does not hold", async () => {
    const noTools = config(TEXT.replace(/\n {2}tools:[\s\S]*$/, "\n"));
    const r = await replayRecording(rec, noTools);
    if (!r.ok) throw new Error(r.errors.join("\n"));
    const tools = calls.filter((c) => c.vm === "tools").map((c) => c.n);
    expect(tools.length).toBeGreaterThan(0);
    expect(r.report.diffs.map((d) => d.n)).toEqual(tools);
    expect(r.report.diffs[0]).toMatchObject({ after: null, changed: ["vm"], missing: ["no VM tools in the config"] });

    // A recording whose memory reads were dropped: the OP-TEE calls that needed them differ and say why.
    const stripped = { ...rec, records: rec.records.map((x) => (x.t === "call" ? { ...x, inputs: x.inputs.filter((i) => i.k !== "read") } : x)) };
    const s = await replayRecording(stripped, base);
    if (!s.ok) throw new Error(s.errors.join("\n"));
    expect(s.report.diffs.length).toBeGreaterThan(0);
    // The first call that differs is one that needed a read; later ones may follow from it (the secure
    // world's state went another way).
    expect(s.report.diffs.every((d) => d.vm !== "tools")).toBe(true);
    expect(s.report.diffs[0]!.changed).toContain("inputs");
    expect(s.report.diffs[0]!.missing[0]).toMatch(/^a read of \d+ bytes at 0x[0-9a-f]+ the recording does not hold$/);
  });
});

describe("a live policy change in a recording (the control API's policy reload)", () => {
  const path = join(dir, "live.ndjson");
  const base = config(TEXT);
  const recorder = new Recorder(path, { smcvisor: "test", config: { kind: "config", name: "examples/tee.yaml", text: TEXT } }, { limitBytes: 64 << 20 });
  const m = ScriptedMachine.fromConfig(base, { observer: recorder, entropy: seededGenerator(3) });
  const trng = () => m.vm("media").vcpu(0).smc(TRNG_RND64, 64).x0;
  const before = [trng(), trng()];
  // The same path the dashboard's policy reload takes: validated, prepared, swapped between two calls.
  const doc = parseYaml(TEXT.replace("  media:\n", "  media:\n    grants:\n      - { name: media-no-trng, id: 0xC4000053, action: deny }\n")) as unknown;
  const plan = planPolicy(m.hypervisor, base, doc, () => {});
  if (!plan.ok) throw new Error(plan.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
  const applied = plan.apply();
  const after = [trng(), trng()];
  recorder.close();
  const parsed = parseRecording(readFileSync(path, "utf8"));
  if (!parsed.ok) throw new Error(parsed.error);
  const rec = parsed.recording;

  it("records the change where it happened", () => {
    expect(applied.changed).toEqual(["media"]);
    expect(before.every((x) => x === 0n)).toBe(true);
    expect(after.every((x) => x === 0xffff_ffff_ffff_ffffn)).toBe(true);
    expect(rec.records.map((r) => (r.t === "call" ? "call" : r.t))).toEqual(["call", "call", "policy", "call", "call", "end"]);
    expect(rec.records[2]).toMatchObject({ t: "policy", vm: "media" });
  });

  it("replays against the recorded config with the change applied at the same point: no difference", async () => {
    const r = await replayRecording(rec, base, { livePolicies: true });
    if (!r.ok) throw new Error(r.errors.join("\n"));
    expect(r.report.diffs).toEqual([]);
    expect(r.report.notes).toEqual(["applied the recording's live policy change of media after call 2"]);
  });

  it("against a config given instead, keeps that config and shows the calls the change had denied", async () => {
    const r = await replayRecording(rec, base);
    if (!r.ok) throw new Error(r.errors.join("\n"));
    expect(r.report.diffs.map((d) => [d.n, d.before.action, d.after?.action])).toEqual([
      [3, "deny", "emulate"],
      [4, "deny", "emulate"],
    ]);
    expect(r.report.notes[0]).toMatch(/live policy change of media after call 2: the replay keeps the config it was given/);
  });

  it("refuses a recorded change that does not validate, and says so", async () => {
    const bad = { ...rec, records: rec.records.map((x) => (x.t === "policy" ? { ...x, text: JSON.stringify({ vms: { media: { vcpus: "many" } } }) } : x)) };
    const r = await replayRecording(bad, base, { livePolicies: true });
    if (!r.ok) throw new Error(r.errors.join("\n"));
    expect(r.report.notes[0]).toMatch(/^the recording's live policy change of media after call 2 was not applied: /);
    expect(r.report.diffs.map((d) => d.n)).toEqual([3, 4]);
  });
});
