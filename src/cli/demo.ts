/**
 * `smcvisor demo`: the in-process demo. Two VMs from examples/policy.yaml issue the calls a booting
 * Linux guest makes, plus SiP calls their policies treat differently; the decisions are printed and the
 * trace is written in Chrome/Perfetto format.
 */
import { randomFillSync } from "node:crypto";
import { resolve } from "node:path";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import type { Config } from "../policy/load.js";
import { hex32 } from "../smccc/fid.js";
import { toChromeTrace } from "../trace/chrome.js";
import { hex64, parseArgs, UsageError, type Io } from "./args.js";
import { loadConfigFile, printConfigErrors } from "./config-file.js";
import { unwritable, writeOutput } from "./output.js";

const CALLS: readonly { fid: number; args?: number[]; conduit?: "smc" | "hvc"; note: string }[] = [
  { fid: 0x8000_0000, note: "SMCCC_VERSION" },
  { fid: 0x8000_0001, args: [0x8000_8000], note: "ARCH_FEATURES(WORKAROUND_1)" },
  { fid: 0x8000_0001, args: [0x8000_7fff], note: "ARCH_FEATURES(WORKAROUND_2)" },
  { fid: 0x8000_0002, args: [0], note: "SOC_ID (JEP-106)" },
  { fid: 0x8600_ff01, note: "vendor hypervisor UID" },
  { fid: 0x8400_0000, note: "PSCI_VERSION" },
  { fid: 0x8400_000a, args: [0x8000_0000], note: "PSCI_FEATURES(SMCCC_VERSION)" },
  { fid: 0xc400_0003, args: [1, 0x4008_0000, 0x1234], note: "PSCI_CPU_ON vCPU 1" },
  { fid: 0xc400_0004, args: [1, 0], note: "PSCI_AFFINITY_INFO vCPU 1" },
  { fid: 0xc400_0053, args: [64], note: "TRNG_RND64 (64 bits in x3)" },
  { fid: 0xc200_0001, note: "EEMI PM_GET_API_VERSION" },
  { fid: 0xc200_0024, args: [133], note: "EEMI PM_CLOCK_ENABLE UART_0" },
  { fid: 0xc200_000d, args: [40], note: "EEMI PM_REQUEST_NODE SD_1" },
  { fid: 0x8300_0002, note: "OEM board info (delegate)" },
  { fid: 0x8000_0000, conduit: "smc", note: "SMCCC_VERSION by SMC" },
];

export async function demoCommand(argv: readonly string[], io: Io): Promise<number> {
  const { flags } = parseArgs(argv, [], ["config", "trace"]);
  const loaded = loadConfigFile((flags.get("config") as string | undefined) ?? "examples/policy.yaml", io);
  if (!loaded.ok) {
    printConfigErrors(loaded.source, loaded.errors, io);
    return 2;
  }
  // A trace that could not be written is a usage error before any work, not a failure after it.
  const tracePath = resolve(io.cwd, (flags.get("trace") as string | undefined) ?? "out/demo-trace.json");
  const refused = unwritable(tracePath);
  if (refused !== null) throw new UsageError(`--trace: ${refused}`);
  const machine = await ScriptedMachine.create(loaded.config, { cwd: io.cwd, clock: { now: () => performance.now() * 1e6 }, log: io.err, entropy: (out) => randomFillSync(out) });
  try {
    return await runDemo(machine, loaded.config, loaded.source, tracePath, io);
  } finally {
    machine.close();
  }
}

async function runDemo(machine: ScriptedMachine, config: Config, source: string, tracePath: string, io: Io): Promise<number> {
  const loaded = { config, source };
  io.out(`smcvisor in-process demo: ${loaded.source}, ${loaded.config.vms.length} VMs`);
  for (const vm of loaded.config.vms) {
    io.out("");
    io.out(`${vm.name} (VM ID ${vm.id}, SMCCC told ${(vm.smccc >>> 16)}.${vm.smccc & 0xffff})`);
    const vcpu = machine.vm(vm.name).vcpu(0);
    for (const c of CALLS) {
      const r = await vcpu.callAsync(c.conduit ?? "hvc", c.fid, c.args ?? []);
      io.out(`  ${(c.conduit ?? "hvc").padEnd(3)} ${hex32(c.fid)} ${c.note.padEnd(28)} → x0 ${hex64(r.x0).padEnd(20)} ${r.decision.action} (${r.decision.rule})`);
    }
  }
  const failed = writeOutput(tracePath, () => JSON.stringify(toChromeTrace(machine.trace.events())));
  // The hypervisor's own calls, told from a VM's by their conduit, never by name (a VM may be "hypervisor").
  const physical = machine.trace.events().filter((e) => e.conduit === "hypervisor");
  io.out("");
  for (const e of physical) io.out(`hypervisor → secure world: ${hex32(e.fid)} ${e.origin} → x0 ${hex64(e.x0)}`);
  if (failed !== null) {
    io.err(`smcvisor: trace: ${failed}`);
    return 1;
  }
  io.out(`trace: ${machine.trace.total} calls → ${tracePath} (open in ui.perfetto.dev or chrome://tracing)`);
  return 0;
}
