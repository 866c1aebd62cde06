/**
 * In-process router benchmark (issue 2): ns per call and calls per second from the trap entry
 * (domain → router → answer cache or policy table and service → write-back → trace) for an emulated fast
 * call and a denied call, against a hand-written handler for the same call behind the same kind of call
 * site (the limit), and the same with 1, 100 and 10,000 rules and with 1 and 1,000 VMs. Also an emulated
 * call whose answer depends on its argument (the full path on every call) and SMCCC_VERSION with the
 * answer cache off, so the table shows what the cache is worth.
 */
import { Hypervisor, type Domain } from "../src/hypervisor/hypervisor.js";
import { parseConfigText, type Config } from "../src/policy/load.js";
import { esrFor } from "../src/smccc/esr.js";
import { measure, pairedRatio, type Case, type Measurement } from "./harness.js";

const SMCCC_VERSION = 0x8000_0000;
/** PSCI_AFFINITY_INFO(x1 = 0, x2 = 0): an emulated call that reads its arguments, so never cached. */
const PSCI_AFFINITY_INFO = 0x8400_0004;
const DENIED = 0x8200_0001;
const ESR_HVC = esrFor("hvc", false);

function config(vms: number, rules: number): Config {
  const grants: object[] = [{ owner: "sip", action: "deny" }];
  // Rules that do not match the measured calls, spread over exact IDs, ranges and owners like real policies.
  for (let i = 1; i < rules; i++) {
    if (i % 10 === 0) grants.push({ range: `0x${(0x8300_0000 + i * 16).toString(16)}-0x${(0x8300_0000 + i * 16 + 7).toString(16)}`, action: "forward" });
    else grants.push({ id: `0x${(0xc300_0000 + i).toString(16)}`, action: i % 3 ? "forward" : "deny", ...(i % 7 === 0 ? { args: { x1: [i] } } : {}) });
  }
  const all: Record<string, object> = {};
  for (let v = 0; v < vms; v++) all[`vm${v}`] = { smccc: "1.2", grants };
  const r = parseConfigText(JSON.stringify({ vms: all }), "json");
  if (!r.ok) throw new Error(JSON.stringify(r.errors.slice(0, 3)));
  return r.value;
}

function domains(cfg: Config, answerCache = true): Domain[] {
  const r = Hypervisor.fromConfig(cfg, { answerCache });
  if (!r.ok) throw new Error("hypervisor");
  const ds = [...r.hypervisor.domains.values()];
  for (const d of ds) d.start();
  return ds;
}

/** What a backend calls per trap: the domain, or the hand-written handler standing in for it. */
interface TrapEntry {
  trap(vcpu: number, regs: Uint32Array, esr: number, pstate: number): number | Promise<number>;
}

/**
 * The loop every smcvisor case runs: a backend's call site, which sees domains only (the QEMU channel
 * calls `domain.trap`), so V8 may inline what it likes, as it would in a backend. Round robin over the
 * entries, one register file each.
 */
function trapLoop(entries: readonly TrapEntry[], regs: readonly Uint32Array[], fid: number, n: number, burst: number): number {
  let acc = 0;
  const count = entries.length;
  for (let i = 0, k = 0, b = 0; i < n; i++) {
    const r = regs[k]!;
    r[0] = fid;
    r[1] = 0;
    entries[k]!.trap(0, r, ESR_HVC, 0x3c5);
    acc += r[0]!;
    if (++b === burst) {
      b = 0;
      if (++k === count) k = 0;
    }
  }
  return acc;
}

/**
 * The same loop for the hand-written handler. A separate function on purpose: V8 keeps call feedback per
 * function, so the limit's call site sees only its own receiver and inlines it, as a backend compiled
 * around that handler would. One shared loop would make the comparison depend on which receivers V8 saw
 * first (inlined, polymorphic or megamorphic: between 1.7x and 4x for the same code in our runs).
 */
function limitLoop(entries: readonly HandWritten[], regs: readonly Uint32Array[], fid: number, n: number, burst: number): number {
  let acc = 0;
  const count = entries.length;
  for (let i = 0, k = 0, b = 0; i < n; i++) {
    const r = regs[k]!;
    r[0] = fid;
    r[1] = 0;
    entries[k]!.trap(0, r, ESR_HVC, 0x3c5);
    acc += r[0]!;
    if (++b === burst) {
      b = 0;
      if (++k === count) k = 0;
    }
  }
  return acc;
}

/** `burst` calls from one VM before the next VM's: 1 is strict round robin, a cache worst case. */
function trapCase(name: string, entries: readonly Domain[], fid: number, burst = 1): Case {
  const regs = entries.map(() => new Uint32Array(36));
  return { name, run: (n) => trapLoop(entries, regs, fid, n, burst) };
}

function limitCase(name: string, entries: readonly HandWritten[], fid: number): Case {
  const regs = entries.map(() => new Uint32Array(36));
  return { name, run: (n) => limitLoop(entries, regs, fid, n, 1) };
}

/**
 * The limit: a hand-written handler behind the same trap entry. It does what any hypervisor must for this
 * call: decode the trap class, check the ID, write the W result and clear x1-x3.
 */
class HandWritten implements TrapEntry {
  trap(_vcpu: number, r: Uint32Array, esr: number, _pstate: number): number {
    const ec = esr >>> 26;
    if (ec !== 0x16 && ec !== 0x17) return 4;
    r[0] = r[0] === SMCCC_VERSION ? 0x1_0002 : 0xffff_ffff;
    // Written out, as the router writes them: V8 does not unroll a loop over them, and the loop alone
    // would cost this handler about 10 ns (3x its real cost) and flatter every ratio against it.
    r[1] = 0;
    r[2] = 0;
    r[3] = 0;
    r[4] = 0;
    r[5] = 0;
    r[6] = 0;
    r[7] = 0;
    return 0;
  }
}

export interface RouterBenchResult {
  readonly measurements: Measurement[];
  readonly ratios: Record<string, number>;
}

export function routerBench(opts: { iterations: number; repetitions: number }): RouterBenchResult {
  const one = domains(config(1, 1));
  const cases: Case[] = [
    limitCase("hand-written handler (limit)", [new HandWritten()], SMCCC_VERSION),
    trapCase("emulated SMCCC_VERSION, 1 rule, 1 VM", one, SMCCC_VERSION),
    trapCase("denied SiP call, 1 rule, 1 VM", one, DENIED),
    trapCase("emulated PSCI_AFFINITY_INFO (full path)", one, PSCI_AFFINITY_INFO),
    trapCase("emulated SMCCC_VERSION, answer cache off", domains(config(1, 1), false), SMCCC_VERSION),
    trapCase("emulated, 100 rules", domains(config(1, 100)), SMCCC_VERSION),
    trapCase("emulated, 10,000 rules", domains(config(1, 10_000)), SMCCC_VERSION),
    trapCase("denied, 10,000 rules", domains(config(1, 10_000)), DENIED),
    trapCase("emulated, 1,000 VMs (round robin)", domains(config(1000, 1)), SMCCC_VERSION),
    trapCase("denied, 1,000 VMs (round robin)", domains(config(1000, 1)), DENIED),
    trapCase("emulated, 1,000 VMs (bursts of 64 calls)", domains(config(1000, 1)), SMCCC_VERSION, 64),
    trapCase("emulated full path, 1,000 VMs (round robin)", domains(config(1000, 1)), PSCI_AFFINITY_INFO),
    limitCase("limit, 1,000 register files (round robin)", Array.from({ length: 1000 }, () => new HandWritten()), SMCCC_VERSION),
  ];
  const m = measure(cases, { ...opts, warmupRounds: 200 });
  const r = (a: number, b: number) => pairedRatio(m[a]!, m[b]!);
  return {
    measurements: m,
    ratios: {
      "emulated / limit": r(1, 0),
      "denied / limit": r(2, 0),
      "emulated full path / limit": r(3, 0),
      "emulated, answer cache off / limit": r(4, 0),
      "emulated 100 rules / 1 rule": r(5, 1),
      "emulated 10,000 rules / 1 rule": r(6, 1),
      "denied 10,000 rules / 1 rule": r(7, 2),
      "emulated 1,000 VMs round robin / 1 VM": r(8, 1),
      "denied 1,000 VMs round robin / 1 VM": r(9, 2),
      "emulated 1,000 VMs in bursts / 1 VM": r(10, 1),
      "emulated full path 1,000 VMs round robin / 1 VM": r(11, 3),
      "limit over 1,000 register files / over 1": r(12, 0),
    },
  };
}
