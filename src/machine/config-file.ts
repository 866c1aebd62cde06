/**
 * Reading a config or scenario file: YAML, or JSON by its `.json` extension, into data (policy/source.ts).
 * At most MAX_CONFIG_BYTES are read: a larger file is refused before it is parsed, and a file that never
 * ends (a device) after MAX_CONFIG_BYTES + 1 bytes. Errors are data, one line each.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { ConfigError } from "../policy/config.js";
import { MAX_CONFIG_BYTES, parseConfigData, sizeProblem, type TextFormat } from "../policy/source.js";

export type FileDataResult = { readonly ok: true; readonly data: unknown } | { readonly ok: false; readonly errors: readonly ConfigError[] };

export function formatOf(path: string): TextFormat {
  return /\.json$/i.test(path) ? "json" : "yaml";
}

/** The text of a file of at most MAX_CONFIG_BYTES, or why not. `shown` names the file in messages. */
export function readConfigText(path: string, shown = path): { ok: true; text: string } | { ok: false; errors: ConfigError[] } {
  const fail = (message: string) => ({ ok: false as const, errors: [{ path: "(file)", message }] });
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    return fail(`cannot read ${shown}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return fail(`cannot read ${shown}: it is a directory`);
    const tooBig = st.isFile() ? sizeProblem(st.size) : null;
    if (tooBig) return { ok: false, errors: [tooBig] };
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n === buf.length) return fail(`${shown} is more than a config may have (${MAX_CONFIG_BYTES} bytes, 1 MiB)`);
    }
    return { ok: true, text: buf.toString("utf8", 0, n) };
  } catch (e) {
    return fail(`cannot read ${shown}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** A config or scenario file as data. */
export function readConfigFile(path: string, shown = path): FileDataResult {
  const read = readConfigText(path, shown);
  if (!read.ok) return read;
  return parseConfigData(read.text, formatOf(path));
}
