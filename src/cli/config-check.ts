/**
 * `smcvisor config check F`: a config, or a scenario (what `smcvisor run` takes: its own fields, the config
 * in it or the policy file it names, and what the QEMU backend can run). Exit 0 when valid; otherwise one
 * line per problem with its path, exit 2.
 */
import { resolve } from "node:path";
import { Hypervisor } from "../hypervisor/hypervisor.js";
import { BOARDS } from "../machine/boards/index.js";
import { readConfigFile } from "../machine/config-file.js";
import { loadScenario } from "../machine/qemu/scenario.js";
import type { ConfigError } from "../policy/config.js";
import type { Config } from "../policy/load.js";
import { ABSENT_MONITOR } from "../router/ports.js";
import { parseArgs, UsageError, type Io } from "./args.js";
import { loadConfigFile } from "./config-file.js";

/** A scenario has guests; a config never does (it would be an unknown field). */
function isScenario(data: unknown): boolean {
  return typeof data === "object" && data !== null && !Array.isArray(data) && Object.hasOwn(data, "guests");
}

export function configCommand(argv: readonly string[], io: Io): number {
  const { positionals, flags } = parseArgs(argv, ["json"], []);
  if (positionals[0] !== "check" || positionals.length !== 2) throw new UsageError("usage: smcvisor config check <file> [--json]");
  const file = positionals[1]!;
  const full = resolve(io.cwd, file);
  let kind: "config" | "scenario" = "config";
  let config: Config | null = null;
  let errors: readonly ConfigError[] = [];
  const data = readConfigFile(full, file);
  if (!data.ok) errors = data.errors;
  else if (isScenario(data.data)) {
    kind = "scenario";
    const s = loadScenario(full);
    if (s.ok) config = s.scenario.config;
    else errors = s.errors;
  } else {
    const loaded = loadConfigFile(file, io);
    if (loaded.ok) config = loaded.config;
    else errors = loaded.errors;
  }
  if (config) {
    // What the hypervisor checks at VM creation (mediator names, board profiles, exclusive grants against
    // services and TEE claims), with the config's delegates standing in for the handlers a run would load.
    const delegates = new Map(Object.keys(config.delegates).map((n) => [n, ABSENT_MONITOR] as const));
    const r = Hypervisor.fromConfig(config, { delegates, boards: BOARDS });
    if (!r.ok) errors = r.errors;
  }
  const vms = config && errors.length === 0 ? config.vms.map((v) => v.name) : [];
  if (flags.has("json")) {
    io.out(JSON.stringify({ file, kind, valid: errors.length === 0, errors, vms }));
  } else if (errors.length === 0) {
    io.out(`${file}: valid${kind === "scenario" ? " scenario" : ""} (${vms.length} VM${vms.length === 1 ? "" : "s"}: ${vms.join(", ")})`);
  } else {
    for (const e of errors) io.out(`${file}: ${e.path}: ${e.message}`);
  }
  return errors.length === 0 ? 0 : 2;
}
