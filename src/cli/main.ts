/** The `smcvisor` command: dispatches to subcommands; usage errors exit 2, failures 1. */
import { DelegateLoadError } from "../machine/delegates/module-delegate.js";
import { MachineConfigError } from "../machine/scripted/machine.js";
import { UsageError, type Io } from "./args.js";
import { callCommand } from "./call.js";
import { configCommand } from "./config-check.js";
import { conformCommand } from "./conform.js";
import { decodeCommand } from "./decode.js";
import { demoCommand } from "./demo.js";
import { explainCommand } from "./explain.js";
import { fuzzCommand } from "./fuzz.js";
import { commandHelp, COMMANDS, overview, versionLine } from "./help.js";
import { runCommand } from "./run.js";
import { replayCommand } from "./replay.js";

const HELP = overview();

export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    // `smcvisor <command> --help` is `smcvisor help <command>`, whatever else is on the line.
    const own = cmd === undefined ? null : commandHelp(cmd);
    if (own !== null && (rest.includes("--help") || rest.includes("-h"))) {
      io.out(own);
      return 0;
    }
    switch (cmd) {
      case "decode": return decodeCommand(rest, io);
      case "call": return await callCommand(rest, io);
      case "explain": return explainCommand(rest, io);
      case "config": return configCommand(rest, io);
      case "demo": return await demoCommand(rest, io);
      case "run": return await runCommand(rest, io);
      case "replay": return await replayCommand(rest, io);
      case "conform": return await conformCommand(rest, io);
      case "fuzz": return await fuzzCommand(rest, io);
      case "--version":
      case "-V":
      case "version":
        io.out(versionLine());
        return 0;
      case "help":
      case "--help":
      case "-h": {
        if (rest.length === 0) {
          io.out(HELP);
          return 0;
        }
        const text = commandHelp(rest[0]!);
        if (text === null || rest.length > 1) throw new UsageError(`help: no command "${rest.join(" ")}" (commands: ${COMMANDS.map((c) => c.name).join(", ")})`);
        io.out(text);
        return 0;
      }
      case undefined:
        io.out(HELP);
        return 2;
      default:
        throw new UsageError(`unknown command "${cmd}"\n\n${HELP}`);
    }
  } catch (e) {
    return reportError(e, io);
  }
}

/**
 * What escapes a command. The operator's input being wrong (usage, a config the machine cannot run, a
 * delegate that does not load) is one line per problem and exit 2; anything else is a bug of ours: one
 * line and exit 1, with the stack only when SMCVISOR_DEBUG=1.
 */
export function reportError(e: unknown, io: Io): number {
  if (e instanceof UsageError || e instanceof DelegateLoadError) {
    io.err(`smcvisor: ${e.message}`);
    return 2;
  }
  if (e instanceof MachineConfigError) {
    for (const problem of e.errors) io.err(`smcvisor: ${problem.path}: ${problem.message}`);
    return 2;
  }
  if (process.env.SMCVISOR_DEBUG === "1") {
    io.err(`smcvisor: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  } else {
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    io.err(`smcvisor: internal error: ${message} (SMCVISOR_DEBUG=1 shows where)`);
  }
  return 1;
}
