import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import { PSCI_FUNCTIONS as F } from "../../smccc/functions/psci.js";
import type { PsciService } from "./psci.js";
import { PSCI_RET as R, AFFINITY } from "./return-codes.js";
import { indexOfMpidr, mpidrOf } from "./topology.js";

const ENTRY = 0x4008_0000n;

function machine(yaml: string) {
  return ScriptedMachine.fromText(yaml);
}

function psciOf(m: ScriptedMachine, vm: string): PsciService {
  return m.hypervisor.domain(vm).routed.services.get("psci") as PsciService;
}

describe("topology: vCPU index ↔ MPIDR as QEMU virt numbers CPUs", () => {
  it("puts eight vCPUs in a cluster", () => {
    expect(mpidrOf(0)).toBe(0n);
    expect(mpidrOf(7)).toBe(7n);
    expect(mpidrOf(8)).toBe(0x100n);
    expect(mpidrOf(19)).toBe(0x203n);
  });

  it("maps back and rejects what no vCPU has", () => {
    for (let i = 0; i < 20; i++) expect(indexOfMpidr(mpidrOf(i), 20)).toBe(i);
    expect(indexOfMpidr(0x8n, 20)).toBe(-1);
    expect(indexOfMpidr(0x300n, 20)).toBe(-1);
    expect(indexOfMpidr(1n << 31n, 20)).toBe(-1);
  });
});

describe("virtual PSCI beyond the conformance cases", () => {
  it("starts a new vCPU at its entry point in EL1h with DAIF masked, x0 = context, other registers zero", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2 }\n");
    const v1 = m.vm("vm0").vcpu(1);
    v1.setX(5, 0xdead);
    expect(m.vm("vm0").vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0x77).x0).toBe(0n);
    expect(v1.power).toBe("on");
    expect(v1.pc).toBe(ENTRY);
    expect(v1.pstate).toBe(0x3c5);
    expect(v1.getX(0)).toBe(0x77n);
    for (let n = 1; n <= 30; n++) expect(v1.getX(n)).toBe(0n);
  });

  it("starts an AArch32 vCPU in SVC mode, in Thumb state when the entry's bit 0 is set", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2, aarch32: true }\n");
    expect(m.vm("vm0").vcpu(0).hvc(F.PSCI_CPU_ON.smc32, 1, ENTRY | 1n, 5).sw(0)).toBe(0);
    const v1 = m.vm("vm0").vcpu(1);
    expect(v1.pc).toBe(ENTRY);
    expect(v1.pstate).toBe(0x1d3 | 0x20);
  });

  it("issues the physical CPU_ON through the hypervisor entry, visible in the trace (R9)", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2 }\n");
    m.vm("vm0").vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0);
    const physical = m.trace.events().filter((e) => e.vm === "hypervisor" && e.fid === F.PSCI_CPU_ON.smc64);
    expect(physical).toHaveLength(1);
    expect(physical[0]).toMatchObject({ fid: F.PSCI_CPU_ON.smc64, origin: "psci: power on vCPU 1 (for vm0)", x0: 0n });
    expect(m.hypervisor.model.psci.cpus("vm0")[1]).toBe(1);
  });

  it("gives INTERNAL_FAILURE and leaves the target OFF when the physical CPU_ON fails", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2 }\n");
    m.hypervisor.model.psci.cpus("vm0")[1] = 1; // physically on already: the model answers ALREADY_ON
    expect(m.vm("vm0").vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0).sw(0)).toBe(R.INTERNAL_FAILURE);
    expect(m.vm("vm0").vcpu(1).power).toBe("off");
    expect(psciOf(m, "vm0").state[1]).toBe(0);
  });

  it("says NOT_SUPPORTED in PSCI_FEATURES for a PSCI function the VM's policy denies", () => {
    const m = machine("vms:\n  vm0:\n    grants:\n      - { id: 0x84000009, action: deny }\n");
    const v = m.vm("vm0").vcpu(0);
    expect(v.hvc(F.PSCI_FEATURES.smc32, F.PSCI_SYSTEM_RESET.smc32).sw(0)).toBe(-1);
    expect(v.hvc(F.PSCI_SYSTEM_RESET.smc32).sw(0)).toBe(-1);
    expect(v.hvc(F.PSCI_FEATURES.smc32, F.PSCI_SYSTEM_OFF.smc32).sw(0)).toBe(0);
  });

  it("MEM_PROTECT wipes the VM's RAM on the next reset, and only when enabled", () => {
    const m = machine("vms:\n  vm0: { memory: { size: 4MiB } }\n");
    const vm = m.vm("vm0");
    vm.memory.write(0x4010_0000n, new Uint8Array([1, 2, 3]));
    vm.vcpu(0).hvc(F.PSCI_SYSTEM_RESET.smc32);
    expect([...vm.memory.read(0x4010_0000n, 3)!]).toEqual([1, 2, 3]);
    expect(vm.vcpu(0).hvc(F.PSCI_MEM_PROTECT.smc32, 1).sw(0)).toBe(0);
    vm.vcpu(0).hvc(F.PSCI_SYSTEM_RESET.smc32);
    expect([...vm.memory.read(0x4010_0000n, 3)!]).toEqual([0, 0, 0]);
    expect(vm.power.resets).toBe(2);
  });

  it("accepts Xen's PSCI 0.1 IDs (0-3) when the VM asks for them", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2, services: { psci: { v0_1: xen } } }\n");
    expect(m.vm("vm0").vcpu(0).hvc(2, 1, ENTRY).sw(0)).toBe(0);
    expect(m.vm("vm0").vcpu(1).power).toBe("on");
  });

  it("leaves the PSCI 0.1 IDs to the convention for VMs that did not ask", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2 }\n");
    const r = m.vm("vm0").vcpu(0).hvc(0x95c1_ba60, 1, ENTRY);
    expect(r.decision.rule).toBe("smccc:mbz-bits-23-17");
    expect(r.sw(0)).toBe(-1);
  });

  it("AFFINITY_INFO compares Aff3 at every level, from the upper word of an SMC64 call's x1", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2 }\n");
    const v = m.vm("vm0").vcpu(0);
    for (let level = 0; level <= 3; level++) {
      expect(v.smc(F.PSCI_AFFINITY_INFO.smc64, 0x1_0000_0000n, level).sw(0)).toBe(R.INVALID_PARAMETERS);
      expect(v.smc(F.PSCI_AFFINITY_INFO.smc64, 0, level).sw(0)).toBe(AFFINITY.ON);
    }
    // Bits outside the affinity fields, in either word, are stray.
    expect(v.smc(F.PSCI_AFFINITY_INFO.smc64, 0x100_0000_0000n, 3).sw(0)).toBe(R.INVALID_PARAMETERS);
    expect(v.smc(F.PSCI_AFFINITY_INFO.smc64, 0x100_0000n, 3).sw(0)).toBe(R.INVALID_PARAMETERS);
  });

  it("supports the original power_state format when configured", () => {
    const m = machine('vms:\n  vm0: { vcpus: 2, services: { psci: { version: "1.1", powerStateFormat: original } } }\n');
    const v = m.vm("vm0").vcpu(0);
    expect(v.hvc(F.PSCI_FEATURES.smc32, F.PSCI_CPU_SUSPEND.smc64).sw(0)).toBe(0);
    // Power level 2 is deeper than a virtual core offers.
    expect(v.hvc(F.PSCI_CPU_SUSPEND.smc64, 0x0201_0000, ENTRY, 0).sw(0)).toBe(R.INVALID_PARAMETERS);
    expect(v.hvc(F.PSCI_CPU_SUSPEND.smc64, 0x0001_0000, ENTRY, 0).outcome).toBe("halt");
    expect(m.vm("vm0").power.events).toEqual(["cpu-suspend 0"]);
  });
});

/**
 * Property: any interleaving of CPU_ON, CPU_OFF, AFFINITY_INFO and CPU_SUSPEND from random vCPUs (and
 * wake-ups) keeps the state machine consistent with a reference model: every answer is exactly the
 * documented one, no vCPU is both ON and OFF anywhere (PSCI, machine, physical model), and ON_PENDING
 * never appears.
 */
describe("PSCI state machine under random interleavings", () => {
  type Op =
    | { kind: "on"; caller: number; target: number }
    | { kind: "off"; caller: number }
    | { kind: "affinity"; caller: number; target: number; level: number }
    | { kind: "suspend"; caller: number; powerDown: boolean }
    | { kind: "wake"; target: number };
  const N = 4;
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("on" as const), caller: fc.nat(N - 1), target: fc.nat(N) }),
    fc.record({ kind: fc.constant("off" as const), caller: fc.nat(N - 1) }),
    fc.record({ kind: fc.constant("affinity" as const), caller: fc.nat(N - 1), target: fc.nat(N), level: fc.nat(4) }),
    fc.record({ kind: fc.constant("suspend" as const), caller: fc.nat(N - 1), powerDown: fc.boolean() }),
    fc.record({ kind: fc.constant("wake" as const), target: fc.nat(N - 1) }),
  );

  it("keeps every view of the vCPUs consistent", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), fc.boolean(), (ops, smc64) => {
        const m = machine(`vms:\n  vm0: { vcpus: ${N} }\n`);
        const vm = m.vm("vm0");
        const psci = psciOf(m, "vm0");
        // Reference model: "on" | "off" | "suspended".
        const model: string[] = ["on", "off", "off", "off"];
        const id = (d: { smc32: number; smc64?: number }) => (smc64 && d.smc64 !== undefined ? d.smc64 : d.smc32);
        for (const op of ops) {
          if (op.kind === "wake") {
            if (model[op.target] !== "suspended") continue;
            vm.wake(op.target);
            model[op.target] = "on";
          } else if (model[op.caller] !== "on") {
            continue; // only running vCPUs issue calls
          } else if (op.kind === "on") {
            const r = vm.vcpu(op.caller).hvc(id(F.PSCI_CPU_ON), op.target, ENTRY, op.target);
            const want = op.target >= N ? R.INVALID_PARAMETERS : model[op.target] !== "off" ? R.ALREADY_ON : R.SUCCESS;
            expect(r.sw(0)).toBe(want);
            if (want === R.SUCCESS) model[op.target] = "on";
          } else if (op.kind === "off") {
            expect(vm.vcpu(op.caller).hvc(F.PSCI_CPU_OFF.smc32).outcome).toBe("halt");
            model[op.caller] = "off";
          } else if (op.kind === "affinity") {
            const r = vm.vcpu(op.caller).hvc(id(F.PSCI_AFFINITY_INFO), op.target, op.level);
            let want: number;
            if (op.level > 3) want = R.INVALID_PARAMETERS;
            else if (op.level === 0) want = op.target >= N ? R.INVALID_PARAMETERS : model[op.target] === "off" ? AFFINITY.OFF : AFFINITY.ON;
            else want = model.some((s) => s !== "off") ? AFFINITY.ON : AFFINITY.OFF;
            expect(r.sw(0)).toBe(want);
            expect(r.sw(0)).not.toBe(AFFINITY.ON_PENDING);
          } else {
            const r = vm.vcpu(op.caller).hvc(id(F.PSCI_CPU_SUSPEND), op.powerDown ? 0x4000_0000 : 0, ENTRY, 9);
            if (op.powerDown) {
              expect(r.outcome).toBe("halt");
              model[op.caller] = "suspended";
            } else expect(r.sw(0)).toBe(R.SUCCESS);
          }
          // Invariants: PSCI, the machine and the physical model agree with the reference.
          for (let i = 0; i < N; i++) {
            const want = model[i]!;
            expect(["off", "on", "suspended"][psci.state[i]!]).toBe(want);
            expect(vm.vcpu(i).power).toBe(want);
          }
          const physical = m.hypervisor.model.psci.cpus("vm0");
          for (let i = 1; i < N; i++) expect(physical[i] === 1).toBe(model[i] !== "off");
        }
      }),
      { numRuns: 300 },
    );
  });
});
