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
import { RECORD_LINE_MAX, RecordingParser, regAt, type RecordHeader, type RecordLine } from "../record/format.js";
import { recordedConfig, replayRecording, type CallDiff, type CallSide } from "../record/replay.js";
import { parseArgs, UsageError, type Io } from "./args.js";

const USAGE = "usage: smcvisor replay <recording> [--config FILE] [--json]";

/** A recording file that cannot be read on, at some line: the replay stops and the command exits 2. */
export class RecordingFileError extends Error {}

const CHUNK = 1 << 20;

/**
 * The lines of an open file, read in 1 MiB chunks: the file is never held whole, and no line may pass
 * RECORD_LINE_MAX (a hostile file's one endless line must not take the memory). `cut` marks a last line
 * with no newline after it.
 */
function* fileLines(fd: number, shown: string): Generator<{ text: string; cut: boolean }> {
  const buf = Buffer.alloc(CHUNK);
  let carry: Buffer[] = [];
  let carried = 0;
  let line = 0;
  for (;;) {
    const got = readSync(fd, buf, 0, CHUNK, null);
    if (got === 0) break;
    let at = 0;
    for (;;) {
      const nl = buf.indexOf(10, at);
      if (nl < 0 || nl >= got) break;
      const part = buf.subarray(at, nl);
      line++;
      if (carried + part.length > RECORD_LINE_MAX) throw new RecordingFileError(`${shown}: line ${line} is longer than ${RECORD_LINE_MAX} bytes`);
      yield { text: carried > 0 ? Buffer.concat([...carry, part]).toString("utf8") : part.toString("utf8"), cut: false };
      carry = [];
      carried = 0;
      at = nl + 1;
    }
    if (at < got) {
      carried += got - at;
      if (carried > RECORD_LINE_MAX) throw new RecordingFileError(`${shown}: line ${line + 1} is longer than ${RECORD_LINE_MAX} bytes`);
      carry.push(Buffer.from(buf.subarray(at, got)));
    }
  }
  if (carried > 0) yield { text: Buffer.concat(carry).toString("utf8"), cut: true };
}

/** The recording's header and a stream of its records (throwing RecordingFileError at a bad line). */
function openRecording(path: string, shown: string): { header: RecordHeader; records: Iterable<RecordLine>; parser: RecordingParser; close: () => void } {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new UsageError(`cannot read ${shown}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const close = () => closeSync(fd);
  try {
    if (!fstatSync(fd).isFile()) throw new UsageError(`cannot read ${shown}: not a regular file`);
    const lines = fileLines(fd, shown);
    const parser = new RecordingParser();
    const first = lines.next();
    if (first.done) throw new UsageError(`${shown}: the file is empty: not a smcvisor recording`);
    const h = parser.line(first.value.text, first.value.cut);
    if (!h.ok) throw new UsageError(`${shown}: ${h.error}`);
    if (!("header" in h)) throw new UsageError(`${shown}: line 1: not a header`);
    function* records(): Generator<RecordLine> {
      for (const l of lines) {
        const r = parser.line(l.text, l.cut);
        if (!r.ok) throw new RecordingFileError(`${shown}: ${r.error}`);
        if ("record" in r) yield r.record;
      }
    }
    return { header: h.header, records: records(), parser, close };
  } catch (e) {
    close();
    if (e instanceof RecordingFileError) throw new UsageError(e.message);
    throw e;
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
  for (const c of d.changed) if (/^x\d+$/.test(c)) out.push(`  ${c}: ${regAt(d.before.regs, Number(c.slice(1)))} → ${regAt(a.regs, Number(c.slice(1)))}`);
  if (d.changed.includes("writes")) out.push(`  memory writes: ${writesText(d.before)} → ${writesText(a)}`);
  for (const m of d.missing) out.push(`  not in the recording: ${m}`);
  return out;
}

export async function replayCommand(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ["json"], ["config"]);
  if (positionals.length !== 1) throw new UsageError(USAGE);
  const file = positionals[0]!;
  const rec = openRecording(resolve(io.cwd, file), file);
  let result: Awaited<ReturnType<typeof replayRecording>>;
  const configArg = flags.get("config") as string | undefined;
  const against = configArg ?? `${rec.header.config.name} (as recorded)`;
  try {
    const loaded = configArg !== undefined ? loadNewConfig(resolve(io.cwd, configArg), configArg) : recordedConfig(rec.header);
    if (!loaded.ok) {
      for (const e of loaded.errors) io.err(`smcvisor: ${configArg === undefined ? `${file}: the recorded config: ` : ""}${e}`);
      return 2;
    }
    // A bad line part-way ends the replay: nothing is printed but the reason (exit 2).
    result = await replayRecording(rec, loaded.config, { truncated: () => rec.parser.truncated, livePolicies: configArg === undefined });
  } catch (e) {
    if (e instanceof RecordingFileError) throw new UsageError(e.message);
    throw e;
  } finally {
    rec.close();
  }
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
