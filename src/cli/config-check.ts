/** `smcvisor config check F`: exit 0 when valid; otherwise one line per problem with its path, exit 2. */
import { Hypervisor } from "../hypervisor/hypervisor.js";
import { BOARDS } from "../machine/boards/index.js";
import { ABSENT_MONITOR } from "../router/ports.js";
import { parseArgs, UsageError, type Io } from "./args.js";
import { loadConfigFile } from "./config-file.js";

export function configCommand(argv: readonly string[], io: Io): number {
  const { positionals, flags } = parseArgs(argv, ["json"], []);
  if (positionals[0] !== "check" || positionals.length !== 2) throw new UsageError("usage: smcvisor config check <file> [--json]");
  const file = positionals[1]!;
  const loaded = loadConfigFile(file, io);
  let errors = loaded.ok ? [] : loaded.errors;
  if (loaded.ok) {
    // What the hypervisor checks at VM creation (mediator names, board profiles), with the config's
    // delegates standing in for the handlers a run would load or start.
    const delegates = new Map(Object.keys(loaded.config.delegates).map((n) => [n, ABSENT_MONITOR] as const));
    const r = Hypervisor.fromConfig(loaded.config, { delegates, boards: BOARDS });
    if (!r.ok) errors = r.errors;
  }
  if (flags.has("json")) {
    io.out(JSON.stringify({ file, valid: errors.length === 0, errors, vms: loaded.ok ? loaded.config.vms.map((v) => v.name) : [] }));
  } else if (errors.length === 0 && loaded.ok) {
    io.out(`${file}: valid (${loaded.config.vms.length} VM${loaded.config.vms.length === 1 ? "" : "s"}: ${loaded.config.vms.map((v) => v.name).join(", ")})`);
  } else {
    for (const e of errors) io.out(`${file}: ${e.path}: ${e.message}`);
  }
  return errors.length === 0 ? 0 : 2;
}
