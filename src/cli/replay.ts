/**
 * `smcvisor replay FILE [--config NEW] [--json]`: replays a recording of `smcvisor run --record` in-process
 * (src/record/replay.ts) against the config it was made with, or a new config or scenario, and prints the
 * calls whose decision, outcome, result registers or guest-memory writes changed. Exit 0 when nothing
 * differs, 1 when something does, 2 for a usage error or a file that is not a readable recording.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { resolve } from "node:path";
import { readConfigFile } from "../machine/config-file.js";
import { loadScenario } from "../machine/qemu/scenario.js";
import { validateConfig, type Config } from "../policy/load.js";
import { parseRecording, RECORD_FILE_MAX } from "../record/format.js";
import { recordedConfig, replayRecording, type CallDiff, type CallSide } from "../record/replay.js";
import { parseArgs, UsageError, type Io } from "./args.js";

const USAGE = "usage: smcvisor replay <recording> [--config FILE] [--json]";

/** The recording's text, or why it cannot be read (too big, not a file, not UTF-8 text is the parser's). */
function readRecording(path: string, shown: string): { ok: true; text: string } | { ok: false; error: string } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    return { ok: false, error: `cannot read ${shown}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { ok: false, error: `cannot read ${shown}: not a regular file` };
    if (st.size > RECORD_FILE_MAX) return { ok: false, error: `${shown} is ${st.size} bytes, more than replay reads (${RECORD_FILE_MAX})` };
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    return { ok: true, text: buf.toString("utf8", 0, n) };
  } finally {
    closeSync(fd);
  }
}

/** --config: a scenario (it has `guests:`) or a plain config, YAML or JSON. */
function loadNewConfig(path: string, shown: string): { ok: true; config: Config } | { ok: false; errors: string[] } {
  const data = readConfigFile(path, shown);
  if (!data.ok) return { ok: false, errors: data.errors.map((e) => `${shown}: ${e.path}: ${e.message}`) };
  const d = data.data as Record<string, unknown> | null;
  if (d !== null && typeof d === "object" && "guests" in d) {
    const s = loadScenario(path);
    return s.ok ? { ok: true, config: s.scenario.config } : { ok: false, errors: s.errors.map((e) => `${shown}: ${e.path}: ${e.message}`) };
  }
  const c = validateConfig(d ?? {});
  return c.ok ? { ok: true, config: c.value } : { ok: false, errors: c.errors.map((e) => `${shown}: ${e.path}: ${e.message}`) };
}

const decision = (s: CallSide) => (s.action === null ? "(no trace event)" : `${s.action} (${s.rule})`);

function writesText(s: CallSide): string {
  if (s.writes.length === 0) return "none";
  return s.writes.map((w) => ("clear" in w ? "RAM cleared" : `${Buffer.from(w.data, "base64").length} bytes at ${w.ipa}${w.ok ? "" : " (refused)"}`)).join(", ");
}

/** One differing call in words: what it was, then each change as before → after. */
export function diffLines(d: CallDiff): string[] {
  const out = [`#${d.n} ${d.vm} vCPU ${d.vcpu} ${d.conduit} ${d.name}${d.name === d.fid ? "" : ` (${d.fid})`}`];
  const a = d.after;
  if (a === null) {
    out.push(`  not replayed: ${d.missing.join("; ")}`);
    return out;
  }
  if (d.changed.includes("decision")) out.push(`  decision: ${decision(d.before)} → ${decision(a)}`);
  if (d.changed.includes("outcome")) out.push(`  outcome: ${d.before.outcome} → ${a.outcome}`);
  for (const c of d.changed) if (/^x\d+$/.test(c)) out.push(`  ${c}: ${d.before.regs[Number(c.slice(1))]} → ${a.regs[Number(c.slice(1))]}`);
  if (d.changed.includes("writes")) out.push(`  memory writes: ${writesText(d.before)} → ${writesText(a)}`);
  for (const m of d.missing) out.push(`  not in the recording: ${m}`);
  return out;
}

export async function replayCommand(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ["json"], ["config"]);
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const file = positionals[0]!;
  const read = readRecording(resolve(io.cwd, file), file);
  if (!read.ok) throw new UsageError(read.error);
  const parsed = parseRecording(read.text);
  if (!parsed.ok) throw new UsageError(`${file}: ${parsed.error}`);
  const rec = parsed.recording;
  const configArg = flags.get("config") as string | undefined;
  const against = configArg ?? `${rec.header.config.name} (as recorded)`;
  const loaded = configArg !== undefined ? loadNewConfig(resolve(io.cwd, configArg), configArg) : recordedConfig(rec.header);
  if (!loaded.ok) {
    for (const e of loaded.errors) io.err(`smcvisor: ${configArg === undefined ? `${file}: the recorded config: ` : ""}${e}`);
    return 2;
  }
  const result = await replayRecording(rec, loaded.config, { truncated: parsed.truncated === true });
  if (!result.ok) {
    for (const e of result.errors) io.err(`smcvisor: ${against}: ${e}`);
    return 2;
  }
  const { calls, diffs, notes } = result.report;
  if (flags.has("json")) {
    io.out(JSON.stringify({ recording: file, config: against, recorded: { smcvisor: rec.header.smcvisor, created: rec.header.created }, calls, differing: diffs.length, diffs, notes }, null, 2));
    return diffs.length === 0 ? 0 : 1;
  }
  io.out(`smcvisor replay: ${file} (${calls} calls of ${rec.header.vms.map((v) => v.name).join(", ")}, recorded by smcvisor ${rec.header.smcvisor} at ${rec.header.created}) against ${against}`);
  for (const d of diffs) for (const l of diffLines(d)) io.out(l);
  for (const n of notes) io.out(`note: ${n}`);
  io.out(diffs.length === 0 ? `no difference in ${calls} calls` : `${diffs.length} of ${calls} calls differ`);
  return diffs.length === 0 ? 0 : 1;
}
