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
import { runCommand } from "./run.js";

const HELP = `smcvisor: the firmware-call layer of an Arm hypervisor

usage:
  smcvisor decode <fid> [--json]                     decode a function ID
  smcvisor call [--config F] [--vm NAME] [--vcpu N] [--conduit smc|hvc] [--aarch32] [--imm N] <fid> [args...] [--json]
                                                     run one call in-process through the full router
  smcvisor explain --config F --vm NAME <fid> [args...] [--aarch32] [--imm N] [--json]
                                                     the decision for a call and the rule behind it
  smcvisor config check <file> [--json]              validate a config or a scenario (exit 2 with one line per problem)
  smcvisor demo [--config F] [--trace OUT]           the in-process demo
  smcvisor run <scenario.yaml> [--trace OUT] [--quiet] [--json]
                                                     boot a scenario's VMs under QEMU and the EL2 shim
  smcvisor conform [--target smcvisor|qemu-builtin] [--filter TEXT] [--json]
                                                     conformance cases from real EL1 code, side by side
  smcvisor fuzz --config F [--calls N] [--seed S] [--json]
                                                     random calls from every VM, isolation checked after each`;

export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "decode": return decodeCommand(rest, io);
      case "call": return await callCommand(rest, io);
      case "explain": return explainCommand(rest, io);
      case "config": return configCommand(rest, io);
      case "demo": return await demoCommand(rest, io);
      case "run": return await runCommand(rest, io);
      case "conform": return await conformCommand(rest, io);
      case "fuzz": return await fuzzCommand(rest, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.out(HELP);
        return cmd === undefined ? 2 : 0;
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
