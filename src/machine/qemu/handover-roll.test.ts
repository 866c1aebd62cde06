import { describe, expect, it } from "vitest";
import { AFFINITY_OFF, HandoverRoll } from "./handover-roll.js";

const ON = 0, ON_PENDING = 2;

describe("HandoverRoll: which CPUs of a handover VM are smcvisor's", () => {
  it("one vCPU: contained at its handover, with nothing to ask", () => {
    const r = new HandoverRoll(1);
    expect(r.contained).toBe(false);
    expect(r.handover(0)).toEqual([]);
    expect(r.contained).toBe(true);
    expect(r.list).toEqual([0]);
  });

  it("two CPUs handing over together: contained only once the second has, whatever order the answers come in", () => {
    const r = new HandoverRoll(2);
    expect(r.handover(0)).toEqual([1]);
    expect(r.contained).toBe(false);
    // vCPU 1 hands over before the machine's answer about it arrives: the answer (ON) changes nothing.
    expect(r.handover(1)).toEqual([]);
    expect(r.contained).toBe(false);
    r.answered(1, ON);
    expect(r.contained).toBe(true);
    expect(r.keptEl2).toEqual([]);
    expect(r.list).toEqual([0, 1]);
  });

  it("a CPU the machine reports running (ON or ON_PENDING) that does not hand over keeps the VM uncontained", () => {
    const r = new HandoverRoll(4);
    expect(r.handover(0)).toEqual([1, 2, 3]);
    r.answered(1, ON);
    r.answered(2, ON_PENDING);
    r.answered(3, AFFINITY_OFF);
    expect(r.contained).toBe(false);
    expect(r.keptEl2).toEqual([1, 2]);
    expect(r.handover(2)).toEqual([1, 3]);
    r.answered(1, ON);
    r.answered(3, AFFINITY_OFF);
    expect(r.keptEl2).toEqual([1]);
    expect(r.contained).toBe(false);
    // An error code from the machine (INVALID_PARAMETERS, -2) is not OFF: it is not taken as proof of anything.
    r.answered(3, -2);
    expect(r.keptEl2).toEqual([1, 3]);
  });

  it("refuses a second handover of one vCPU in a boot and vCPUs the VM does not have; a reset starts over", () => {
    const r = new HandoverRoll(2);
    r.handover(1);
    expect(r.handover(1)).toBeNull();
    for (const bad of [-1, 2, 0.5]) {
      expect(() => r.handover(bad)).toThrow(/no vCPU/);
      expect(() => r.answered(bad, ON)).toThrow(/no vCPU/);
    }
    r.reset();
    expect(r.started).toBe(false);
    expect(r.contained).toBe(false);
    expect(r.handover(1)).toEqual([0]);
    expect(() => new HandoverRoll(0)).toThrow(RangeError);
  });
});
