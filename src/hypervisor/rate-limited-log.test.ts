import { describe, expect, it } from "vitest";
import { RateLimitedLog } from "./rate-limited-log.js";

describe("the rate-limited log", () => {
  it("passes a burst per key, then only the 2^k-th message", () => {
    const lines: string[] = [];
    const log = new RateLimitedLog((l) => lines.push(l), 3);
    for (let i = 0; i < 100; i++) log.log("k", "m");
    // 1, 2, 3, then 4, 8, 16, 32, 64.
    expect(lines).toHaveLength(8);
    expect(log.count("k")).toBe(100);
  });

  it("a guest that varies its keys gets no fresh allowance once the key table is full", () => {
    const lines: string[] = [];
    const log = new RateLimitedLog((l) => lines.push(l), 5, 16);
    for (let i = 0; i < 100_000; i++) log.log(`vm|key ${i}`, `message ${i}`);
    // 16 keys with a burst each, then every other key shares one count: 5 + log2(~100,000) more lines.
    expect(lines.length).toBeLessThanOrEqual(16 + 5 + 17);
    expect(log.count("vm|key 99999")).toBe(0);
    expect(log.count("vm|key 15")).toBe(1);
  });
});
