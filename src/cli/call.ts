/** `smcvisor call`: one call, in-process, through the full router. */
import { randomFillSync } from "node:crypto";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import { decodeFid, hex32 } from "../smccc/fid.js";
import { hex64, parseArgs, parseFid, parseIndex, parseValue, UsageError, type Io } from "./args.js";
import { loadConfigFile, printConfigErrors } from "./config-file.js";

const USAGE = "usage: smcvisor call [--config F] [--vm NAME] [--vcpu N] [--conduit smc|hvc] [--aarch32] [--imm N] <fid> [args...] [--json]";

export async function callCommand(argv: readonly string[], io: Io): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ["json", "aarch32"], ["config", "vm", "vcpu", "conduit", "imm"]);
  if (positionals.length < 1) throw new UsageError(USAGE);
  const conduit = (flags.get("conduit") ?? "smc") as string;
  if (conduit !== "smc" && conduit !== "hvc") throw new UsageError("--conduit is smc or hvc");
  const fid = parseFid(positionals[0]!);
  const args = positionals.slice(1).map((a, i) => parseValue(a, `x${i + 1}`));
  if (args.length > 17) throw new UsageError("at most 17 arguments (x1-x17)");
  const imm = flags.has("imm") ? parseIndex(flags.get("imm") as string, "--imm (a 16-bit immediate)", 0x1_0000) : 0;

  const loaded = loadConfigFile(flags.get("config") as string | undefined, io);
  if (!loaded.ok) {
    printConfigErrors(loaded.source, loaded.errors, io);
    return 2;
  }
  const vmName = (flags.get("vm") as string | undefined) ?? loaded.config.vms[0]!.name;
  const vmConfig = loaded.config.vms.find((v) => v.name === vmName);
  if (vmConfig === undefined) {
    io.err(`${loaded.source}: no VM named "${vmName}" (have: ${loaded.config.vms.map((v) => v.name).join(", ")})`);
    return 2;
  }
  const vcpuIndex = flags.has("vcpu") ? parseIndex(flags.get("vcpu") as string, "--vcpu", 1 << 16) : 0;
  if (vcpuIndex >= vmConfig.vcpus) throw new UsageError(`--vcpu ${vcpuIndex}: ${vmName} has ${vmConfig.vcpus} vCPU${vmConfig.vcpus === 1 ? "" : "s"} (0${vmConfig.vcpus > 1 ? `-${vmConfig.vcpus - 1}` : ""})`);
  // Real runs draw TRNG entropy from the host's CSPRNG; tests use the model's seeded source.
  const machine = await ScriptedMachine.create(loaded.config, { cwd: io.cwd, clock: { now: () => performance.now() * 1e6 }, log: io.err, entropy: (out) => randomFillSync(out) });
  try {
    return await runCall(machine, vmName, vcpuIndex, flags, fid, args, imm, conduit, io);
  } finally {
    machine.close();
  }
}

async function runCall(machine: ScriptedMachine, vmName: string, vcpuIndex: number, flags: Map<string, string | true>, fid: number, args: bigint[], imm: number, conduit: "smc" | "hvc", io: Io): Promise<number> {
  const vm = machine.vm(vmName);
  let vcpu = vm.vcpu(vcpuIndex);
  // Each `call` boots the VM afresh: vCPU 0 runs, the others are off until PSCI CPU_ON (DEN0022 §6.3).
  if (vcpu.power !== "on") throw new UsageError(`--vcpu ${vcpuIndex}: vCPU ${vcpuIndex} of ${vmName} is ${vcpu.power} at boot (only vCPU 0 runs until a PSCI CPU_ON); it cannot make a call`);
  if (flags.has("aarch32")) vcpu = vcpu.aarch32;
  const r = await vcpu.callAsync(conduit, fid, args, { imm });

  const d = decodeFid(fid);
  const width32 = !d.smc64 || vcpu.isAarch32;
  const signed = width32 ? BigInt(r.sw(0)) : BigInt.asIntN(64, r.x0);
  const shown = Math.max(4, lastChanged(r.regs, args, fid));
  if (flags.has("json")) {
    const regs: Record<string, string> = {};
    for (let n = 0; n < shown; n++) regs[`x${n}`] = hex64(r.x(n));
    io.out(
      JSON.stringify({
        vm: vmName,
        vcpu: vcpuIndex,
        fid: hex32(fid),
        name: d.name,
        conduit,
        aarch32: vcpu.isAarch32,
        outcome: r.outcome,
        ...regs,
        ret: signed.toString(),
        decision: r.decision,
        pcAdvance: r.pcAdvance,
      }),
    );
    return 0;
  }
  io.out(`${vmName} vCPU ${vcpuIndex}: ${conduit} ${hex32(fid)} ${d.name ?? ""}`.trimEnd());
  io.out(`  decision   ${r.decision.action} (${r.decision.rule})`);
  io.out(`  outcome    ${r.outcome}${r.pcAdvance ? `, PC + ${r.pcAdvance}` : ""}`);
  for (let n = 0; n < shown; n++) io.out(`  x${n.toString().padEnd(2)}        ${hex64(r.x(n))}${n === 0 ? `  (${signed})` : ""}`);
  return 0;
}

/** Results beyond x3 are shown when the call changed them (SMCCC 1.2+ calls may return up to x17). */
function lastChanged(after: readonly bigint[], args: readonly bigint[], fid: number): number {
  let last = 0;
  for (let n = 4; n <= 17; n++) {
    const before = n === 0 ? BigInt(fid) : (args[n - 1] ?? 0n);
    if (after[n] !== before) last = n + 1;
  }
  return last;
}
