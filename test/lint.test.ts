// The type check and the linter, including the rules that keep the layer order of docs/architecture.md, run
// as part of `npm test` so CI enforces them.
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { RuleTester } from "eslint";
import { describe, expect, it } from "vitest";
import layers from "../eslint-rules/layers.js";

const ROOT = resolve(import.meta.dirname, "..");

function runTool(cmd: string, args: string[]): { status: number; output: string } {
  try {
    return { status: 0, output: execFileSync(cmd, args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { status: err.status, output: `${err.stdout}${err.stderr}` };
  }
}

describe("static checks", () => {
  it("type-checks under strict TypeScript", () => {
    const r = runTool("node", ["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."]);
    expect(r.output).toBe("");
    expect(r.status).toBe(0);
  }, 120_000);

  it("passes the linter", () => {
    const r = runTool("node", ["node_modules/eslint/bin/eslint.js", "."]);
    expect(r.output).toBe("");
    expect(r.status).toBe(0);
  }, 120_000);
});

describe("layer rules", () => {
  const tester = new RuleTester({ languageOptions: { ecmaVersion: 2022, sourceType: "module" } });

  it("forbid upward and sibling imports, allow downward ones", () => {
    tester.run("layer-direction", layers.rules["layer-direction"], {
      valid: [
        { code: 'import { x } from "../smccc/fid.js";', filename: "/p/src/router/router.ts" },
        { code: 'import { x } from "./call.js";', filename: "/p/src/router/router.ts" },
        { code: 'import { x } from "../../router/call.js";', filename: "/p/src/services/arch/arch.ts" },
      ],
      invalid: [
        { code: 'import { x } from "../router/router.js";', filename: "/p/src/smccc/fid.ts", errors: [{ messageId: "upward" }] },
        { code: 'import { x } from "../../firmware/monitor/m.js";', filename: "/p/src/services/arch/arch.ts", errors: [{ messageId: "sibling" }] },
        { code: 'export * from "../machine/x.js";', filename: "/p/src/hypervisor/h.ts", errors: [{ messageId: "upward" }] },
      ],
    });
  });

  it("keep the core below machine/ free of I/O, time and randomness", () => {
    tester.run("pure-core", layers.rules["pure-core"], {
      valid: [
        { code: 'import fs from "node:fs";', filename: "/p/src/machine/qemu/q.ts" },
        { code: "const t = Date.now();", filename: "/p/src/cli/main.ts" },
      ],
      invalid: [
        { code: 'import fs from "node:fs";', filename: "/p/src/router/r.ts", errors: [{ messageId: "builtin" }] },
        { code: "const t = Date.now();", filename: "/p/src/policy/p.ts", errors: [{ messageId: "ambient" }] },
        { code: "const r = Math.random();", filename: "/p/src/services/trng/t.ts", errors: [{ messageId: "ambient" }] },
      ],
    });
  });
});
