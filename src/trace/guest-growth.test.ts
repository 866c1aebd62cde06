/**
 * Nothing a guest controls grows the hypervisor's memory without a bound. Each test makes a few hundred
 * thousand calls that differ in what the guest chooses (addresses, sizes, vCPUs) and checks the sizes of
 * the structures that used to keep something per call: counts, never heap totals or times.
 */
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import { DEFAULT_MAX_LABELS, HYPERVISOR_VM, OVERFLOW_LABEL_TEXT, TraceRing } from "./ring.js";

const PM_FPGA_LOAD = 0xc200_0016;
const PSCI_CPU_ON = 0xc400_0003;
const PSCI_CPU_OFF = 0x8400_0002;

const CONFIG = `
platform:
  secureMemory: [{ name: tee-os, base: 0x0e000000, size: 16MiB }]
vms:
  dom0:
    vcpus: 2
    memory: { base: 0x40000000, size: 16MiB, pa: 0x40000000 }
    grants:
      - { owner: sip, action: forward }
  domU:
    memory: { base: 0x40000000, size: 16MiB }
`;

describe("a guest cannot grow the hypervisor's memory", () => {
  it("200,000 refused PM_FPGA_LOADs, each naming a new address, add no label or monitor entry", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    const v = m.vm("dom0").vcpu(0);
    const trace = m.trace;
    // The first refusal interns the VM's "refused" label; nothing after it may add anything.
    expect(v.smc(PM_FPGA_LOAD, 0x0e00_0000, 16).w(0)).toBe(2002); // XST_PM_NO_ACCESS
    const labels = trace.labelCount;
    const served = m.hypervisor.model.served.size;
    const N = 200_000;
    for (let i = 1; i <= N; i++) {
      // Secure memory, unmapped space and another VM's RAM, each at a different address.
      const kind = i % 3;
      const pa = kind === 0 ? 0x0e00_0000 + i * 16 : kind === 1 ? 0x2_0000_0000 + i * 4096 : 0x1_0000_0000 + i;
      v.smc(PM_FPGA_LOAD, BigInt(pa), 16);
    }
    expect(trace.labelCount).toBe(labels);
    expect(m.hypervisor.model.served.size).toBe(served);
    // Every refusal is counted under one key per VM, and the newest ones still say what was refused.
    const refused = trace.counters().find((c) => c.key === "dom0|refused");
    expect(refused?.calls).toBe(N + 1);
    const last = trace.events().filter((e) => e.action === "deny" && e.vm === "dom0").at(-1)!;
    expect(last.rule).toMatch(/^refused: 0x[0-9a-f]+\+0x10 (is RAM of another VM|is not RAM of dom0|touches secure memory "tee-os")$/);
    expect(last.detail).toBe(last.rule.slice("refused: ".length));
  });

  it("CPU_ON and CPU_OFF forever keep the scripted machine's power log bounded", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    const vm = m.vm("dom0");
    for (let i = 0; i < 50_000; i++) {
      expect(vm.vcpu(0).smc(PSCI_CPU_ON, 1, 0x4000_0000, i).w(0)).toBe(0);
      vm.vcpu(1).hvc(PSCI_CPU_OFF);
    }
    expect(vm.power.events.length).toBeLessThanOrEqual(1024);
    expect(vm.power.events.at(-1)).toBe("cpu-off 1");
    expect(vm.power.dropped + vm.power.events.length).toBe(100_000);
    // The hypervisor's own calls for them (physical CPU_ON and CPU_OFF) share two origins.
    expect(m.trace.labelCount).toBeLessThan(64);
  });
});

describe("the trace's own bounds", () => {
  it("interns at most maxLabels strings; later ones share the overflow label, which is counted", () => {
    const ring = new TraceRing(16, false, 8);
    const vm = ring.registerVm("a");
    const ids = Array.from({ length: 20 }, (_, i) => ring.intern(`a|rule ${i}`));
    expect(ring.labelCount).toBe(8);
    expect(new Set(ids.slice(6)).size).toBe(1);
    for (const id of ids) ring.record(vm, 0, 0, 0x8000_0000, 0, id, 0, 0, 0, 0, 0);
    const counts = Object.fromEntries(ring.counters().map((c) => [c.key, c.calls]));
    expect(counts[OVERFLOW_LABEL_TEXT]).toBe(14);
    expect(counts["a|rule 0"]).toBe(1);
    expect(ring.latest()!.rule).toBe(OVERFLOW_LABEL_TEXT);
    expect(new TraceRing().maxLabels).toBe(DEFAULT_MAX_LABELS);
  });

  it("keeps the details of recent events only, each cut to a bounded length", () => {
    const ring = new TraceRing(1 << 12);
    const vm = ring.registerVm("a");
    const label = ring.intern("a|refused");
    for (let i = 0; i < 3000; i++) {
      ring.record(vm, 0, 0, 0xc200_0016, 2, label, 0, 0, 0, 0, 0);
      ring.annotate(`0x${i.toString(16)} ${"x".repeat(i === 2999 ? 100_000 : 0)}`);
    }
    const events = ring.events();
    expect(events).toHaveLength(3000);
    expect(events[0]!.detail).toBeNull();
    expect(events[0]!.rule).toBe("refused");
    expect(events.filter((e) => e.detail !== null)).toHaveLength(1024);
    expect(events[2998]!.rule).toBe("refused: 0xbb6 ");
    expect(events[2999]!.detail!.length).toBeLessThanOrEqual(240);
    expect(ring.labelCount).toBe(3);
  });

  it("gives no VM the hypervisor's index", () => {
    const ring = new TraceRing(1);
    let last = -1;
    for (let i = 0; i < HYPERVISOR_VM; i++) last = ring.registerVm(`vm${i}`);
    expect(last).toBe(HYPERVISOR_VM - 1);
    expect(ring.registerVm("vm7")).toBe(7);
    expect(() => ring.registerVm("one-too-many")).toThrow(RangeError);
  });
});
