// Keeps each service README true: every function of its interface is listed there.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ARCH_FUNCTIONS } from "../smccc/functions/arch.js";
import { KVM_VENDOR_HYP_FUNCTIONS, PV_TIME_FUNCTIONS } from "../smccc/functions/hypervisor.js";
import { PSCI_FUNCTIONS } from "../smccc/functions/psci.js";
import type { FunctionTable } from "../smccc/functions/table.js";
import { TRNG_FUNCTIONS } from "../smccc/functions/trng.js";

const tables: [string, FunctionTable, (name: string) => string][] = [
  ["arch", ARCH_FUNCTIONS, (n) => n],
  ["psci", PSCI_FUNCTIONS, (n) => n.replace(/^PSCI_(?!VERSION|FEATURES|SET_SUSPEND_MODE|STAT_)/, "")],
  ["trng", TRNG_FUNCTIONS, (n) => n],
  ["pvtime", PV_TIME_FUNCTIONS, (n) => n],
  ["hyp-info", KVM_VENDOR_HYP_FUNCTIONS, (n) => n],
];

describe("service READMEs", () => {
  it.each(tables)("%s lists every function of its interface", (dir, table, shown) => {
    const readme = readFileSync(join(import.meta.dirname, dir, "README.md"), "utf8");
    for (const [name, def] of Object.entries(table)) {
      expect(readme, `${dir}/README.md names ${name}`).toContain(shown(name));
      for (const fid of [def.smc32, def.smc64]) if (fid !== undefined) expect(readme.toUpperCase(), `${dir}/README.md lists 0x${fid.toString(16)}`).toContain(fid.toString(16).toUpperCase().padStart(8, "0").slice(0, 6));
    }
  });
});
