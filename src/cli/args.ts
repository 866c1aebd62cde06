/** A small, strict argument parser: known flags only, values for string flags, negative numbers as positionals. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  readonly cwd: string;
}

export interface Parsed {
  readonly positionals: string[];
  readonly flags: Map<string, string | true>;
}

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[], booleans: readonly string[], strings: readonly string[]): Parsed {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (booleans.includes(name)) {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        flags.set(name, true);
      } else if (strings.includes(name)) {
        const value = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
        flags.set(name, value);
      } else {
        throw new UsageError(`unknown option --${name}`);
      }
    } else if (a.startsWith("-") && !/^-\d/.test(a) && a !== "-") {
      throw new UsageError(`unknown option ${a}`);
    } else {
      positionals.push(a);
    }
  }
  return { positionals, flags };
}

/** A register or FID value: decimal, 0x hex or 0b binary; negative values are two's complement. */
export function parseValue(text: string, what: string): bigint {
  const t = text.replace(/_/g, "");
  if (!/^-?(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)$/.test(t)) throw new UsageError(`${what}: "${text}" is not a number`);
  const neg = t.startsWith("-");
  const v = BigInt(neg ? t.slice(1) : t);
  if (v >= 1n << 64n) throw new UsageError(`${what}: ${text} does not fit in 64 bits`);
  return BigInt.asUintN(64, neg ? -v : v);
}

/** A count or an index (a vCPU's): a non-negative decimal or 0x hex integer below `limit`, else a usage error. */
export function parseIndex(text: string, what: string, limit: number): number {
  const t = text.replace(/_/g, "");
  if (!/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(t)) throw new UsageError(`${what}: "${text}" is not a non-negative integer`);
  const v = BigInt(t);
  if (v >= BigInt(limit)) throw new UsageError(`${what}: ${text} is out of range (0 to ${limit - 1})`);
  return Number(v);
}

export function parseFid(text: string): number {
  const v = parseValue(text, "function ID");
  if (v > 0xffff_ffffn) throw new UsageError(`function ID: ${text} is wider than 32 bits (W0)`);
  return Number(v);
}

export function hex64(v: bigint): string {
  return "0x" + BigInt.asUintN(64, v).toString(16).toUpperCase();
}
