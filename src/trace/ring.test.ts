import { describe, expect, it } from "vitest";
import { toChromeTrace } from "./chrome.js";
import { FLAG_SMC, TraceRing } from "./ring.js";

function fill(ring: TraceRing, n: number) {
  const vm = ring.registerVm("dom0");
  const label = ring.intern("dom0|default:arch");
  for (let i = 0; i < n; i++) ring.record(vm, i % 2, FLAG_SMC, 0x8000_0000, 0, label, 0, 0x1_0002, 0, i * 1000, 100);
}

describe("trace ring", () => {
  it("keeps the newest events and counts the dropped ones", () => {
    const ring = new TraceRing(8);
    fill(ring, 20);
    const events = ring.events();
    expect(events).toHaveLength(8);
    expect(events[0]!.seq).toBe(12);
    expect(events[7]!.seq).toBe(19);
    expect(ring.total).toBe(20);
    expect(ring.dropped).toBe(12);
  });

  it("decodes events and keeps per-rule counters beyond the ring", () => {
    const ring = new TraceRing(4);
    fill(ring, 10);
    expect(ring.latest()).toMatchObject({ vm: "dom0", vcpu: 1, conduit: "smc", fid: 0x8000_0000, action: "emulate", rule: "default:arch", x0: 0x1_0002n, outcome: "return" });
    expect(ring.counters()).toEqual([{ key: "dom0|default:arch", calls: 10 }]);
  });

  it("counts every call per label exactly, at any point of any lap, whether recorded or put", () => {
    for (const capacity of [1, 2, 4, 8]) {
      const ring = new TraceRing(capacity);
      const vm = ring.registerVm("a");
      const labels = ["a|x", "a|y", "a|z"].map((l) => ring.intern(l));
      const want = [0, 0, 0];
      for (let i = 0; i < 37; i++) {
        const k = (i * 7) % 3;
        if (i % 2 === 0) ring.record(vm, 0, 0, 0x8000_0000 + i, 0, labels[k]!, 0, i, 0, 0, 0);
        else {
          // The router's hot paths: words packed by the caller.
          ring.put(vm, 0, 0x8000_0000 + i, labels[k]!, i, 0);
        }
        want[k]!++;
        const got = Object.fromEntries(ring.counters().map((c) => [c.key, c.calls]));
        expect(got, `capacity ${capacity}, after ${i + 1} calls`).toEqual(Object.fromEntries(["a|x", "a|y", "a|z"].map((l, j) => [l, want[j]]).filter(([, n]) => (n as number) > 0)));
        expect(ring.latest()!.fid).toBe(0x8000_0000 + i);
        expect(ring.total).toBe(i + 1);
      }
    }
  });

  it("exports Chrome trace-event JSON with a process per VM and a thread per vCPU", () => {
    const ring = new TraceRing(16, true);
    fill(ring, 3);
    const t = toChromeTrace(ring.events());
    const meta = t.traceEvents.filter((e) => e.ph === "M");
    expect(meta.map((e) => [e.name, e.args])).toEqual([
      ["process_name", { name: "dom0" }],
      ["thread_name", { name: "vCPU 0" }],
      ["thread_name", { name: "vCPU 1" }],
    ]);
    const calls = t.traceEvents.filter((e) => e.ph === "X");
    expect(calls).toHaveLength(3);
    expect(calls[1]).toMatchObject({ name: "SMCCC_VERSION", ts: 1, dur: 0.1, tid: 1, args: { fid: "0x80000000", rule: "default:arch", x0: "0x10002" } });
    expect(JSON.parse(JSON.stringify(t))).toEqual(t);
  });

  it("marks live policy changes as process-wide instants in their VM's process, one for a VM that made no call too", () => {
    const ring = new TraceRing(16, true);
    fill(ring, 3);
    const t = toChromeTrace(ring.events(), [{ vm: "dom0", at: 1500 }, { vm: "quiet", at: 2500 }]);
    const marks = t.traceEvents.filter((e) => e.ph === "i");
    expect(marks).toEqual([
      { name: "policy change", cat: "policy", ph: "i", s: "p", ts: 1.5, pid: 1, tid: 0, args: { vm: "dom0" } },
      { name: "policy change", cat: "policy", ph: "i", s: "p", ts: 2.5, pid: 2, tid: 0, args: { vm: "quiet" } },
    ]);
    expect(t.traceEvents.find((e) => e.ph === "M" && e.pid === 2)).toMatchObject({ name: "process_name", args: { name: "quiet" } });
  });

  it("rounds the capacity up to a power of two and records no times without a clock", () => {
    const ring = new TraceRing(5);
    expect(ring.capacity).toBe(8);
    fill(ring, 1);
    expect(ring.latest()).toMatchObject({ start: 0, duration: 0 });
  });

  it("refuses a zero capacity", () => {
    expect(() => new TraceRing(0)).toThrow(RangeError);
  });
});

describe("eventsSince", () => {
  it("reads from a sequence number on, at most `max`, and never before what the ring still holds", () => {
    const t = new TraceRing(8);
    const vm = t.registerVm("a");
    for (let i = 0; i < 20; i++) t.record(vm, 0, 0, i, 0, t.intern("a|r"), 0, 0, 0, 0, 0);
    expect(t.eventsSince(15, 100).map((e) => e.fid)).toEqual([15, 16, 17, 18, 19]);
    expect(t.eventsSince(15, 2).map((e) => e.seq)).toEqual([15, 16]);
    // 0-11 were dropped: reading from 0 starts at the oldest kept.
    expect(t.eventsSince(0, 3).map((e) => e.seq)).toEqual([12, 13, 14]);
    expect(t.eventsSince(20, 5)).toEqual([]);
  });
});
