import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { removeStaleRamFiles } from "./machine.js";

describe("stale RAM files", () => {
  it("removes those of hypervisor processes that are gone, and nothing else", () => {
    const dir = mkdtempSync(join(tmpdir(), "smcvisor-shm-test-"));
    try {
      const mine = `smcvisor-${process.pid}-abc123-vm0`;
      const gone = "smcvisor-2147483646-abc123-vm0"; // no such process
      const other = "someone-else";
      for (const f of [mine, gone, other]) writeFileSync(join(dir, f), "x");
      expect(removeStaleRamFiles(dir)).toEqual([gone]);
      expect([mine, gone, other].map((f) => existsSync(join(dir, f)))).toEqual([true, false, true]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
