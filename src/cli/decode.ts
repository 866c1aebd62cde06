/** `smcvisor decode <fid>`: every field of a function ID (SMCCC DEN0028 §2.5). */
import { decodeFid, hex32 } from "../smccc/fid.js";
import { parseArgs, parseFid, UsageError, type Io } from "./args.js";

export function decodeCommand(argv: readonly string[], io: Io): number {
  const { positionals, flags } = parseArgs(argv, ["json"], []);
  if (positionals.length !== 1) throw new UsageError("usage: smcvisor decode <fid> [--json]");
  const d = decodeFid(parseFid(positionals[0]!));
  if (flags.has("json")) {
    io.out(
      JSON.stringify({
        fid: hex32(d.fid),
        owner: d.owner,
        ownerName: d.ownerName,
        fast: d.fast,
        smc64: d.smc64,
        callType: d.callType,
        mbz: d.mbz,
        sveHint: d.sveHint,
        function: d.function,
        name: d.name,
      }),
    );
    return 0;
  }
  io.out(`${hex32(d.fid)}  ${d.name ?? "(no known function)"}`);
  io.out(`  call type    ${d.fast ? "fast" : "yielding"}, ${d.smc64 ? "SMC64/HVC64" : "SMC32/HVC32"}`);
  io.out(`  owner        ${d.owner} (${d.ownerName})`);
  io.out(`  bits 23:17   0x${d.mbz.toString(16)}${d.mbz !== 0 && d.fast ? "  (must be zero for a fast call: -1)" : ""}`);
  io.out(`  SVE hint     ${d.sveHint ? "1 (no live SVE state; stripped before dispatch)" : "0"}`);
  io.out(`  function     0x${d.function.toString(16).toUpperCase().padStart(4, "0")}`);
  return 0;
}
