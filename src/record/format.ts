/**
 * The recording format of `smcvisor run --record` (docs/record-replay.md, "Format"): NDJSON, one JSON
 * object per line, UTF-8. The first line is the header; every other line is a record with a type `t`.
 * 64-bit values are "0x" hex strings (JSON numbers lose bits above 2^53), bytes are base64.
 *
 * Parsing is for files a user got from anywhere: every line is checked against a schema, and what is
 * wrong comes back as one message naming the line and the field, never as an exception.
 */
import { z } from "zod";

export const RECORD_MAGIC = "smcvisor-record";
/** Bumped whenever a reader of the previous version would misread a file of the new one. */
export const RECORD_FORMAT_VERSION = 1;
/** Registers a call record keeps: x0..x17, the registers an SMCCC 1.2+ call may pass and return (DEN0028 §2.6-2.8). */
export const RECORD_REGS = 18;
/** The default --record-limit, in MiB. */
export const DEFAULT_RECORD_LIMIT_MIB = 256;

const hex64 = z.string().regex(/^0x[0-9a-f]{1,16}$/, "a 64-bit value as 0x hex (at most 16 digits)");
const hex32 = z.string().regex(/^0x[0-9a-f]{1,8}$/, "a 32-bit value as 0x hex (at most 8 digits)");
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, "bytes as base64");
const vmName = z.string().min(1).max(64);
/** x0..x17 with the zero registers at the end left out: 1 to 18 values. */
const regs = z.array(hex64).min(1).max(RECORD_REGS);
const count = z.number().int().nonnegative();

const vmInfo = z.strictObject({ name: vmName, id: count, vcpus: count, memory: z.strictObject({ base: hex64, size: hex64 }) });

export const headerSchema = z.strictObject({
  format: z.literal(RECORD_MAGIC),
  version: z.number().int(),
  smcvisor: z.string().max(200),
  created: z.string().max(64),
  /** The policy the run had: the scenario's text, and the policy file's when the scenario names one. */
  config: z.strictObject({ kind: z.enum(["scenario", "config"]), name: z.string().max(4096), text: z.string(), policyText: z.string().optional() }),
  vms: z.array(vmInfo).max(4096),
});

const input = z.discriminatedUnion("k", [
  /** A read of guest memory by the hypervisor or its secure world (null data: the read was refused). */
  z.strictObject({ k: z.literal("read"), ipa: hex64, len: count, data: base64.nullable() }),
  /** Bytes the modelled secure world's entropy source produced. */
  z.strictObject({ k: z.literal("entropy"), data: base64 }),
  /** A reading of the VM's time: the host wall clock, or a vCPU's virtual or physical counter. */
  z.strictObject({ k: z.literal("time"), what: z.enum(["wall", "virtual", "physical"]), vcpu: count, value: hex64 }),
  /** What a `delegate:<name>` handler answered: every result register it set (4 to 18, zeros kept). */
  z.strictObject({ k: z.literal("delegate"), name: z.string().max(64), out: z.array(hex64).min(4).max(RECORD_REGS) }),
]);

const write = z.union([
  z.strictObject({ ipa: hex64, data: base64, ok: z.boolean() }),
  /** The whole RAM became zero (PSCI MEM_PROTECT's wipe). */
  z.strictObject({ clear: z.literal(true) }),
]);

const callRecord = z.strictObject({
  t: z.literal("call"),
  /** The call's number in the run, from 1, in the order calls started. */
  n: count,
  vm: vmName,
  vcpu: count,
  esr: hex32,
  pstate: hex32,
  in: regs,
  inputs: z.array(input),
  out: regs,
  outcome: z.string().max(32),
  /** The decision as the trace has it; null when the router wrote no event for the call. */
  action: z.string().max(32).nullable(),
  rule: z.string().max(4096).nullable(),
  writes: z.array(write),
});

export const recordSchema = z.discriminatedUnion("t", [
  callRecord,
  z.strictObject({ t: z.literal("reset"), vm: vmName }),
  z.strictObject({ t: z.literal("destroy"), vm: vmName }),
  /** A live policy change (Router.preparePolicy through the control API): which VM, and the new policy's text. */
  z.strictObject({ t: z.literal("policy"), vm: vmName, text: z.string() }),
  /** The recording reached --record-limit: nothing after this line was recorded. */
  z.strictObject({ t: z.literal("limit"), bytes: count, calls: count }),
  /** The run ended: how many calls were recorded, and accesses no call could be charged with. */
  z.strictObject({ t: z.literal("end"), calls: count, unattributed: count }),
]);

export type RecordHeader = z.infer<typeof headerSchema>;
export type RecordLine = z.infer<typeof recordSchema>;
export type CallRecord = z.infer<typeof callRecord>;
export type RecordInput = z.infer<typeof input>;
export type RecordWrite = z.infer<typeof write>;

export interface Recording {
  readonly header: RecordHeader;
  readonly records: readonly RecordLine[];
}

export type ParseResult = { readonly ok: true; readonly recording: Recording } | { readonly ok: false; readonly error: string };

/** A 64-bit value for the file. */
export function hex(v: bigint | number): string {
  return `0x${(typeof v === "bigint" ? BigInt.asUintN(64, v) : BigInt(v >>> 0)).toString(16)}`;
}

/** A register from its two 32-bit words, as hex64 writes it (no BigInt: this runs for every register of every call). */
export function hexWords(lo: number, hi: number): string {
  return hi === 0 ? `0x${(lo >>> 0).toString(16)}` : `0x${(hi >>> 0).toString(16)}${(lo >>> 0).toString(16).padStart(8, "0")}`;
}

/**
 * x0..x17 from a register view (two 32-bit words per register, low first), without the zero registers at
 * the end (x0 is always there): most calls pass one to four arguments, and a record is then short.
 */
export function regsOf(words: Uint32Array, count = RECORD_REGS, trim = true): string[] {
  let n = count;
  while (trim && n > 1 && words[2 * n - 2] === 0 && words[2 * n - 1] === 0) n--;
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = hexWords(words[2 * i]!, words[2 * i + 1]!);
  return out;
}

/** Register n of a list regsOf made: "0x0" past its end. */
export function regAt(regs: readonly string[], n: number): string {
  return regs[n] ?? "0x0";
}

/** The register view back from x0..x17. */
export function wordsOf(regs: readonly string[], into = new Uint32Array(2 * RECORD_REGS)): Uint32Array {
  for (let i = 0; i < RECORD_REGS; i++) {
    const v = BigInt(regs[i] ?? "0x0");
    into[2 * i] = Number(v & 0xffff_ffffn);
    into[2 * i + 1] = Number(v >> 32n);
  }
  return into;
}

function issue(e: z.ZodError): string {
  const i = e.issues[0]!;
  return `${i.path.length > 0 ? i.path.join(".") : "(record)"}: ${i.message}`;
}

/** The longest line a reader accepts: far above any record the recorder writes (OP-TEE reads pages). */
export const RECORD_LINE_MAX = 64 * 1024 * 1024;

export type LineResult = { readonly ok: true; readonly header: RecordHeader } | { readonly ok: true; readonly record: RecordLine } | { readonly ok: false; readonly error: string };

/**
 * Reads a recording line by line, so that a file of any size replays in bounded memory. Refuses what is not
 * a recording, a newer format version, and any line that does not match its schema, naming the line.
 */
export class RecordingParser {
  private n = 0;
  private ended = false;
  private last: RecordLine["t"] | null = null;

  /**
   * The next line, without its newline; `cut` when the file ends in the middle of it (no newline after
   * it), which is how a recording whose writer was killed ends.
   */
  line(text: string, cut = false): LineResult {
    const n = ++this.n;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      const hint = n > 1 && cut ? " (the file may be cut short)" : "";
      return { ok: false, error: n === 1 ? `line 1: not JSON${hint}: not a smcvisor recording` : `line ${n}: not JSON${hint}` };
    }
    if (n === 1) return this.header(value);
    if (this.ended) return { ok: false, error: `line ${n}: a record after the end record` };
    const r = recordSchema.safeParse(value);
    if (!r.success) return { ok: false, error: `line ${n}: ${issue(r.error)}` };
    if (r.data.t === "end") this.ended = true;
    this.last = r.data.t;
    return { ok: true, record: r.data };
  }

  /** Lines read so far. */
  get lines(): number {
    return this.n;
  }

  /** After the last line: the file has no end or limit record (its writer did not finish). */
  get truncated(): boolean {
    return this.last !== "end" && this.last !== "limit";
  }

  private header(v0: unknown): LineResult {
    const v = v0 as { format?: unknown; version?: unknown } | null;
    if (typeof v !== "object" || v === null || v.format !== RECORD_MAGIC) return { ok: false, error: `line 1: not a smcvisor recording (no "format": "${RECORD_MAGIC}")` };
    if (typeof v.version === "number" && v.version > RECORD_FORMAT_VERSION) {
      return { ok: false, error: `line 1: format version ${v.version} is newer than this smcvisor reads (${RECORD_FORMAT_VERSION}): replay it with the smcvisor that recorded it, or a newer one` };
    }
    const header = headerSchema.safeParse(v);
    if (!header.success) return { ok: false, error: `line 1: ${issue(header.error)}` };
    if (header.data.version !== RECORD_FORMAT_VERSION) return { ok: false, error: `line 1: format version ${header.data.version} is not one this smcvisor reads (${RECORD_FORMAT_VERSION})` };
    return { ok: true, header: header.data };
  }
}

/** A whole recording from its text (tests, small files; `smcvisor replay` streams with RecordingParser). */
export function parseRecording(text: string): ParseResult & { readonly truncated?: boolean } {
  if (text.length === 0) return { ok: false, error: "the file is empty: not a smcvisor recording" };
  const lines = text.split("\n");
  const cut = lines[lines.length - 1] !== "";
  if (!cut) lines.pop();
  const parser = new RecordingParser();
  let header: RecordHeader | null = null;
  const records: RecordLine[] = [];
  for (let i = 0; i < lines.length; i++) {
    const r = parser.line(lines[i]!, cut && i === lines.length - 1);
    if (!r.ok) return r;
    if ("header" in r) header = r.header;
    else records.push(r.record);
  }
  return { ok: true, recording: { header: header!, records }, truncated: parser.truncated };
}
