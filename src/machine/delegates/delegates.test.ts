import { resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfigText } from "../../policy/load.js";
import { ScriptedMachine } from "../scripted/machine.js";
import { MAX_LATE_CALLS } from "./module-delegate.js";
import { registerValue, replyRegisters } from "./protocol.js";

const ROOT = resolve(import.meta.dirname, "../../..");
const machines: ScriptedMachine[] = [];

async function machine(delegates: string, grants: string, extra = "", log?: (l: string) => void) {
  const yaml = `delegates:\n${delegates}\nvms:\n  a:\n    grants:\n${grants}\n  b:\n    grants:\n${grants}\n${extra}`;
  const r = parseConfigText(yaml);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const m = await ScriptedMachine.create(r.value, { cwd: ROOT, ...(log ? { log } : {}) });
  machines.push(m);
  return m;
}

afterEach(() => {
  for (const m of machines.splice(0)) m.close();
});

const OEM = '      - { owner: oem, action: "delegate:h" }';

describe("delegate handlers", () => {
  it("a module serves a call (from its worker thread)", async () => {
    const m = await machine("  h: { module: examples/delegates/board-info.ts }", OEM);
    const r = await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001);
    expect([r.x0, r.x(1)]).toEqual([0n, 1n]);
    expect(r.decision).toEqual({ action: "delegate", rule: "vms.a.grants[0]" });
    expect((await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0007)).x0).toBe(0xffff_ffffn);
  });

  it("a process serves calls over the socket, in line-delimited JSON", async () => {
    const m = await machine("  h: { command: [node, examples/delegates/counter-process.mjs], timeoutMs: 5000 }", OEM);
    const r1 = await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [41]);
    const r2 = await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [1]);
    const r3 = await m.vm("b").vcpu(0).callAsync("smc", 0xc300_0001, [0xffff_ffff_ffffn]);
    expect([r1.x0, r1.x(1), r1.x(2)]).toEqual([0n, 1n, 42n]);
    expect(r2.x(1)).toBe(2n);
    expect([r3.x(1), r3.x(2)]).toEqual([1n, 0x1_0000_0000_0000n]);
  });

  it("a module can read the calling VM's RAM, and only that", async () => {
    const m = await machine("  h: { module: test/fixtures/delegates/memory.ts }", OEM);
    m.vm("a").memory.write(0x4000_2000n, new Uint8Array([8, 7, 6, 5, 4, 3, 2, 1]));
    expect((await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [0x4000_2000n])).x(1)).toBe(0x0102_0304_0506_0708n);
    expect((await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [0x1000n])).x0).toBe(BigInt.asUintN(64, -3n));
  });

  it("a handler that throws gives -1 while another VM's calls keep succeeding", async () => {
    const log: string[] = [];
    const m = await machine("  h: { module: test/fixtures/delegates/throws.ts }\n  ok: { module: examples/delegates/board-info.ts }", '      - { id: 0x83000001, action: "delegate:h" }\n      - { id: 0x83000002, action: "delegate:ok" }', "", (l) => log.push(l));
    const bad = await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001);
    expect(bad.outcome).toBe("error");
    expect(bad.sw(0)).toBe(-1);
    expect((await m.vm("b").vcpu(0).callAsync("smc", 0x8300_0002)).x0).toBe(0n);
    expect(log[0]).toMatch(/always fails/);
  });

  it("a handler that never answers gives -1 after its timeout; other VMs are not held up", async () => {
    const m = await machine("  h: { module: test/fixtures/delegates/hangs.ts, timeoutMs: 200 }\n  ok: { module: examples/delegates/board-info.ts }", '      - { id: 0x83000001, action: "delegate:h" }\n      - { id: 0x83000002, action: "delegate:ok" }');
    const t0 = performance.now();
    const hung = m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001);
    const other = await m.vm("b").vcpu(0).callAsync("smc", 0x8300_0002);
    expect(other.x0).toBe(0n);
    expect(performance.now() - t0).toBeLessThan(150 + 200); // answered while a's call still waits
    const r = await hung;
    expect(r.outcome).toBe("error");
    expect(r.sw(0)).toBe(-1);
  });

  it("a handler process that is killed gives -1; the hypervisor and the other VM go on", async () => {
    const m = await machine("  h: { command: [node, examples/delegates/counter-process.mjs], timeoutMs: 5000 }\n  ok: { module: examples/delegates/board-info.ts }", '      - { id: 0x83000001, action: "delegate:h" }\n      - { id: 0x83000002, action: "delegate:ok" }');
    expect((await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001)).x(1)).toBe(1n);
    const proc = (m.hypervisor.router as unknown as { delegates: Map<string, { pid?: number }> }).delegates.get("h")!;
    process.kill(proc.pid!, "SIGKILL");
    await new Promise((r) => setTimeout(r, 200));
    const dead = await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001);
    expect(dead.outcome).toBe("error");
    expect(dead.sw(0)).toBe(-1);
    expect((await m.vm("b").vcpu(0).callAsync("smc", 0x8300_0002)).x0).toBe(0n);
    expect(m.vm("b").vcpu(0).smc(0x8000_0000).x0).toBe(0x1_0002n);
  });

  it("names a delegate the config does not define, with the grant's path", () => {
    const r = parseConfigText('vms:\n  a:\n    grants:\n      - { owner: oem, action: "delegate:nope" }\n');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toMatchObject({ path: "vms.a.grants[0].action" });
  });

  it("says which module failed to load, in either thread", async () => {
    await expect(machine("  h: { module: test/fixtures/delegates/missing.ts }", OEM)).rejects.toThrow(/delegate "h": cannot load test\/fixtures\/delegates\/missing\.ts/);
    await expect(machine("  h: { module: test/fixtures/delegates/missing.ts, thread: hypervisor }", OEM)).rejects.toThrow(/delegate "h": cannot load test\/fixtures\/delegates\/missing\.ts/);
    await expect(machine("  h: { module: test/fixtures/delegates/no-handle.ts }", OEM)).rejects.toThrow(/delegate "h": cannot load .*no handle\(request, context\) function/);
  });
});

const TWO = '      - { id: 0x83000001, action: "delegate:h" }\n      - { id: 0x83000002, action: "delegate:ok" }';
const OK = "  ok: { module: examples/delegates/board-info.ts }";

describe("a module's deadline holds (it runs in a worker thread)", () => {
  it("a handler that computes for 1.5 s past a 50 ms deadline gets -1 at the deadline; other VMs are served meanwhile", async () => {
    const log: string[] = [];
    const m = await machine(`  h: { module: test/fixtures/delegates/busy.ts, timeoutMs: 50 }\n${OK}`, TWO, "", (l) => log.push(l));
    const t0 = performance.now();
    const busy = m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001, [1500]);
    // The hypervisor's thread is free: another VM's delegate call and an emulated call are answered now.
    expect((await m.vm("b").vcpu(0).callAsync("smc", 0x8300_0002)).x0).toBe(0n);
    expect(m.vm("b").vcpu(0).smc(0x8000_0000).x0).toBe(0x1_0002n);
    const r = await busy;
    const waited = performance.now() - t0;
    expect(r.outcome).toBe("error");
    expect(r.sw(0)).toBe(-1);
    expect(waited).toBeLessThan(1000); // answered at its deadline, not when the handler finished
    // The stuck worker is restarted; once it has loaded the module again, calls are served, each with its own answer.
    let next = await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001, [0]);
    for (let i = 0; i < 100 && next.outcome === "error"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      next = await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001, [0]);
    }
    expect([next.x0, next.x(1)]).toEqual([0n, 42n]);
    expect(log.some((l) => /delegate "h": its thread did not answer .* restarting it/.test(l))).toBe(true);
  });

  it("an answer after the deadline is dropped, and so is what the handler writes to the VM's RAM after it", async () => {
    const log: string[] = [];
    const m = await machine("  h: { module: test/fixtures/delegates/late.ts, timeoutMs: 50 }", OEM, "", (l) => log.push(l));
    const ram = m.vm("a").memory;
    const late = await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [0x4000_2000n, 300]);
    expect(late.sw(0)).toBe(-1);
    await new Promise((r) => setTimeout(r, 500));
    expect([...ram.read(0x4000_2000n, 8)!]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(log.filter((l) => /answered after its deadline .*dropped/.test(l))).toHaveLength(1);
    // In time, the same handler writes and answers; the late call's answer never stands in for this one.
    const inTime = await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [0x4000_3000n, 0]);
    expect([inTime.x0, inTime.x(1), inTime.x(2)]).toEqual([0n, 7n, 1n]);
    expect(ram.read(0x4000_3000n, 1)![0]).toBe(0xaa);
  });

  it("a handler that never answers is restarted before it owes more than MAX_LATE_CALLS answers", async () => {
    const m = await machine("  h: { module: test/fixtures/delegates/hangs.ts, timeoutMs: 1 }", OEM);
    const d = (m.hypervisor.router as unknown as { delegates: Map<string, { owed: number }> }).delegates.get("h")!;
    let most = 0;
    for (let i = 0; i < 3 * MAX_LATE_CALLS; i++) {
      expect((await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001)).sw(0)).toBe(-1);
      most = Math.max(most, d.owed);
    }
    expect(most).toBeLessThanOrEqual(MAX_LATE_CALLS);
  });
});

describe("a module on the hypervisor's thread (thread: hypervisor)", () => {
  it("answers synchronously when it can", async () => {
    const m = await machine("  h: { module: examples/delegates/board-info.ts, thread: hypervisor }", OEM);
    expect(m.vm("a").vcpu(0).smc(0x8300_0001).x(1)).toBe(1n);
  });

  it("a handler that held the thread past its deadline gets -1: its answer is dropped and logged once", async () => {
    const log: string[] = [];
    const m = await machine("  h: { module: test/fixtures/delegates/busy.ts, timeoutMs: 50, thread: hypervisor }", OEM, "", (l) => log.push(l));
    const r = m.vm("a").vcpu(0).smc(0x8300_0001, 120);
    expect([r.outcome, r.sw(0)]).toEqual(["error", -1]);
    expect(log.filter((l) => /held the hypervisor's thread for \d+ ms \(deadline 50 ms\); its answer was dropped/.test(l))).toHaveLength(1);
    expect(m.vm("a").vcpu(0).smc(0x8300_0001, 0).x(1)).toBe(42n);
  });

  it("an asynchronous answer after the deadline is dropped, and the handler's late write never reaches the VM", async () => {
    const m = await machine("  h: { module: test/fixtures/delegates/late.ts, timeoutMs: 50, thread: hypervisor }", OEM);
    const t0 = performance.now();
    expect((await m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [0x4000_2000n, 300])).sw(0)).toBe(-1);
    expect(performance.now() - t0).toBeLessThan(280);
    await new Promise((r) => setTimeout(r, 400));
    expect([...m.vm("a").memory.read(0x4000_2000n, 8)!]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("a handler that never answers gets no more calls once it owes MAX_LATE_CALLS answers", async () => {
    const m = await machine("  h: { module: test/fixtures/delegates/hangs.ts, timeoutMs: 1, thread: hypervisor }", OEM);
    for (let i = 0; i < MAX_LATE_CALLS; i++) expect((await m.vm("a").vcpu(0).callAsync("smc", 0x8300_0001)).sw(0)).toBe(-1);
    const refused = m.vm("a").vcpu(0).smc(0x8300_0001);
    expect([refused.outcome, refused.sw(0)]).toEqual(["error", -1]);
    expect((m.hypervisor.router as unknown as { delegates: Map<string, { owed: number }> }).delegates.get("h")!.owed).toBe(MAX_LATE_CALLS);
  });
});

describe("replies are 64-bit register values, exactly", () => {
  it("takes the documented forms", () => {
    expect(replyRegisters({ regs: [0, -1, 5n, -1n, "0x2a", "0xFFFFFFFFFFFFFFFF", "42", "-1", "-0x8000000000000000", 2 ** 53 - 1, "18446744073709551615"] })).toEqual([
      0n, 0xffff_ffff_ffff_ffffn, 5n, 0xffff_ffff_ffff_ffffn, 42n, 0xffff_ffff_ffff_ffffn, 42n, 0xffff_ffff_ffff_ffffn, 0x8000_0000_0000_0000n, 2n ** 53n - 1n, 0xffff_ffff_ffff_ffffn,
    ]);
  });

  it("refuses what is not one", () => {
    const bad: unknown[] = [1e300, 2 ** 53, -0, 1.5, NaN, Infinity, "0x" + "f".repeat(40), "0x", "-0", "-0x0", "+1", "1e3", "007", " 1", "1 ", "18446744073709551616", "-0x8000000000000001", 1n << 64n, -(1n << 63n) - 1n, null, true, {}, [], "0x1_0"];
    for (const v of bad) expect(registerValue(v), String(v)).toBeNull();
    expect(() => replyRegisters({ regs: [0, 1e300] })).toThrow(/regs\[1\] is not a 64-bit register value: 1e\+300/);
    expect(() => replyRegisters({ regs: [] })).toThrow(/1-18 values/);
    expect(() => replyRegisters({ regs: new Array(19).fill(0) })).toThrow(/1-18 values/);
    expect(() => replyRegisters(null)).toThrow(/1-18 values/);
  });

  it("a process's malformed replies give -1, and its lines that are not JSON are logged rate-limited", async () => {
    const log: string[] = [];
    const m = await machine("  h: { command: [node, test/fixtures/delegates/replies.mjs], timeoutMs: 5000 }", OEM, "", (l) => log.push(l));
    const call = (ask: number) => m.vm("a").vcpu(0).callAsync("smc", 0xc300_0001, [ask]);
    expect((await call(0)).x(1)).toBe(42n);
    for (const ask of [1, 2, 3, 4, 6]) {
      const r = await call(ask);
      expect([r.outcome, r.sw(0)], `reply ${ask}`).toEqual(["error", -1]);
    }
    expect((await call(5)).x(1)).toBe(42n);
    const notJson = log.filter((l) => l.includes("not JSON"));
    expect(notJson.length).toBeGreaterThan(0);
    expect(notJson.length).toBeLessThanOrEqual(5 + 10);
    expect(log.every((l) => l.length < 600)).toBe(true);
  });
});
