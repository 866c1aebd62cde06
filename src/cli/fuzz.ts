/**
 * `smcvisor fuzz --config FILE [--calls N] [--seed S] [--json]`: random and mutated calls from every VM of
 * a config (or a scenario's) through the in-process core, with the isolation invariants checked after every
 * call (src/fuzz/campaign.ts, docs/fuzz.md). Prints the rate and the first violation with the command that
 * replays it. Exit 0 with no violation, 1 with one, 2 on a usage or config error.
 */
import { randomInt } from "node:crypto";
import { resolve } from "node:path";
import { runCampaign, type CampaignOptions, type CampaignResult } from "../fuzz/campaign.js";
import { parseSeed } from "../fuzz/random.js";
import { loadScenario } from "../machine/qemu/scenario.js";
import type { Config } from "../policy/load.js";
import { hex32 } from "../smccc/fid.js";
import { parseArgs, UsageError, type Io } from "./args.js";
import { loadConfigFile, printConfigErrors } from "./config-file.js";

const USAGE = "usage: smcvisor fuzz --config FILE [--calls N] [--seed S] [--json]";
export const DEFAULT_CALLS = 100_000;
const MAX_CALLS = 1_000_000_000;

/** `hooks`: tests only (a deliberately broken handler, to see the command report it); the CLI passes none. */
export async function fuzzCommand(argv: readonly string[], io: Io, hooks: Pick<CampaignOptions, "hypervisor" | "tamper"> = {}): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ["json"], ["config", "calls", "seed"]);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"\n${USAGE}`);
  const file = flags.get("config");
  if (typeof file !== "string") throw new UsageError(`--config is required\n${USAGE}`);
  const calls = flags.has("calls") ? parseCount(flags.get("calls") as string) : DEFAULT_CALLS;
  let seed: number;
  if (flags.has("seed")) {
    const s = parseSeed(flags.get("seed") as string);
    if (s === null) throw new UsageError(`--seed: "${flags.get("seed") as string}" is not an integer from 0 to 2^53 - 1`);
    seed = s;
  } else seed = randomInt(0, 2 ** 32);

  const loaded = loadConfig(file, io);
  if (!loaded.ok) return 2;
  const result = await runCampaign({ ...hooks, config: loaded.config, calls, seed, cwd: io.cwd });
  const replay = `smcvisor fuzz --config ${file} --seed ${seed} --calls ${result.violation ? result.violation.call + 1 : calls}`;
  const rate = result.elapsedMs > 0 ? (result.calls * 1000) / result.elapsedMs : 0;
  if (flags.has("json")) {
    io.out(JSON.stringify({ config: file, vms: loaded.config.vms.map((v) => v.name), seed, calls: result.calls, elapsedMs: Math.round(result.elapsedMs), callsPerSecond: Math.round(rate), violation: result.violation ? { ...result.violation, fid: hex32(result.violation.fid) } : null, replay: result.violation ? replay : null, stats: result.stats }));
    return result.violation ? 1 : 0;
  }
  report(file, loaded.config, result, rate, replay, io);
  return result.violation ? 1 : 0;
}

/** The config in FILE: a config file, or a scenario (`smcvisor run`'s input), whose config is used. */
function loadConfig(file: string, io: Io): { ok: true; config: Config } | { ok: false } {
  const loaded = loadConfigFile(file, io);
  if (loaded.ok) return { ok: true, config: loaded.config };
  const scenario = loadScenario(resolve(io.cwd, file));
  if (scenario.ok) return { ok: true, config: scenario.scenario.config };
  printConfigErrors(loaded.source, loaded.errors, io);
  return { ok: false };
}

function parseCount(text: string): number {
  const t = text.replace(/_/g, "");
  const n = /^[0-9]+$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_CALLS) throw new UsageError(`--calls: "${text}" is not a whole number from 1 to ${MAX_CALLS}`);
  return n;
}

/** 43.3k, 1.25M: a rate at a glance. */
function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0);
}

function report(file: string, config: Config, r: CampaignResult, rate: number, replay: string, io: Io): void {
  const s = r.stats;
  io.out(`smcvisor fuzz: ${file}, ${config.vms.length} VMs (${config.vms.map((v) => v.name).join(", ")}), seed ${r.seed}`);
  io.out(`  ${r.calls} calls in ${(r.elapsedMs / 1000).toFixed(2)} s: ${fmt(rate)} calls/s, every call checked (and made again with the answer cache off)`);
  io.out(`  outcomes: ${Object.entries(s.outcomes).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(", ")}; host restarts and wake-ups: ${s.hostActions}`);
  if (config.platform.tee) io.out(`  OP-TEE: ${s.optee.sessions} sessions opened, ${s.optee.succeeded} messages completed, ${s.optee.rpcs} RPCs answered; ${s.exposedPages} pages of VM RAM mapped in place, compared after other VMs' calls`);
  if (s.handlerErrors > 0) io.out(`  handler failures (the guest got -1; contained): ${s.handlerErrors}, first at ${s.firstHandlerError}`);
  const v = r.violation;
  if (v === null) {
    io.out("  no violation: no exception, registers beyond the results kept, no VM's RAM or held state touched by another, quotas, trace counts, answer cache on = off");
    return;
  }
  const where = v.exact ? `at call ${v.call}${v.vm ? ` (${v.vm} vCPU ${v.vcpu}, ${v.conduit} ${hex32(v.fid)})` : ""}` : `by one of calls ${v.since}-${v.call} (noticed after call ${v.call})`;
  io.out(`VIOLATION (${v.kind}) ${where}: ${v.message}`);
  io.out(`  replay: ${replay}`);
}
