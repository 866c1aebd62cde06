/**
 * What `smcvisor help [command]` and `smcvisor --version` print. One table of commands: the overview lists
 * each command's usage line, `help <command>` adds what it does, its options and exit codes, so the two
 * never disagree.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { VERSION as PROTOCOL } from "../machine/qemu/channel.js";
import { REPO_ROOT } from "../machine/qemu/paths.js";

export interface CommandHelp {
  readonly name: string;
  /** The usage line, without "usage: ". */
  readonly usage: string;
  /** One line for the overview. */
  readonly summary: string;
  /** Paragraphs for `help <command>`: what it does, each option, exit codes. */
  readonly details: readonly string[];
}

const EXIT_USAGE = "Exit status: 0 on success, 2 for a usage or configuration error (one line per problem, with the file and field), 1 otherwise.";

export const COMMANDS: readonly CommandHelp[] = [
  {
    name: "decode",
    usage: "smcvisor decode <fid> [--json]",
    summary: "decode a function ID",
    details: [
      "Splits a 32-bit SMC Calling Convention function ID into its fields (fast or yielding, SMC32 or SMC64, owning entity, function number, the SVE hint of SMCCC 1.3) and names the function when smcvisor knows it.",
      "<fid>  decimal, 0x hex or 0b binary.",
      "--json  one JSON object instead of text.",
      EXIT_USAGE,
    ],
  },
  {
    name: "call",
    usage: "smcvisor call [--config F] [--vm NAME] [--vcpu N] [--conduit smc|hvc] [--aarch32] [--imm N] <fid> [args...] [--json]",
    summary: "run one call in-process through the full router",
    details: [
      "Builds the hypervisor from a config (a built-in default without --config), makes one call from a VM's vCPU as a trapped SMC or HVC would arrive, and prints the result registers with the decision and the rule behind it.",
      "--config F  a policy file (YAML or JSON, docs/policy.md).", "--vm NAME  the calling VM (the first by default).", "--vcpu N  the calling vCPU (0).",
      "--conduit smc|hvc  how the call arrives (smc by default).", "--aarch32  the caller is in AArch32 state.", "--imm N  the instruction's immediate (SMCCC: 0).",
      "[args...]  x1, x2, ... as numbers.", "--json  one JSON object.",
      EXIT_USAGE,
    ],
  },
  {
    name: "explain",
    usage: "smcvisor explain --config F --vm NAME <fid> [args...] [--aarch32] [--imm N] [--json]",
    summary: "the decision for a call and the rule behind it",
    details: [
      "Says what the policy decides for a call (emulate, forward, mediate, delegate or deny) and which rule of the config decides it, without making the call.",
      EXIT_USAGE,
    ],
  },
  {
    name: "config",
    usage: "smcvisor config check <file> [--json]",
    summary: "validate a config or a scenario (exit 2 with one line per problem)",
    details: [
      "Checks a policy file or a scenario (and the policy it names) with the same code that loads it for a run: every problem is one line with the file, the field's path and the reason.",
      EXIT_USAGE,
    ],
  },
  {
    name: "demo",
    usage: "smcvisor demo [--config F] [--trace OUT]",
    summary: "the in-process demo",
    details: [
      "Builds the hypervisor from a config (examples/policy.yaml by default), makes a list of calls from scripted vCPUs in-process (no QEMU) and prints what each got with the decision and its rule, then the calls the hypervisor made to the secure world for them.",
      "--config F  the policy file.", "--trace OUT  where the Perfetto/Chrome trace goes.",
      EXIT_USAGE,
    ],
  },
  {
    name: "run",
    usage: "smcvisor run <scenario.yaml> [--trace OUT] [--record FILE [--record-limit MIB]] [--quiet] [--json] [--ui [PORT] [--ui-host ADDR --ui-token TOKEN]]",
    summary: "boot a scenario's VMs under QEMU and the EL2 shim",
    details: [
      "Boots every VM of a scenario (docs/policy.md, \"Scenarios\") in its own QEMU process under the EL2 shim, streams each console prefixed with the VM's name, writes the trace, and prints a summary. Missing guest images and firmware are fetched into the cache first.",
      "--trace OUT  where the trace goes (the scenario's `trace:` by default).", "--quiet  no console lines.", "--json  the summary as JSON.",
      "--record FILE  record every call the VMs make, with what its answer depended on, for `smcvisor replay` (docs/record-replay.md).",
      "--record-limit MIB  stop recording when the file reaches this size (default 256; 1 to 65536).",
      "--ui [PORT]  serve the live dashboard and control API (docs/api.md) on 127.0.0.1:PORT (8080) while the VMs run.",
      "--ui-host ADDR  listen on another address; one other than loopback needs --ui-token.", "--ui-token TOKEN  every request must carry it (at least 16 characters; or SMCVISOR_UI_TOKEN).",
      "Exit status: 0 when every VM powered off cleanly and every expectation held, 1 otherwise, 2 for a usage or scenario error.",
    ],
  },
  {
    name: "replay",
    usage: "smcvisor replay <recording> [--config FILE] [--json]",
    summary: "replay a recorded run in-process and show what a policy change changes",
    details: [
      "Replays the calls of a `smcvisor run --record` recording in-process, without QEMU, against the config it was made with or a new one, and prints each call whose decision, outcome, result registers x0..x17 or guest-memory writes differ (docs/record-replay.md).",
      "<recording>  the file --record wrote.",
      "--config FILE  a config or scenario to replay against (the recorded one by default).",
      "--json  the differences as one JSON object.",
      "Exit status: 0 when no call differs, 1 when some do, 2 for a usage error, a config error, or a file that is not a readable recording (corrupt, cut short mid-line, or of a newer format version).",
    ],
  },
  {
    name: "conform",
    usage: "smcvisor conform [--target smcvisor|qemu-builtin] [--filter TEXT] [--json]",
    summary: "conformance cases from real EL1 code, side by side",
    details: [
      "Runs the conformance cases from bare-metal EL1 code under QEMU, against smcvisor and against QEMU's built-in firmware (both by default), and prints each case's verdict side by side: pass, fail, absent (the target does not offer the function) or skip (the target cannot run the case).",
      "--target smcvisor|qemu-builtin  one target only.", "--filter TEXT  only cases whose name contains TEXT.", "--json  the verdicts as JSON.",
      "Exit status: 1 when a case fails against smcvisor, 0 otherwise (QEMU's built-in firmware is compared, not judged), 2 for a usage error.",
    ],
  },
  {
    name: "fuzz",
    usage: "smcvisor fuzz --config F [--calls N] [--seed S] [--json]",
    summary: "random calls from every VM, isolation checked after each",
    details: [
      "Makes random and mutated calls from every VM of a config in-process and checks after each that no VM's state changed through another's call (docs/fuzz.md). A violation is printed with the seed and call number that reproduce it.",
      "Exit status: 0 with no violation, 1 with one, 2 for a usage or config error.",
    ],
  },
];

/** The overview: every command's usage line and summary. */
export function overview(): string {
  const lines = ["smcvisor: the firmware-call layer of an Arm hypervisor", "", "usage:"];
  for (const c of COMMANDS) {
    const usage = `  ${c.usage}`;
    if (usage.length <= 52) lines.push(`${usage.padEnd(53)}${c.summary}`);
    else lines.push(usage, `${" ".repeat(53)}${c.summary}`);
  }
  lines.push("  smcvisor help [command]                            this text, or one command's", "  smcvisor --version                                 the version");
  return lines.join("\n");
}

/** `help <command>`: null for a command that does not exist. */
export function commandHelp(name: string): string | null {
  const c = COMMANDS.find((x) => x.name === name);
  if (!c) return null;
  // An entry that starts with an option or an operand ("--json  ...", "<fid>  ...") is one row of an aligned
  // table; consecutive rows form one block. Any other entry is a paragraph.
  const isOption = (d: string) => /^(--|<|\[)\S*( \S+)?  /.test(d);
  const width = Math.max(0, ...c.details.filter(isOption).map((d) => d.indexOf("  ")));
  const out = [`usage: ${c.usage}`, "", c.summary];
  c.details.forEach((d, i) => {
    if (!isOption(d)) {
      out.push("", ...wrap(d, 100));
      return;
    }
    if (i === 0 || !isOption(c.details[i - 1]!)) out.push("");
    const cut = d.indexOf("  ");
    const [first = "", ...more] = wrap(d.slice(cut + 2), 96 - width);
    out.push(`  ${d.slice(0, cut).padEnd(width)}  ${first}`, ...more.map((l) => `  ${" ".repeat(width)}  ${l}`));
  });
  return out.join("\n");
}

/** Words into lines of at most `width` characters (a word longer than that gets its own line). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/ +/)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines;
}

/**
 * `smcvisor --version`: the package's version, the commit when run from a git checkout, the shim protocol
 * version (a shim and a hypervisor must agree on it) and the Node version.
 */
export function versionLine(): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
  let commit = "";
  try {
    commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "ignore"], encoding: "utf8" }).trim();
  } catch {
    // Not a git checkout (an npm package, an archive): the version alone.
  }
  return `smcvisor ${pkg.version}${commit ? ` (${commit})` : ""}, shim protocol ${PROTOCOL}, Node ${process.version}`;
}
