/**
 * Files the CLI writes (traces): checked before a run, so that a path that cannot be written is a usage
 * error before any work, and written after it without losing what the run found if writing fails then.
 */
import { accessSync, constants, mkdirSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

function reason(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

/**
 * Creates `dir` and its missing parents one level at a time. Not `mkdirSync(dir, { recursive: true })`: on
 * Linux that never returns for a path under /proc (each mkdir there fails with ENOENT, which the recursive
 * walk answers by creating the parent again), and a user who passes `--trace /proc/x/trace.json` must get an
 * error, not a hung command.
 */
export function makeDirectory(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      if (!statSync(d).isDirectory()) throw Object.assign(new Error(`${d} is not a directory`), { code: "ENOTDIR" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT" || dirname(d) === d) throw e;
      missing.push(d);
    }
  }
  for (const d of missing.reverse()) mkdirSync(d);
}

/** Why `path` cannot be written, or null: its directory is created if missing, nothing else is touched. */
export function unwritable(path: string): string | null {
  try {
    makeDirectory(dirname(path));
    accessSync(dirname(path), constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return `cannot write ${path}: ${code === "EEXIST" || code === "ENOTDIR" ? "part of its directory is not a directory" : reason(e)}`;
  }
  try {
    if (statSync(path).isDirectory()) return `cannot write ${path}: it is a directory`;
    accessSync(path, constants.W_OK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") return `cannot write ${path}: ${reason(e)}`;
  }
  return null;
}

/** Writes what `data` gives to `path`; the reason when it could not (making the text, too), never a throw. */
export function writeOutput(path: string, data: () => string): string | null {
  try {
    makeDirectory(dirname(path));
    writeFileSync(path, data());
    return null;
  } catch (e) {
    return `cannot write ${path}: ${reason(e)}`;
  }
}
