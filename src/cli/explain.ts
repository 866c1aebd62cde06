/** `smcvisor explain`: the decision for a call and the rule behind it, without running it. */
import { Hypervisor } from "../hypervisor/hypervisor.js";
import { explain } from "../policy/explain.js";
import { hex32 } from "../smccc/fid.js";
import { parseArgs, parseFid, parseIndex, parseValue, UsageError, type Io } from "./args.js";
import { loadConfigFile, printConfigErrors } from "./config-file.js";

const USAGE = "usage: smcvisor explain --config F --vm NAME [--aarch32] [--imm N] <fid> [args...] [--json]";

export function explainCommand(argv: readonly string[], io: Io): number {
  const { positionals, flags } = parseArgs(argv, ["json", "aarch32"], ["config", "vm", "imm"]);
  if (positionals.length < 1 || !flags.has("config") || !flags.has("vm")) throw new UsageError(USAGE);
  const loaded = loadConfigFile(flags.get("config") as string, io);
  if (!loaded.ok) {
    printConfigErrors(loaded.source, loaded.errors, io);
    return 2;
  }
  const vm = loaded.config.vms.find((v) => v.name === flags.get("vm"));
  if (!vm) {
    io.err(`${loaded.source}: no VM named "${flags.get("vm")}" (have: ${loaded.config.vms.map((v) => v.name).join(", ")})`);
    return 2;
  }
  const fid = parseFid(positionals[0]!);
  const args = [0n, ...positionals.slice(1).map((a, i) => parseValue(a, `x${i + 1}`))];
  const claims = new Hypervisor(loaded.config.platform).router.claimsFor(vm);
  const e = explain(vm, claims, { fid, args, aarch32: flags.has("aarch32"), imm: flags.has("imm") ? parseIndex(flags.get("imm") as string, "--imm (a 16-bit immediate)", 0x1_0000) : 0 });
  if (flags.has("json")) {
    io.out(JSON.stringify({ ...e, fid: { ...e.fid, fid: hex32(e.fid.fid), dispatchFid: hex32(e.fid.dispatchFid) } }));
    return 0;
  }
  io.out(`${vm.name} (SMCCC ${e.smccc}): ${hex32(fid)} ${e.fid.name ?? ""}`.trimEnd());
  io.out(`  decision  ${e.decision.action}${e.decision.service ? ` by service ${e.decision.service}` : ""}`);
  io.out(`  rule      ${e.decision.rule}`);
  io.out(`  because   ${e.decision.reason}`);
  for (const c of e.considered) io.out(`  checked   ${c.rule}: ${c.result === "decided" ? "matched" : c.detail}`);
  return 0;
}
