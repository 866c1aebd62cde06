/**
 * Scalar value parsers shared by the config schema: 32-bit IDs, 64-bit values, sizes and ranges.
 * Config files are written by people, so numbers may be YAML integers or strings such as "0x82000000",
 * "256MiB" or "0x82000000-0x8200FFFF".
 */
import { z } from "zod";

function parseBigInt(input: string): bigint | null {
  const s = input.trim().replace(/_/g, "");
  const m = /^(-?)(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)$/.exec(s);
  if (!m) return null;
  const v = BigInt(m[2]!.replace(/^0[oO]/, "0o"));
  return m[1] ? -v : v;
}

/** Any number (Infinity included, which the parsers below refuse with a message), string or bigint. */
const anyNumber = z.custom<number>((v) => typeof v === "number", "expected a number");
const integerLike = z.union([anyNumber, z.string(), z.bigint()]);

/** A value as the user wrote it, for errors: a large hex value is shown in hex, not as a rounded decimal. */
function asWritten(v: number | string | bigint): string {
  return typeof v === "string" ? v.trim() : typeof v === "bigint" ? `0x${v.toString(16)}` : String(v);
}

function toBigInt(v: number | string | bigint, ctx: z.RefinementCtx, what: string): bigint | typeof z.NEVER {
  if (typeof v === "bigint") return v;
  if (typeof v === "number") {
    if (Number.isSafeInteger(v)) return BigInt(v);
    ctx.addIssue({ code: "custom", message: `${what}: ${v} is not an exact integer` });
    return z.NEVER;
  }
  const b = parseBigInt(v);
  if (b === null) {
    ctx.addIssue({ code: "custom", message: `${what}: "${v}" is not a number (decimal, 0x hex, 0o octal or 0b binary)` });
    return z.NEVER;
  }
  return b;
}

/** An unsigned integer of at most `bits` bits, as a bigint. */
export function uintBig(bits: number, what: string) {
  const max = (1n << BigInt(bits)) - 1n;
  return integerLike.transform((v, ctx) => {
    const b = toBigInt(v, ctx, what);
    if (typeof b !== "bigint") return z.NEVER;
    if (b < 0n || b > max) {
      ctx.addIssue({ code: "custom", message: `${what}: ${asWritten(v)} is outside 0-0x${max.toString(16).toUpperCase()}` });
      return z.NEVER;
    }
    return b;
  });
}

/** An unsigned integer of at most 32 bits, as a number. */
export function u32(what: string, min = 0, max = 0xffff_ffff) {
  return int(what, min, max, (n) => `0x${n.toString(16).toUpperCase()}`);
}

/**
 * An integer in [min, max], as a number: counts, limits and timeouts. Written as a number or a string
 * ("0x10", "1_000"); an out-of-range value is quoted as written.
 */
export function int(what: string, min: number, max: number, show: (n: number) => string = String) {
  return integerLike.transform((v, ctx) => {
    const b = toBigInt(v, ctx, what);
    if (typeof b !== "bigint") return z.NEVER;
    if (b < BigInt(min) || b > BigInt(max)) {
      ctx.addIssue({ code: "custom", message: `${what}: ${asWritten(v)} is outside ${show(min)}-${show(max)}` });
      return z.NEVER;
    }
    return Number(b);
  });
}

const SIZE_UNITS: Readonly<Record<string, bigint>> = { "": 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n };

/** A size in bytes: a number, or a string such as "256MiB", "64KiB", "1GiB" or "0x100000". */
export function size(what: string) {
  return z.union([z.number(), z.string()]).transform((v, ctx) => {
    if (typeof v === "number") return toBigInt(v, ctx, what);
    const m = /^\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*(?:([KMG])i?B?)?\s*$/.exec(v.replace(/_/g, ""));
    if (!m) {
      ctx.addIssue({ code: "custom", message: `${what}: "${v}" is not a size (for example 256MiB, 64KiB, 0x100000)` });
      return z.NEVER;
    }
    return BigInt(m[1]!) * SIZE_UNITS[m[2] ?? ""]!;
  });
}

/** An inclusive range "lo-hi" or [lo, hi] of unsigned values of at most `bits` bits. */
export function range(bits: number, what: string) {
  const item = uintBig(bits, what);
  const pair = z.tuple([item, item]);
  const fromString = z.string().transform((s, ctx) => {
    const parts = s.split(/\s*-\s*|\s*\.\.\s*/);
    if (parts.length !== 2) {
      ctx.addIssue({ code: "custom", message: `${what}: "${s}" is not a range "lo-hi"` });
      return z.NEVER;
    }
    const lo = parseBigInt(parts[0]!), hi = parseBigInt(parts[1]!);
    if (lo === null || hi === null) {
      ctx.addIssue({ code: "custom", message: `${what}: "${s}" has a bound that is not a number` });
      return z.NEVER;
    }
    return [lo, hi] as [bigint, bigint];
  });
  return z.union([pair, fromString]).transform((r, ctx) => {
    const max = (1n << BigInt(bits)) - 1n;
    if (r[0] > r[1]) {
      ctx.addIssue({ code: "custom", message: `${what}: the range starts above its end` });
      return z.NEVER;
    }
    if (r[1] > max) {
      ctx.addIssue({ code: "custom", message: `${what}: the range ends above 0x${max.toString(16)}` });
      return z.NEVER;
    }
    return r;
  });
}

/** One allowed value or range for an argument constraint. */
export function valueOrRange(bits: number, what: string) {
  return z.union([z.number(), z.string(), z.tuple([integerLike, integerLike])]).transform((v, ctx) => {
    if (Array.isArray(v) || (typeof v === "string" && /-|\.\./.test(v.trim().replace(/^-/, "x")))) {
      const r = range(bits, what).safeParse(v);
      if (!r.success) {
        for (const issue of r.error.issues) ctx.addIssue({ code: "custom", message: issue.message });
        return z.NEVER;
      }
      return r.data;
    }
    const one = uintBig(bits, what).safeParse(v);
    if (!one.success) {
      for (const issue of one.error.issues) ctx.addIssue({ code: "custom", message: issue.message });
      return z.NEVER;
    }
    return [one.data, one.data] as [bigint, bigint];
  });
}
