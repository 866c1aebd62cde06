/**
 * Reading config files for the CLI: YAML or JSON by extension, at most 1 MiB (refused before parsing:
 * machine/config-file.ts); errors are data with paths.
 */
import { dirname, resolve } from "node:path";
import { readConfigFile } from "../machine/config-file.js";
import { parseConfigText, validateConfig, type Config } from "../policy/load.js";
import type { ConfigError } from "../policy/config.js";
import type { Io } from "./args.js";

/** The config `smcvisor call` uses without --config: one VM with the standard services and no grants. */
export const DEFAULT_CONFIG_TEXT = "vms:\n  vm0: {}\n";

export function loadConfigFile(path: string | undefined, io: Io): { ok: true; config: Config; source: string } | { ok: false; errors: ConfigError[]; source: string } {
  if (path === undefined) {
    const r = parseConfigText(DEFAULT_CONFIG_TEXT);
    if (!r.ok) throw new Error("the built-in default config is invalid");
    return { ok: true, config: r.value, source: "(built-in default)" };
  }
  const full = resolve(io.cwd, path);
  const data = readConfigFile(full, path);
  if (!data.ok) return { ok: false, source: path, errors: [...data.errors] };
  const r = validateConfig(data.data ?? {});
  // Relative paths in the config (delegates) are the file's, not the working directory's.
  return r.ok ? { ok: true, config: { ...r.value, baseDir: dirname(full) }, source: path } : { ok: false, errors: [...r.errors], source: path };
}

export function printConfigErrors(source: string, errors: readonly ConfigError[], io: Io): void {
  for (const e of errors) io.err(`${source}: ${e.path}: ${e.message}`);
}
