/**
 * In-process router benchmark (issue 2): ns per call and calls per second through the full path
 * (domain → router → policy table → service → write-back → trace) for an emulated fast call and a
 * denied call, against a hand-written handler for the same call behind the same trap entry (the limit),
 * and the same with 1, 100 and 10,000 rules and with 1 and 1,000 VMs.
 */
import { Hypervisor, type Domain } from "../src/hypervisor/hypervisor.js";
import { parseConfigText, type Config } from "../src/policy/load.js";
import { esrFor } from "../src/smccc/esr.js";
import { measure, type Case, type Measurement } from "./harness.js";

const SMCCC_VERSION = 0x8000_0000;
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

function domains(cfg: Config): Domain[] {
  const r = Hypervisor.fromConfig(cfg);
  if (!r.ok) throw new Error("hypervisor");
  const ds = [...r.hypervisor.domains.values()];
  for (const d of ds) d.start();
  return ds;
}

/** A trap loop over the domains, round robin, for one FID: exactly what a backend does per trap. */
function trapCase(name: string, ds: Domain[], fid: number): Case {
  const regs = ds.map(() => new Uint32Array(36));
  return {
    name,
    run(n) {
      let acc = 0;
      const count = ds.length;
      for (let i = 0; i < n; i++) {
        const k = i % count;
        const r = regs[k]!;
        r[0] = fid;
        r[1] = 0;
        ds[k]!.trap(0, r, ESR_HVC, 0x3c5);
        acc += r[0]!;
      }
      return acc;
    },
  };
}

/**
 * The limit: a hand-written handler behind the same trap entry. It does what any hypervisor must for this
 * call: decode the trap class, check the ID, write the W result and clear x1-x3.
 */
function limitCase(): Case {
  const regs = new Uint32Array(36);
  const handler = (_vcpu: number, r: Uint32Array, esr: number, _pstate: number): number => {
    if (esr >>> 26 !== 0x16 && esr >>> 26 !== 0x17) return 4;
    if (r[0] === SMCCC_VERSION) {
      r[0] = 0x1_0002;
      r[1] = 0;
      for (let i = 2; i < 8; i++) r[i] = 0;
      return 0;
    }
    r[0] = 0xffff_ffff;
    r[1] = 0;
    return 0;
  };
  return {
    name: "hand-written handler (limit)",
    run(n) {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        regs[0] = SMCCC_VERSION;
        regs[1] = 0;
        handler(0, regs, ESR_HVC, 0x3c5);
        acc += regs[0]!;
      }
      return acc;
    },
  };
}

export interface RouterBenchResult {
  readonly measurements: Measurement[];
  readonly ratios: Record<string, number>;
}

export function routerBench(opts: { iterations: number; repetitions: number }): RouterBenchResult {
  const one = domains(config(1, 1));
  const cases: Case[] = [
    limitCase(),
    trapCase("emulated SMCCC_VERSION, 1 rule, 1 VM", one, SMCCC_VERSION),
    trapCase("denied SiP call, 1 rule, 1 VM", one, DENIED),
    trapCase("emulated, 100 rules", domains(config(1, 100)), SMCCC_VERSION),
    trapCase("emulated, 10,000 rules", domains(config(1, 10_000)), SMCCC_VERSION),
    trapCase("denied, 10,000 rules", domains(config(1, 10_000)), DENIED),
    trapCase("emulated, 1,000 VMs (round robin)", domains(config(1000, 1)), SMCCC_VERSION),
    trapCase("denied, 1,000 VMs (round robin)", domains(config(1000, 1)), DENIED),
  ];
  const m = measure(cases, opts);
  const ns = (i: number) => m[i]!.nsPerOp;
  return {
    measurements: m,
    ratios: {
      "emulated / limit": ns(1) / ns(0),
      "denied / limit": ns(2) / ns(0),
      "emulated 100 rules / 1 rule": ns(3) / ns(1),
      "emulated 10,000 rules / 1 rule": ns(4) / ns(1),
      "denied 10,000 rules / 1 rule": ns(5) / ns(2),
      "emulated 1,000 VMs / 1 VM": ns(6) / ns(1),
      "denied 1,000 VMs / 1 VM": ns(7) / ns(2),
    },
  };
}
