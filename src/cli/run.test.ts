/** `smcvisor run`'s report, without QEMU: what a run found, from made-up exits, consoles and trace events. */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { VmExit } from "../machine/qemu/qemu-vm.js";
import type { GuestSpec } from "../machine/qemu/scenario.js";
import { toChromeTrace, HYPERVISOR_PROCESS_NAME } from "../trace/chrome.js";
import { FLAG_HYPERVISOR, FLAG_SMC, HYPERVISOR_VM, TraceRing, type TraceEvent } from "../trace/ring.js";
import { ConsoleLog } from "./console-log.js";
import { finishRun, vmReport, type RunReport } from "./run.js";
import { wakeSummary as wakeSummaryLine } from "./run.js";

const PSCI_CPU_ON = 0xc400_0003;
const PSCI_VERSION = 0x8400_0000;

function guest(expect: Partial<GuestSpec["expect"]> = {}): GuestSpec {
  return { kernel: "k", cmdline: "", boots: 1, expect: { console: [], notConsole: [], calls: [], denied: [], everyBoot: [], ...expect } } as GuestSpec;
}

const exit = (name: string): VmExit => ({ name, state: "off", reason: "PSCI_SYSTEM_OFF", localCalls: 0n, aborts: 0n, boots: 1 });

/** A trace in which VM "hypervisor" calls PSCI_VERSION, and the hypervisor itself calls CPU_ON for it. */
function traceWithAVmNamedHypervisor(): TraceEvent[] {
  const ring = new TraceRing(64);
  const vm = ring.registerVm("hypervisor");
  ring.record(vm, 0, FLAG_SMC, PSCI_VERSION, 0, ring.intern("hypervisor|default:psci"), 0, 0x1_0001, 0, 0, 0);
  ring.record(HYPERVISOR_VM, 0, FLAG_HYPERVISOR | FLAG_SMC, PSCI_CPU_ON, 1, ring.intern("psci: power on vCPU 1 (for hypervisor)"), 0, 0, 0, 0, 0);
  return ring.events();
}

describe("a VM named hypervisor is not the hypervisor", () => {
  it("in the run summary and its expectations: the hypervisor's calls are not the VM's", () => {
    const events = traceWithAVmNamedHypervisor();
    const r = vmReport(exit("hypervisor"), guest({ calls: ["PSCI_CPU_ON", "PSCI_VERSION"] }), new ConsoleLog(guest().expect), events);
    expect(r.calls).toBe(1);
    expect([...r.byService]).toEqual([["Standard Secure", 1]]);
    expect(r.failures).toEqual(["the trace has no PSCI_CPU_ON call"]);
  });

  it("in the Chrome trace: a process each, and the hypervisor's has a name no VM can have", () => {
    const t = toChromeTrace(traceWithAVmNamedHypervisor());
    const processes = t.traceEvents.filter((e) => e.name === "process_name").map((e) => [e.pid, (e.args as { name: string }).name]);
    expect(processes).toEqual([
      [1, "hypervisor"],
      [2, HYPERVISOR_PROCESS_NAME],
    ]);
    const calls = t.traceEvents.filter((e) => e.ph === "X");
    expect(calls.map((e) => [e.name, e.pid])).toEqual([
      ["PSCI_VERSION", 1],
      ["PSCI_CPU_ON", 2],
    ]);
  });
});

describe("the summary survives a trace that cannot be written after the run", () => {
  const report = (): RunReport => {
    const events = traceWithAVmNamedHypervisor();
    const v = vmReport(exit("hypervisor"), guest(), new ConsoleLog(guest().expect), events);
    return { ok: true, vms: [v], events, dropped: 0, policyChanges: [] };
  };

  it("prints every VM's summary, says the trace was not written, and exits 1", () => {
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: () => {}, cwd: "/" };
    expect(finishRun(report(), "/dev/null/x.json", false, io)).toBe(1);
    expect(out.join("\n")).toMatch(/summary\n {2}hypervisor: off \(PSCI_SYSTEM_OFF\); 1 calls[\s\S]*trace: NOT WRITTEN: cannot write \/dev\/null\/x\.json[\s\S]*FAILED/);
    const json: string[] = [];
    expect(finishRun(report(), "/dev/null/x.json", true, { ...io, out: (l) => json.push(l) })).toBe(1);
    expect(JSON.parse(json.join("\n"))).toMatchObject({ ok: false, traceError: expect.stringMatching(/cannot write/), vms: [{ name: "hypervisor", calls: 1 }] });
  });

  it("says the counts are partial when the trace ring dropped events", () => {
    const out: string[] = [];
    finishRun({ ...report(), dropped: 5 }, join(mkdtempSync(join(tmpdir(), "smcvisor-run-")), "t.json"), false, { out: (l) => out.push(l), err: () => {}, cwd: "/" });
    expect(out).toContain("  (calls counted from the 2 most recent trace events; 5 older ones were dropped)");
    out.length = 0;
    finishRun(report(), join(mkdtempSync(join(tmpdir(), "smcvisor-run-")), "t.json"), false, { out: (l) => out.push(l), err: () => {}, cwd: "/" });
    expect(out.some((l) => l.includes("most recent trace events"))).toBe(false);
  });

  it("gives a VM that made no call no owner line", () => {
    const events = traceWithAVmNamedHypervisor();
    const quiet = vmReport(exit("quiet"), guest(), new ConsoleLog(guest().expect), events);
    const out: string[] = [];
    finishRun({ ...report(), vms: [...report().vms, quiet] }, join(mkdtempSync(join(tmpdir(), "smcvisor-run-")), "t.json"), false, { out: (l) => out.push(l), err: () => {}, cwd: "/" });
    expect(out.find((l) => l.startsWith("  quiet: "))).toMatch(/; 0 calls, /);
    expect(out.filter((l) => l.startsWith("    by owner:"))).toEqual(["    by owner: Standard Secure 1"]);
  });

  it("writes the trace when it can", () => {
    const path = join(mkdtempSync(join(tmpdir(), "smcvisor-run-")), "sub", "t.json");
    expect(finishRun(report(), path, false, { out: () => {}, err: () => {}, cwd: "/" })).toBe(0);
    expect(JSON.parse(readFileSync(path, "utf8")).traceEvents.length).toBeGreaterThan(0);
  });
});

describe("a scenario's console", () => {
  it("keeps a bounded part of a console that never stops, and checks every line as it comes", () => {
    const log = new ConsoleLog({ console: ["early", "/^late \\d+$/"], notConsole: ["forbidden"], everyBoot: ["ready"] }, 10_000);
    log.add("SMCV-GUEST up");
    log.add("early");
    for (let i = 0; i < 200_000; i++) log.add(`line ${i} ${"x".repeat(i % 50)}`);
    log.add("a forbidden line in the middle that is not kept");
    for (let i = 0; i < 100_000; i++) log.add(`more ${i}`);
    log.add("ready");
    log.add("late 7");
    const lines = log.lines;
    expect(lines.reduce((n, l) => n + l.length, 0)).toBeLessThanOrEqual(10_000 + 100);
    expect(lines[0]).toBe("SMCV-GUEST up");
    expect(lines.at(-1)).toBe("late 7");
    expect(lines.some((l) => /^\[smcvisor: \d+ console lines not kept\]$/.test(l))).toBe(true);
    expect(log.failures(1)).toEqual(['console showed "forbidden": a forbidden line in the middle that is not kept']);
  });

  it("reports each boot's missing lines and the boot count", () => {
    const log = new ConsoleLog({ console: ["never"], notConsole: [], everyBoot: ["ok"] });
    for (const l of ["SMCV-GUEST up", "ok", "SMCV-GUEST up", "nope"]) log.add(l);
    expect(log.failures(3)).toEqual(["the console shows 2 boot(s), not 3", 'boot 2: console never showed "ok"', 'console never showed "never"']);
  });
});

describe("the summary's suspend line", () => {
  const stats = (wakes: number, irq: number, host: number, bound: number, samples: number[]) => ({ wakes, irq, host, bound, blocked: 0, latency: { count: samples.length, last: samples.at(-1) ?? 0, max: Math.max(0, ...samples), sum: BigInt(samples.reduce((a, b) => a + b, 0)) }, samples });
  it("counts every vCPU's waits by cause and gives the median timer latency in µs; nothing without waits", () => {
    const exit = { name: "vm", state: "off" as const, reason: "x", localCalls: 0n, aborts: 0n, boots: 1 };
    expect(wakeSummaryLine({ ...exit, wakes: [stats(3, 2, 1, 0, [625, 6250]), stats(2, 1, 0, 1, [125])] })).toBe(
      "suspend wake-ups: 5 (3 by the guest's interrupts, 1 by the host, 1 standby bounds); timer wake-up latency median 10 µs over the last 3",
    );
    expect(wakeSummaryLine({ ...exit, wakes: [stats(1, 0, 1, 0, [])] })).toBe("suspend wake-ups: 1 (0 by the guest's interrupts, 1 by the host, 0 standby bounds)");
    expect(wakeSummaryLine({ ...exit, wakes: [stats(0, 0, 0, 0, [])] })).toBeNull();
    expect(wakeSummaryLine(exit)).toBeNull();
  });
});
