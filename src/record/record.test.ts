import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { seededGenerator } from "../firmware/monitor/entropy.js";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import { parseConfigText } from "../policy/load.js";
import type { CallTarget } from "../router/ports.js";
import { parseRecording, RECORD_FORMAT_VERSION, type Recording } from "./format.js";
import { Recorder } from "./recorder.js";
import { recordedConfig, replayRecording } from "./replay.js";

const dir = mkdtempSync(join(tmpdir(), "smcvisor-record-unit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TEXT = `
delegates:
  oem: { module: none.ts }
vms:
  a:
    vcpus: 2
    memory: { base: 0x40000000, size: 1MiB }
    grants:
      - { name: a-oem, range: "0x83000001-0x83000002", action: "delegate:oem" }
  b:
    memory: { base: 0x80000000, size: 1MiB }
`;

function config(text = TEXT) {
  const r = parseConfigText(text);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
  return r.value;
}

/** A delegate that reads 16 bytes the guest names in x1 and answers their sum, and writes x2 there. */
function oem(): CallTarget {
  return {
    handle(call, res) {
      res.ret(call.w(1) === 0 ? 1 : 0);
      res.set(1, 0x1234);
    },
  };
}

function record(path: string, limitBytes = 1 << 24, log?: (l: string) => void): { recorder: Recorder; m: ScriptedMachine } {
  const recorder = new Recorder(path, { smcvisor: "test", config: { kind: "config", name: "inline", text: TEXT } }, { limitBytes, flushBytes: 64, ...(log ? { log } : {}) });
  const m = ScriptedMachine.fromConfig(config(), { observer: recorder, entropy: seededGenerator(3), delegates: new Map([["oem", oem()]]) });
  return { recorder, m };
}

function load(path: string): Recording {
  const p = parseRecording(readFileSync(path, "utf8"));
  if (!p.ok) throw new Error(p.error);
  return p.recording;
}

describe("recorder", () => {
  it("writes a versioned header and one record per call, with delegate answers, entropy and the decision", async () => {
    const path = join(dir, "basic.ndjson");
    const { recorder, m } = record(path);
    const a = m.vm("a").vcpu(0);
    a.hvc(0x8000_0000);
    a.hvc(0x8300_0001, 0);
    a.hvc(0xc400_0053, 32);
    m.vm("b").vcpu(0).hvc(0x8300_0001);
    a.hvc(0x8400_0009); // PSCI_SYSTEM_RESET: the machine resets the VM through the toolstack
    await m.vm("a").power.booted;
    recorder.close();
    recorder.close();
    const rec = load(path);
    expect(rec.header).toMatchObject({ format: "smcvisor-record", version: RECORD_FORMAT_VERSION, smcvisor: "test", config: { kind: "config", name: "inline" } });
    expect(rec.header.vms).toEqual([
      { name: "a", id: 1, vcpus: 2, memory: { base: "0x40000000", size: "0x100000" } },
      { name: "b", id: 2, vcpus: 1, memory: { base: "0x80000000", size: "0x100000" } },
    ]);
    expect(rec.records.map((r) => (r.t === "call" ? `${r.n} ${r.vm} ${r.in[0]} ${r.action} ${r.rule} ${r.out[0]}` : r.t))).toEqual([
      "1 a 0x80000000 emulate default:arch 0x10002",
      "2 a 0x83000001 delegate a-oem 0x1",
      "3 a 0xc4000053 emulate default:trng 0x0",
      "4 b 0x83000001 deny default:deny 0xffffffff",
      "reset",
      "5 a 0x84000009 emulate default:psci 0x0",
      "end",
    ]);
    const [, del, trng] = rec.records as Extract<Recording["records"][number], { t: "call" }>[];
    expect(del!.inputs).toEqual([{ k: "delegate", name: "oem", out: ["0x1", "0x1234", "0x0", "0x0"] }]);
    expect(trng!.inputs).toHaveLength(1);
    expect(trng!.inputs[0]!.k).toBe("entropy");
    expect(trng!.out[3]).not.toBe("0x0");
  });

  it("stops at the size limit with a limit record, says so once, and the run goes on", () => {
    const path = join(dir, "limit.ndjson");
    const log: string[] = [];
    const { recorder, m } = record(path, 4096, (l) => log.push(l));
    const a = m.vm("a").vcpu(0);
    for (let i = 0; i < 200; i++) expect(a.hvc(0x8000_0000).x0).toBe(0x10002n);
    recorder.close();
    expect(readFileSync(path).length).toBeLessThanOrEqual(4096 + 100);
    const text = readFileSync(path, "utf8");
    const p = parseRecording(text);
    if (!p.ok) throw new Error(p.error);
    const last = p.recording.records[p.recording.records.length - 1]!;
    expect(last.t).toBe("limit");
    expect(p.truncated).toBe(false);
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/reached its limit \(4096 bytes\) after \d+ calls; nothing after is recorded/);
  });

  it("records a call whose handler completes later with its own answer, while another VM's calls go on", async () => {
    const path = join(dir, "async.ndjson");
    const recorder = new Recorder(path, { smcvisor: "test", config: { kind: "config", name: "inline", text: TEXT } }, { limitBytes: 1 << 20 });
    let release: () => void = () => {};
    const slow: CallTarget = {
      handle(call, res) {
        const x1 = call.w(1);
        return new Promise<void>((done) => {
          release = () => {
            res.ret(0);
            res.set(1, x1 + 1);
            done();
          };
        });
      },
    };
    const m = ScriptedMachine.fromConfig(config(), { observer: recorder, entropy: seededGenerator(3), delegates: new Map([["oem", slow]]) });
    const pending = m.vm("a").vcpu(0).callAsync("hvc", 0x8300_0001, [41]);
    expect(m.vm("b").vcpu(0).hvc(0x8000_0000).x0).toBe(0x10002n);
    expect(m.vm("b").vcpu(0).hvc(0xc400_0053, 64).x0).toBe(0n);
    release();
    expect((await pending).regs.slice(0, 2)).toEqual([0n, 42n]);
    recorder.close();
    const rec = load(path);
    const calls = rec.records.filter((r) => r.t === "call");
    // Written as each completed; numbered as each started.
    expect(calls.map((c) => `${c.n} ${c.vm} ${c.in[0]}`)).toEqual(["2 b 0x80000000", "3 b 0xc4000053", "1 a 0x83000001"]);
    expect(calls[2]).toMatchObject({ out: ["0x0", "0x2a"], action: "delegate", rule: "a-oem", inputs: [{ k: "delegate", name: "oem", out: ["0x0", "0x2a", "0x0", "0x0"] }] });
    // The TRNG's entropy went to b's call, not to the call still in flight.
    expect(calls[1]!.inputs.map((i) => i.k)).toEqual(["entropy"]);
    expect(await replayRecording(rec, config())).toEqual({ ok: true, report: { calls: 3, diffs: [], notes: [] } });
  });

  it("a file that cannot be written (a full disk) stops the recording with one line, never the calls", () => {
    const log: string[] = [];
    const recorder = new Recorder("/dev/full", { smcvisor: "test", config: { kind: "config", name: "inline", text: TEXT } }, { limitBytes: 1 << 20, flushBytes: 64, log: (l) => log.push(l) });
    const m = ScriptedMachine.fromConfig(config(), { observer: recorder, entropy: seededGenerator(3), delegates: new Map([["oem", oem()]]) });
    for (let i = 0; i < 100; i++) expect(m.vm("a").vcpu(0).hvc(0x8000_0000).x0).toBe(0x10002n);
    recorder.close();
    expect(recorder.failure).toBe("ENOSPC");
    expect(log).toEqual(["smcvisor: --record: cannot write /dev/full (ENOSPC); recording stopped after 1 calls"]);
  });

  it("costs nothing when off: a machine without an observer gives the same answers", () => {
    const path = join(dir, "same.ndjson");
    const { recorder, m } = record(path);
    const plain = ScriptedMachine.fromConfig(config(), { entropy: seededGenerator(3), delegates: new Map([["oem", oem()]]) });
    for (const [fid, arg] of [[0xc400_0053, 192], [0x8300_0001, 0], [0x8400_0000, 0]] as const) {
      expect(m.vm("a").vcpu(0).hvc(fid, arg).regs).toEqual(plain.vm("a").vcpu(0).hvc(fid, arg).regs);
    }
    recorder.close();
  });
});

describe("replay", () => {
  it("needs no delegate: answers come from the recording, and a delegate answer it lacks is reported", async () => {
    const path = join(dir, "replay.ndjson");
    const { recorder, m } = record(path);
    m.vm("a").vcpu(0).hvc(0x8300_0002, 5);
    m.vm("a").vcpu(0).hvc(0xc400_0053, 64);
    recorder.close();
    const rec = load(path);
    const same = await replayRecording(rec, config());
    expect(same).toEqual({ ok: true, report: { calls: 2, diffs: [], notes: [] } });
    // The delegate's answer dropped: the call says what it missed, and gets NOT_SUPPORTED.
    const dropped = { ...rec, records: rec.records.map((r) => (r.t === "call" ? { ...r, inputs: r.inputs.filter((i) => i.k !== "delegate") } : r)) };
    const r = await replayRecording(dropped, config());
    if (!r.ok) throw new Error(r.errors.join());
    expect(r.report.diffs).toHaveLength(1);
    expect(r.report.diffs[0]).toMatchObject({ n: 1, vm: "a", vcpu: 0, name: "0x83000002", changed: ["x0", "x1", "inputs"], missing: ["an answer of delegate oem the recording does not hold (NOT_SUPPORTED given)"] });
  });

  it("gives zeros for entropy the recording lacks and says so", async () => {
    const path = join(dir, "entropy.ndjson");
    const { recorder, m } = record(path);
    m.vm("a").vcpu(0).hvc(0xc400_0053, 64);
    recorder.close();
    const rec = load(path);
    const dropped = { ...rec, records: rec.records.map((r) => (r.t === "call" ? { ...r, inputs: [] } : r)) };
    const r = await replayRecording(dropped, config());
    if (!r.ok) throw new Error(r.errors.join());
    expect(r.report.diffs[0]!.missing).toEqual(["8 bytes of entropy the recording does not hold (zeros given)"]);
    expect(r.report.diffs[0]!.after!.regs).toEqual(["0x0"]); // success, and zeros where the random bits were
  });

  it("refuses a config the hypervisor cannot build, with the path", async () => {
    const path = join(dir, "bad.ndjson");
    const { recorder } = record(path);
    recorder.close();
    // Valid, but OP-TEE holds one guest and two VMs ask for it: the second cannot start.
    const tee = `
platform:
  secureMemory: [{ name: tee-os, base: 0x0e000000, size: 16MiB }]
  tee: { os: optee, threads: 8, maxGuests: 1 }
vms:
  a: { memory: { base: 0x40000000, size: 1MiB }, tee: optee }
  b: { memory: { base: 0x40000000, size: 1MiB }, tee: optee }
`;
    const r = await replayRecording(load(path), config(tee));
    expect(r).toEqual({ ok: false, errors: ["vms.b.tee: cannot enable optee: OP-TEE has no room for another guest (VM_CREATED answered ENOTAVAIL)"] });
  });
});

describe("recordedConfig", () => {
  const header = (config: Recording["header"]["config"]): Recording["header"] => ({ format: "smcvisor-record", version: 1, smcvisor: "t", created: "", config, vms: [] });

  it("rebuilds a scenario's config, with the policy file's text when it names one", () => {
    const inline = recordedConfig(header({ kind: "scenario", name: "s.yaml", text: "vms:\n  vm0: {}\nguests:\n  vm0: { kernel: debian }\n" }));
    expect(inline.ok && inline.config.vms.map((v) => v.name)).toEqual(["vm0"]);
    const named = recordedConfig(header({ kind: "scenario", name: "s.yaml", text: "policy: p.yaml\nguests:\n  web: { kernel: debian }\n", policyText: "vms:\n  web: { vcpus: 2 }\n" }));
    expect(named.ok && named.config.vms.map((v) => [v.name, v.vcpus])).toEqual([["web", 2]]);
  });

  it("says what is wrong with a recorded config that no longer validates, or a policy text that is missing", () => {
    expect(recordedConfig(header({ kind: "config", name: "c.yaml", text: "vms: { vm0: { vcpus: 0 } }\n" }))).toMatchObject({ ok: false, errors: [expect.stringMatching(/^c\.yaml: vms\.vm0\.vcpus: /)] });
    expect(recordedConfig(header({ kind: "scenario", name: "s.yaml", text: "policy: p.yaml\nguests:\n  web: { kernel: debian }\n" }))).toEqual({ ok: false, errors: ["s.yaml: policy: cannot read p.yaml: the recording does not hold the policy file's text"] });
  });
});

describe("parseRecording", () => {
  const path = join(dir, "fuzz.ndjson");
  const { recorder, m } = record(path);
  m.vm("a").vcpu(0).hvc(0x8300_0001, 0);
  m.vm("a").vcpu(0).hvc(0xc400_0053, 64);
  recorder.close();
  const good = readFileSync(path, "utf8");

  it("reads a good file, and says a file without an end record is cut short", () => {
    expect(parseRecording(good)).toMatchObject({ ok: true, truncated: false });
    const lines = good.trimEnd().split("\n");
    expect(parseRecording(lines.slice(0, -1).join("\n") + "\n")).toMatchObject({ ok: true, truncated: true });
  });

  it("refuses what is not a recording, a newer version, a line cut in half and a bad field, naming the line", () => {
    const lines = good.trimEnd().split("\n");
    expect(parseRecording("")).toEqual({ ok: false, error: "the file is empty: not a smcvisor recording" });
    expect(parseRecording("vms: {}\n")).toEqual({ ok: false, error: "line 1: not JSON: not a smcvisor recording" });
    expect(parseRecording('{"format":"other"}\n')).toEqual({ ok: false, error: 'line 1: not a smcvisor recording (no "format": "smcvisor-record")' });
    const newer = lines[0]!.replace(`"version":${RECORD_FORMAT_VERSION}`, '"version":99');
    expect(parseRecording(newer)).toEqual({ ok: false, error: `line 1: format version 99 is newer than this smcvisor reads (${RECORD_FORMAT_VERSION}): replay it with the smcvisor that recorded it, or a newer one` });
    const cut = [...lines.slice(0, 2), lines[2]!.slice(0, 40)].join("\n");
    expect(parseRecording(cut)).toEqual({ ok: false, error: "line 3: not JSON (the file may be cut short)" });
    const bad = [lines[0], lines[1]!.replace('"vcpu":0', '"vcpu":-1'), ...lines.slice(2)].join("\n");
    expect(parseRecording(bad)).toMatchObject({ ok: false, error: expect.stringMatching(/^line 2: vcpu: /) });
    const wide = [lines[0], lines[1]!.replace(/"in":\["0x[0-9a-f]+"/, '"in":["0x10000000000000000"'), ...lines.slice(2)].join("\n");
    expect(parseRecording(wide)).toMatchObject({ ok: false, error: expect.stringMatching(/^line 2: in\.0: a 64-bit value/) });
    const after = [...lines, lines[1]].join("\n");
    expect(parseRecording(after)).toEqual({ ok: false, error: `line ${lines.length + 1}: a record after the end record` });
  });

  it("never throws on mutated files, and what it accepts replays without throwing", async () => {
    const rnd = seededGenerator(11);
    const byte = new Uint8Array(4);
    const next = (n: number) => {
      rnd(byte);
      return (((byte[0]! << 24) | (byte[1]! << 16) | (byte[2]! << 8) | byte[3]!) >>> 0) % n;
    };
    const junk = ['"', "{", "}", "[", "]", ",", ":", "0", "-1", "1e400", "null", '"0x"', "\\u0000", "\n", "true", '"__proto__"', "9007199254740993"];
    let accepted = 0;
    for (let i = 0; i < 400; i++) {
      let t = good;
      for (let k = 1 + next(4); k > 0; k--) {
        const at = next(t.length);
        switch (next(3)) {
          case 0: t = t.slice(0, at) + junk[next(junk.length)]! + t.slice(at + 1); break;
          case 1: t = t.slice(0, at) + t.slice(at + 1 + next(20)); break;
          default: t = t.slice(0, at); break;
        }
      }
      const p = parseRecording(t);
      if (!p.ok) {
        expect(p.error).toMatch(/^(line \d+: |the file is empty)/);
        continue;
      }
      accepted++;
      const r = await replayRecording(p.recording, config());
      expect(r.ok).toBe(true);
    }
    expect(accepted).toBeGreaterThan(0);
  });
});
