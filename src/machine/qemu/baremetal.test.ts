import { describe, expect, it } from "vitest";
import { emptyReport, MAX_REPORT_ITEMS, parseGuestLine } from "./baremetal.js";

describe("the bare-metal guest's report reader", () => {
  it("reads each kind of line", () => {
    const r = emptyReport();
    for (const l of ["SMCV-BOOT", "SMCV-STEP 3 0x0 0x1", "SMCV-HALT 1", "SMCV-ENTRY 1 0x5", "SMCV-PROBE shim refused 0x96000010 0x40000000", "SMCV-DONE"]) expect(parseGuestLine(l, r)).toBe(true);
    expect(r.boots).toBe(1);
    expect(r.steps.get(3)).toEqual([0n, 1n]);
    expect([...r.halts]).toEqual([1]);
    expect(r.entries).toEqual([{ cpu: 1, x0: 5n }]);
    expect(r.probes.get("shim")).toEqual({ refused: true, esr: 0x96000010n, far: 0x40000000n });
    expect(r.done).toBe(true);
    expect(parseGuestLine("hello", r)).toBe(false);
  });

  it("keeps at most MAX_REPORT_ITEMS of a kind from a guest that never stops writing, and still sees DONE", () => {
    const r = emptyReport();
    for (let i = 0; i < MAX_REPORT_ITEMS * 3; i++) {
      parseGuestLine(`SMCV-STEP ${i} 0x0`, r);
      parseGuestLine(`SMCV-ERROR flood ${i}`, r);
      parseGuestLine("SMCV-STEP x", r); // unparseable: an error too
    }
    parseGuestLine("SMCV-DONE", r);
    expect(r.steps.size).toBeLessThanOrEqual(MAX_REPORT_ITEMS);
    expect(r.errors.length).toBeLessThanOrEqual(MAX_REPORT_ITEMS + 1);
    expect(r.errors.at(-1)).toMatch(/the rest are dropped/);
    expect(r.done).toBe(true);
  });
});
