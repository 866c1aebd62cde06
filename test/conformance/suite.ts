/**
 * The conformance suite: every case, for every parameter set, against one backend. Cases the backend
 * cannot run are registered as skipped, with the reason in their name; cases marked with a known gap (a
 * real bug the case finds) as expected failures, with the gap in their name: they fail the suite once they
 * pass, so the mark goes when the bug does.
 */
import { describe, it } from "vitest";
import type { Backend, Case, Params } from "./case.js";
import { checkCase } from "./check.js";
import { ffaCases } from "./ffa.cases.js";
import { psciCases } from "./psci.cases.js";
import { pvtimeCases } from "./pvtime.cases.js";
import { trngCases } from "./trng.cases.js";

export const ALL_PARAMS: Params[] = (["0.2", "1.0", "1.1", "1.3"] as const).flatMap((psci) =>
  [false, true].flatMap((aarch32) => (["hvc", "smc"] as const).map((conduit) => ({ psci, aarch32, conduit }))),
);

export function allCases(p: Params): Case[] {
  return [...psciCases(p), ...trngCases(p), ...pvtimeCases(p), ...ffaCases(p)];
}

export function conformanceSuite(backend: Backend, params: readonly Params[] = ALL_PARAMS, opts: { concurrent?: boolean } = {}): void {
  const test = opts.concurrent ? it.concurrent : it;
  for (const p of params) {
    describe(`${backend.name}: PSCI ${p.psci}, ${p.aarch32 ? "AArch32" : "AArch64"} caller, ${p.conduit.toUpperCase()}`, () => {
      for (const c of allCases(p)) {
        const missing = (c.needs ?? []).filter((n) => !backend.capabilities.has(n));
        if (missing.length > 0 || (p.aarch32 && !backend.capabilities.has("aarch32"))) {
          const reason = p.aarch32 && !backend.capabilities.has("aarch32") ? "AArch32 callers" : missing.join(", ");
          it.skip(`${c.name} [skipped: ${backend.name} cannot do ${reason}]`, () => {});
          continue;
        }
        if (c.knownGap !== undefined) {
          test.fails(`${c.name} [known gap: ${c.knownGap}]`, async () => checkCase(c, await backend.run(c, p), p), 60_000);
          continue;
        }
        test(c.name, async () => checkCase(c, await backend.run(c, p), p), 60_000);
      }
    });
  }
}
