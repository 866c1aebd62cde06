/**
 * `smcvisor conform [--target smcvisor|qemu-builtin]`: runs the conformance cases in the bare-metal guest
 * from real EL1 code, under smcvisor (QEMU + the EL2 shim) and, as a peer, under QEMU's built-in PSCI, and
 * prints every case side by side: where the two differ, and which one the specification supports (the
 * case's expectation is the specification's rule). "absent" marks a function the target does not offer
 * (NOT_SUPPORTED for the case's first call), which the specification allows for optional functions.
 */
import type { Backend, Case, Params } from "../../test/conformance/case.js";
import { qemuBackend } from "../../test/conformance/qemu.js";
import { qemuBuiltinBackend } from "../../test/conformance/qemu-builtin.js";
import { allCases } from "../../test/conformance/suite.js";
import { caseFailures } from "../../test/conformance/verdict.js";
import { parseArgs, UsageError, type Io } from "./args.js";

/** QEMU's built-in PSCI: version 1.1, over HVC (the guest at EL1 has no EL2 or EL3 to take an SMC). */
const PARAMS: Params = { psci: "1.1", aarch32: false, conduit: "hvc" };
const TARGETS: Record<string, Backend> = { smcvisor: qemuBackend, "qemu-builtin": qemuBuiltinBackend };

type Verdict = { status: "pass" } | { status: "fail" | "absent" | "skip"; why: string };

async function verdict(b: Backend, c: Case): Promise<Verdict> {
  const missing = (c.needs ?? []).filter((n) => !b.capabilities.has(n));
  if (missing.length > 0) return { status: "skip", why: `cannot ${missing.join(", ")}` };
  try {
    const f = caseFailures(c, await b.run(c, PARAMS), PARAMS);
    if (f.length === 0) return { status: "pass" };
    // NOT_SUPPORTED for the case's first call: the target does not offer the function at all.
    if (/^step 0 \(.*\): x0 = (-1|0xffffffffffffffff), expected/.test(f[0]!)) return { status: "absent", why: f[0]! };
    return { status: "fail", why: f[0]! };
  } catch (e) {
    return { status: "fail", why: (e as Error).message.split("\n")[0]! };
  }
}

async function pool<T, R>(items: readonly T[], n: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  }));
  return out;
}

export async function conformCommand(argv: readonly string[], io: Io): Promise<number> {
  const { flags } = parseArgs(argv, ["json"], ["target", "filter"]);
  const t = flags.get("target") as string | undefined;
  if (t !== undefined && !(t in TARGETS)) throw new UsageError(`--target is ${Object.keys(TARGETS).join(" or ")}`);
  const targets = t ? [t] : Object.keys(TARGETS);
  const filter = flags.get("filter") as string | undefined;
  const cases = allCases(PARAMS).filter((c) => !filter || c.name.includes(filter));
  const rows = await pool(cases, 2, async (c) => ({ c, v: await Promise.all(targets.map((k) => verdict(TARGETS[k]!, c))) }));
  if (flags.has("json")) {
    io.out(JSON.stringify(rows.map((r) => ({ case: r.c.name, ...Object.fromEntries(targets.map((k, i) => [k, r.v[i]])) })), null, 2));
  } else {
    io.out(`conformance cases from the bare-metal guest at EL1, PSCI ${PARAMS.psci} over ${PARAMS.conduit.toUpperCase()}; "pass" means the specification's rule held`);
    io.out("");
    io.out(`${targets.map((k) => k.padEnd(13)).join(" ")} case`);
    for (const r of rows) {
      io.out(`${r.v.map((v) => v.status.padEnd(13)).join(" ")} ${r.c.name}`);
      r.v.forEach((v, i) => {
        if (v.status !== "pass") io.out(`${" ".repeat(14 * targets.length)}  ${targets[i]}: ${v.why}`);
      });
    }
    io.out("");
    for (const [i, k] of targets.entries()) {
      const n = (s: string) => rows.filter((r) => r.v[i]!.status === s).length;
      io.out(`${k}: ${n("pass")} pass, ${n("fail")} fail, ${n("absent")} not offered (NOT_SUPPORTED), ${n("skip")} skipped`);
    }
    if (targets.length === 2) io.out(`the two differ on ${rows.filter((r) => r.v[0]!.status !== r.v[1]!.status).length} of ${rows.length} cases`);
  }
  const mine = targets.indexOf("smcvisor");
  return mine >= 0 && rows.some((r) => r.v[mine]!.status === "fail") ? 1 : 0;
}
