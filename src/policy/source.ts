/**
 * Config text (YAML or JSON) to plain data, before the schema sees it. A config is written by a person but
 * may come from anyone, so reading it is bounded and exact:
 *
 * - at most MAX_CONFIG_BYTES of text, checked before parsing;
 * - objects have no prototype, so a key such as `__proto__` or `constructor` is an ordinary key;
 * - a key given twice is an error with its path, in JSON as in YAML (JSON.parse keeps the last silently);
 * - integers that a double cannot hold exactly (above 2^53) stay the text the user wrote, which the
 *   schema's 64-bit parsers read exactly and quote in their errors;
 * - YAML aliases may not expand to more than MAX_ALIAS_NODES values (a "billion laughs" document), and
 *   nothing may nest deeper than MAX_DEPTH.
 *
 * Errors are data: one per problem, with a path or a line and column. Nothing here throws on bad input.
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from "yaml";
import { formatPath, type ConfigError } from "./config.js";

/** The largest config or scenario file smcvisor reads (1 MiB): configs are a few kilobytes. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** How deep objects and lists may nest: the config's own shape is six levels deep. */
export const MAX_DEPTH = 64;
/** How many values YAML aliases may expand to in all (an anchor used a few times is far below it). */
export const MAX_ALIAS_NODES = 10_000;

export type DataResult = { readonly ok: true; readonly data: unknown } | { readonly ok: false; readonly errors: readonly ConfigError[] };

export type TextFormat = "yaml" | "json";

/** Why a text is refused before it is parsed, or null: its size in UTF-8 bytes. */
export function sizeProblem(bytes: number): ConfigError | null {
  return bytes > MAX_CONFIG_BYTES ? { path: "(file)", message: `${bytes} bytes is more than a config may have (${MAX_CONFIG_BYTES} bytes, 1 MiB)` } : null;
}

function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Parses config text into data (objects without prototypes, arrays, strings, numbers, booleans, null). */
export function parseConfigData(text: string, format: TextFormat = "yaml"): DataResult {
  // Every UTF-8 encoding is at least as long as its UTF-16 length: a long text is refused without counting.
  const size = sizeProblem(text.length > MAX_CONFIG_BYTES ? text.length : utf8Length(text));
  if (size) return { ok: false, errors: [size] };
  return format === "json" ? parseJson(text) : parseYaml(text);
}

/** An integer as data: a number when a double holds it exactly, else the text the user wrote. */
function integer(value: bigint, source: string): number | string {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : source;
}

/**
 * Integers written other than in decimal (0x1F, 0o17, 0b101), by key, on the object or array that holds
 * them: a symbol-keyed property no schema and no JSON sees. Errors quote a value as the user wrote it
 * (inWrittenForm), not as the number it became.
 */
const WRITTEN = Symbol("written integers");

function noteWritten(holder: object, key: PropertyKey, value: unknown, source: string | undefined): void {
  if (typeof value !== "number" || source === undefined || !/^[-+]?0[xXoObB]/.test(source)) return;
  const h = holder as { [WRITTEN]?: Map<PropertyKey, string> };
  if (!h[WRITTEN]) Object.defineProperty(h, WRITTEN, { value: new Map(), enumerable: false });
  h[WRITTEN]!.set(key, source);
}

/** The integers of `data` written other than in decimal, by config path ("vms.a.id" → "0x1FFFF"). */
export function writtenIntegers(data: unknown, path: PropertyKey[] = [], out = new Map<string, { value: number; text: string }>()): Map<string, { value: number; text: string }> {
  if (typeof data !== "object" || data === null || path.length > MAX_DEPTH) return out;
  const written = (data as { [WRITTEN]?: Map<PropertyKey, string> })[WRITTEN];
  for (const [key, text] of written ?? []) {
    const v = (data as Record<PropertyKey, unknown>)[key];
    if (typeof v === "number") out.set(formatPath([...path, key]), { value: v, text });
  }
  if (Array.isArray(data)) data.forEach((v, i) => writtenIntegers(v, [...path, i], out));
  else for (const key of Object.keys(data)) writtenIntegers((data as Record<string, unknown>)[key], [...path, key], out);
  return out;
}

/** Errors with each integer they quote in the form the user wrote it: "0x1FFFF is outside ...", not "131071". */
export function inWrittenForm(errors: readonly ConfigError[], data: unknown): ConfigError[] {
  const written = writtenIntegers(data);
  if (written.size === 0) return [...errors];
  return errors.map((e) => {
    const w = written.get(e.path);
    if (!w) return e;
    return { ...e, message: e.message.replace(new RegExp(`(?<![0-9A-Za-z.])${String(w.value)}(?![0-9A-Za-z.])`), w.text) };
  });
}

function lineColumn(text: string, offset: number): string {
  let line = 1, start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return `(line ${line}, column ${offset - start + 1})`;
}

const PROTO_KEY = "__proto__ is not a name a config may use (a JavaScript object would drop it)";

/**
 * Keys named `__proto__` anywhere in data (as JSON.parse makes them): a schema's records drop such a key
 * silently, so a VM named so would vanish. Data read by parseConfigData never has one.
 */
export function protoKeyProblems(data: unknown, path: PropertyKey[] = [], out: ConfigError[] = []): ConfigError[] {
  if (path.length > MAX_DEPTH || typeof data !== "object" || data === null) return out;
  if (Array.isArray(data)) {
    data.forEach((v, i) => protoKeyProblems(v, [...path, i], out));
    return out;
  }
  for (const key of Object.keys(data)) {
    if (key === "__proto__") out.push({ path: formatPath([...path, key]), message: PROTO_KEY });
    else protoKeyProblems((data as Record<string, unknown>)[key], [...path, key], out);
  }
  return out;
}

class Refusal {
  constructor(readonly offset: number, readonly message: string, readonly path: readonly PropertyKey[] | null = null) {}
}

// ---------------------------------------------------------------------------------------------------
// JSON (RFC 8259), strictly: no comments, no trailing commas, no duplicate keys.

function parseJson(text: string): DataResult {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const path: PropertyKey[] = [];

  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const fail = (message: string, at = i): never => {
    throw new Refusal(at, message);
  };
  const expect = (ch: string) => {
    if (text[i] !== ch) fail(text[i] === undefined ? `unexpected end, expected "${ch}"` : `expected "${ch}", found "${text[i]}"`);
    i++;
  };

  const string = (): string => {
    const start = i;
    expect('"');
    let out = "";
    let run = i;
    for (;;) {
      const c = text.charCodeAt(i);
      if (Number.isNaN(c)) fail("unterminated string", start);
      if (c === 0x22) {
        out += text.slice(run, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("a control character in a string must be escaped");
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(run, i);
      const e = text[i + 1];
      const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e !== undefined && Object.hasOwn(simple, e)) {
        out += simple[e];
        i += 2;
      } else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
        out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
        i += 6;
      } else fail("not a valid escape");
      run = i;
    }
  };

  const number = (): number | string => {
    const m = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = i;
    const r = m.exec(text);
    if (!r) return fail(`unexpected "${text[i]}"`);
    i += r[0].length;
    if (r[1] === undefined && r[2] === undefined) return integer(BigInt(r[0]), r[0]);
    return Number(r[0]);
  };

  const value = (): unknown => {
    ws();
    const c = text[i];
    if (c === "{" || c === "[") {
      if (path.length >= MAX_DEPTH) fail(`nested more than ${MAX_DEPTH} levels deep`);
      i++;
      return c === "{" ? object() : array();
    }
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    if (c === undefined) return fail("unexpected end of the text");
    return number();
  };

  const object = (): Record<string, unknown> => {
    const out: Record<string, unknown> = Object.create(null);
    ws();
    if (text[i] === "}") {
      i++;
      return out;
    }
    for (;;) {
      ws();
      const at = i;
      const key = string();
      if (Object.hasOwn(out, key)) throw new Refusal(at, "this key is given twice (JSON.parse would keep only the last)", [...path, key]);
      if (key === "__proto__") throw new Refusal(at, PROTO_KEY, [...path, key]);
      ws();
      expect(":");
      path.push(key);
      out[key] = value();
      path.pop();
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      expect("}");
      return out;
    }
  };

  const array = (): unknown[] => {
    const out: unknown[] = [];
    ws();
    if (text[i] === "]") {
      i++;
      return out;
    }
    for (;;) {
      path.push(out.length);
      out.push(value());
      path.pop();
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      expect("]");
      return out;
    }
  };

  try {
    const data = value();
    ws();
    if (i < text.length) fail("text after the end of the JSON value");
    return { ok: true, data };
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    return { ok: false, errors: [refusalError(text, e, "JSON")] };
  }
}

function refusalError(text: string, e: Refusal, what: string): ConfigError {
  const where = lineColumn(text, e.offset);
  return e.path ? { path: formatPath(e.path), message: `${e.message} ${where}` } : { path: where, message: `not valid ${what}: ${e.message}` };
}

// ---------------------------------------------------------------------------------------------------
// YAML 1.2 (core schema), composed by the yaml package and turned into data here.

function parseYaml(text: string): DataResult {
  const lineCounter = new LineCounter();
  // Duplicate keys are found below, in constant time per key (the package's own check is quadratic).
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: false, intAsBigInt: true, lineCounter });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const p = lineCounter.linePos(e.pos[0]);
        return { path: `(line ${p.line}, column ${p.col})`, message: `not valid YAML: ${e.message.split("\n")[0]}` };
      }),
    };
  }
  try {
    return { ok: true, data: new YamlReader(doc).read(doc.contents as YamlNode | null, []) };
  } catch (e) {
    if (!(e instanceof Refusal)) throw e;
    return { ok: false, errors: [refusalError(text, e, "YAML")] };
  }
}

class YamlReader {
  /** Values produced through aliases so far. */
  private expanded = 0;
  /** The nodes being read, outermost first: an alias to one of them would make the data infinite. */
  private readonly open = new Set<YamlNode>();

  constructor(private readonly doc: Document) {}

  read(node: YamlNode | null | undefined, path: PropertyKey[], viaAlias = false): unknown {
    if (node === null || node === undefined) return null;
    const at = node.range?.[0] ?? 0;
    if (viaAlias && ++this.expanded > MAX_ALIAS_NODES) {
      throw new Refusal(at, `YAML aliases expand to more than ${MAX_ALIAS_NODES} values`, path);
    }
    if (path.length > MAX_DEPTH) throw new Refusal(at, `nested more than ${MAX_DEPTH} levels deep`, path);
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (!target) throw new Refusal(at, `the alias *${node.source} names no anchor`, path);
      if (this.open.has(target as YamlNode)) throw new Refusal(at, `the alias *${node.source} is inside the value it names`, path);
      return this.read(target as YamlNode, path, true);
    }
    if (isScalar(node)) return this.scalar(node.value, node.source);
    if (isSeq(node) || isMap(node)) {
      this.open.add(node);
      try {
        return this.collection(node, path, viaAlias, at);
      } finally {
        this.open.delete(node);
      }
    }
    throw new Refusal(at, "not a value a config holds", path);
  }

  private collection(node: YamlNode, path: PropertyKey[], viaAlias: boolean, at: number): unknown {
    if (isSeq(node)) {
      const out = node.items.map((item, k) => this.read(item as YamlNode, [...path, k], viaAlias));
      node.items.forEach((item, k) => isScalar(item) && noteWritten(out, k, out[k], item.source));
      return out;
    }
    if (isMap(node)) {
      const out: Record<string, unknown> = Object.create(null);
      for (const pair of node.items) {
        const keyNode = pair.key as YamlNode | null;
        if (keyNode !== null && !isScalar(keyNode)) throw new Refusal(keyNode.range?.[0] ?? at, "a key must be a plain value, not a list or a map", path);
        const k = keyNode === null ? null : this.scalar(keyNode.value, keyNode.source);
        const key = String(k);
        if (Object.hasOwn(out, key)) throw new Refusal(keyNode?.range?.[0] ?? at, "this key is given twice", [...path, key]);
        if (key === "__proto__") throw new Refusal(keyNode?.range?.[0] ?? at, PROTO_KEY, [...path, key]);
        out[key] = this.read(pair.value as YamlNode | null, [...path, key], viaAlias);
        if (isScalar(pair.value)) noteWritten(out, key, out[key], pair.value.source);
      }
      return out;
    }
    throw new Refusal(at, "not a value a config holds", path);
  }

  private scalar(value: unknown, source: string | undefined): unknown {
    if (typeof value === "bigint") return integer(value, source ?? `0x${value.toString(16)}`);
    return value;
  }
}
