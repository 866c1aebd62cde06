import { resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfigText } from "../../policy/load.js";
import { ScriptedMachine } from "../scripted/machine.js";

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
  it("a module loaded in-process serves a call", async () => {
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

  it("says which module failed to load", async () => {
    await expect(machine("  h: { module: test/fixtures/delegates/missing.ts }", OEM)).rejects.toThrow(/delegate "h": cannot load test\/fixtures\/delegates\/missing\.ts/);
  });
});
