import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { makeDirectory, unwritable, writeOutput } from "./output.js";

const root = mkdtempSync(join(tmpdir(), "smcv-output-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("output paths", () => {
  it("creates missing parent directories", () => {
    const path = join(root, "a", "b", "trace.json");
    expect(unwritable(path)).toBeNull();
    expect(statSync(join(root, "a", "b")).isDirectory()).toBe(true);
    expect(writeOutput(path, () => "{}")).toBeNull();
  });

  it("names a parent that is a file", () => {
    writeFileSync(join(root, "file"), "");
    expect(unwritable(join(root, "file", "x", "trace.json"))).toMatch(/part of its directory is not a directory/);
    expect(() => makeDirectory(join(root, "file", "x"))).toThrow();
  });

  it("refuses a path under /proc instead of hanging (Node's recursive mkdir never returns there)", () => {
    expect(unwritable("/proc/smcvisor-no-such/dir/trace.json")).toMatch(/^cannot write \/proc\/smcvisor-no-such\/dir\/trace\.json: /);
    expect(writeOutput("/proc/self/smcvisor/trace.json", () => "{}")).toMatch(/^cannot write /);
  });

  it("refuses a directory as the file", () => {
    expect(unwritable(root)).toBe(`cannot write ${root}: it is a directory`);
  });
});
