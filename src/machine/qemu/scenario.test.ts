import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadScenario } from "./scenario.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "smcvisor-scenario-"));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const POLICY = "delegates:\n  info: { module: info.ts }\nvms:\n  a: {}\n";

describe("loadScenario: where relative paths are resolved", () => {
  it("resolves a policy file's delegates against the policy file's directory, not the scenario's", () => {
    const root = tree({ "scenarios/s.yaml": "policy: ../policies/p.yaml\nguests:\n  a: { kernel: debian }\n", "policies/p.yaml": POLICY });
    const r = loadScenario(join(root, "scenarios/s.yaml"));
    expect(r.ok && r.scenario.config.baseDir).toBe(join(root, "policies"));
    expect(r.ok && r.scenario.dir).toBe(join(root, "scenarios"));
  });

  it("resolves inline policy's delegates against the scenario's directory", () => {
    const root = tree({ "scenarios/s.yaml": `${POLICY}guests:\n  a: { kernel: debian }\n` });
    const r = loadScenario(join(root, "scenarios/s.yaml"));
    expect(r.ok && r.scenario.config.baseDir).toBe(join(root, "scenarios"));
  });

  it("names the policy file when it cannot be read", () => {
    const root = tree({ "s.yaml": "policy: missing.yaml\nguests:\n  a: { kernel: debian }\n" });
    const r = loadScenario(join(root, "s.yaml"));
    expect(!r.ok && r.errors.map((e) => e.path)).toEqual(["policy"]);
    expect(!r.ok && r.errors[0]!.message).toMatch(/^cannot read missing\.yaml: /);
  });
});
