import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget, HandlerReturn } from "../../router/ports.js";
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
    expect(m.vm("vm0").power.events).toEqual([]); // the backend was never told to start it
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

/**
 * Issue 10: a multi-vCPU VM that reboots must be able to start its CPUs again (the modelled firmware's
 * physical record is reset with the VM), and a physical CPU_ON that fails must never start a CPU (the
 * backend hears of a CPU_ON only once the physical one succeeded).
 */
describe("reboots and the order of CPU_ON", () => {
  const N = 4;
  /** A monitor in front of the model: CPU_ON's physical answer can be replaced, or held back as a promise. */
  class FrontMonitor implements CallTarget {
    model: CallTarget | null = null;
    /** Replaces the model's answer to a physical CPU_ON (after the model has acted on it), when set. */
    cpuOnAnswer: number | null = null;
    /** Holds the answer to a physical CPU_ON back until release() (a remote monitor). */
    deferCpuOn = false;
    private readonly held: (() => void)[] = [];
    readonly seen: number[] = [];

    handle(call: SmcCall, res: SmcResult, origin: CallOrigin): HandlerReturn {
      if (this.model === null) return res.ret(-1);
      this.seen.push(call.fid);
      this.model.handle(call, res, origin);
      if (call.fid !== F.PSCI_CPU_ON.smc64 || origin.vmId !== 0) return;
      if (this.cpuOnAnswer !== null) res.ret(this.cpuOnAnswer);
      if (this.deferCpuOn) return new Promise<void>((resolve) => this.held.push(resolve));
    }

    /** Lets the oldest held answer through. */
    release(): void {
      this.held.shift()!();
    }
  }

  function withMonitor(yaml: string) {
    const monitor = new FrontMonitor();
    const m = ScriptedMachine.fromText(yaml, "yaml", { monitor });
    monitor.model = m.hypervisor.model;
    return { m, monitor };
  }

  const states = (m: ScriptedMachine) => {
    const vm = m.vm("vm0");
    return {
      psci: [...psciOf(m, "vm0").state],
      machine: vm.vcpus.map((v) => v.power),
      physical: [...m.hypervisor.model.psci.cpus("vm0").subarray(0, N)],
    };
  };
  const BOOTED = { psci: [1, 0, 0, 0], machine: ["on", "off", "off", "off"], physical: [1, 0, 0, 0] };
  const ALL_ON = { psci: [1, 1, 1, 1], machine: ["on", "on", "on", "on"], physical: [1, 1, 1, 1] };

  it("a 4-vCPU VM boots every CPU, resets and boots them all again, 10 times: every CPU_ON SUCCESS, every view consistent", () => {
    const m = machine(`vms:\n  vm0: { vcpus: ${N}, memory: { size: 4MiB } }\n`);
    const vm = m.vm("vm0");
    const resets: [number, number, bigint[]][] = [
      [0, F.PSCI_SYSTEM_RESET.smc32, []],
      [2, F.PSCI_SYSTEM_RESET2.smc64, [0n, 0n]], // WARM_RESET, from a secondary
      [3, F.PSCI_SYSTEM_RESET2.smc32, [0n, 0n]],
      [1, F.PSCI_SYSTEM_RESET.smc32, []],
    ];
    for (let round = 0; round < 10; round++) {
      expect(states(m), `round ${round}, after boot`).toEqual(BOOTED);
      for (let t = 1; t < N; t++) expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, mpidrOf(t), ENTRY, t).sw(0), `round ${round}: CPU_ON ${t}`).toBe(R.SUCCESS);
      expect(states(m)).toEqual(ALL_ON);
      // Leave the CPUs in different states: one off, one suspended in a power-down state.
      if (round % 2 === 1) {
        expect(vm.vcpu(1).hvc(F.PSCI_CPU_OFF.smc32).outcome).toBe("halt");
        expect(vm.vcpu(3).hvc(F.PSCI_CPU_SUSPEND.smc64, 0x4000_0000, ENTRY, 0).outcome).toBe("halt");
      }
      const [caller, fid, args] = resets[round % resets.length]!;
      const from = round % 2 === 1 && (caller === 1 || caller === 3) ? 2 : caller;
      expect(vm.vcpu(from).hvc(fid, ...args).outcome).toBe("halt");
      expect(vm.power.lastReset).toEqual({ ok: true });
      expect(vm.vcpu(0).pc).toBe(vm.domain.config.memory.base);
    }
    expect(states(m)).toEqual(BOOTED);
    expect(vm.power.resets).toBe(10);
    // Each reset reset the VM's machine in the modelled firmware, through the hypervisor's own entry (R9).
    const physicalResets = m.trace.events().filter((e) => e.vm === "hypervisor" && e.fid === F.PSCI_SYSTEM_RESET.smc32);
    expect(physicalResets).toHaveLength(10);
    expect(physicalResets[0]).toMatchObject({ origin: "reset vm0: SYSTEM_RESET of its machine", x0: 0n });
  });

  it("a reset of one VM leaves another VM's CPUs, virtual and physical, as they were", () => {
    const m = machine(`vms:\n  vm0: { vcpus: 2 }\n  vm1: { vcpus: 2 }\n`);
    for (const name of ["vm0", "vm1"]) expect(m.vm(name).vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0).sw(0)).toBe(R.SUCCESS);
    m.vm("vm0").vcpu(1).hvc(F.PSCI_SYSTEM_RESET.smc32);
    expect([...psciOf(m, "vm0").state]).toEqual([1, 0]);
    expect([...psciOf(m, "vm1").state]).toEqual([1, 1]);
    expect([...m.hypervisor.model.psci.cpus("vm1").subarray(0, 2)]).toEqual([1, 1]);
    expect(m.vm("vm1").vcpu(1).power).toBe("on");
    expect(m.vm("vm0").vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0).sw(0)).toBe(R.SUCCESS);
  });

  it("a VM cannot reset physical CPUs itself: physical SYSTEM_RESET forwarded from a guest is DENIED", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2, grants: [{ id: 0x84000009, action: forward }] }\n");
    expect(m.vm("vm0").vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0).sw(0)).toBe(R.SUCCESS);
    const r = m.vm("vm0").vcpu(0).smc(F.PSCI_SYSTEM_RESET.smc32);
    expect(r.decision.action).toBe("forward");
    expect(r.sw(0)).toBe(R.DENIED);
    expect([...m.hypervisor.model.psci.cpus("vm0").subarray(0, 2)]).toEqual([1, 1]);
  });

  for (const answer of [R.ALREADY_ON, R.INTERNAL_FAILURE, R.DENIED]) {
    it(`a physical CPU_ON answered ${answer}: INTERNAL_FAILURE to the guest, the target OFF, and the backend never told to start it`, () => {
      const { m, monitor } = withMonitor(`vms:\n  vm0: { vcpus: ${N} }\n`);
      const vm = m.vm("vm0");
      monitor.cpuOnAnswer = answer;
      expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, 2, ENTRY, 0).sw(0)).toBe(R.INTERNAL_FAILURE);
      expect(monitor.seen).toContain(F.PSCI_CPU_ON.smc64);
      expect(vm.power.events).toEqual([]);
      expect(vm.vcpu(2).starts).toBe(0);
      expect(vm.vcpu(2).power).toBe("off");
      expect(psciOf(m, "vm0").state[2]).toBe(0);
      expect(vm.vcpu(0).smc(F.PSCI_AFFINITY_INFO.smc64, 2, 0).sw(0)).toBe(AFFINITY.OFF);
      // Once the physical call works again, so does the guest's CPU_ON.
      monitor.cpuOnAnswer = null;
      m.hypervisor.model.psci.cpus("vm0")[2] = 0;
      expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, 2, ENTRY, 0).sw(0)).toBe(R.SUCCESS);
      expect(vm.power.events).toEqual(["cpu-on 2 by 0"]);
    });
  }

  it("with an asynchronous monitor: the backend starts the target only after the physical SUCCESS, before the caller's call completes; a racing CPU_ON is ALREADY_ON", async () => {
    const { m, monitor } = withMonitor(`vms:\n  vm0: { vcpus: ${N} }\n`);
    const vm = m.vm("vm0");
    expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0).sw(0)).toBe(R.SUCCESS);
    expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, 2, ENTRY, 0).sw(0)).toBe(R.SUCCESS);
    monitor.deferCpuOn = true;
    let done = false;
    const first = vm.vcpu(1).callAsync("hvc", F.PSCI_CPU_ON.smc64, [3, ENTRY, 0x33]).then((r) => {
      done = true;
      // By the time the caller sees its answer, the target runs.
      expect(vm.vcpu(3).power).toBe("on");
      return r;
    });
    // The physical answer is out: the target is taken, but nothing has started.
    expect(psciOf(m, "vm0").state[3]).toBe(1);
    expect(vm.vcpu(2).hvc(F.PSCI_CPU_ON.smc64, 3, ENTRY, 0).sw(0)).toBe(R.ALREADY_ON);
    expect(vm.power.events).toEqual(["cpu-on 1 by 0", "cpu-on 2 by 0"]);
    expect(vm.vcpu(3).power).toBe("off");
    await Promise.resolve();
    expect(done).toBe(false);
    monitor.release();
    expect((await first).sw(0)).toBe(R.SUCCESS);
    expect(vm.power.events).toEqual(["cpu-on 1 by 0", "cpu-on 2 by 0", "cpu-on 3 by 1"]);
    expect(vm.vcpu(3).entryX0).toBe(0x33n);
  });

  it("with an asynchronous monitor: a physical failure gives INTERNAL_FAILURE and the backend never hears of the CPU_ON", async () => {
    const { m, monitor } = withMonitor(`vms:\n  vm0: { vcpus: 2 }\n`);
    const vm = m.vm("vm0");
    monitor.deferCpuOn = true;
    monitor.cpuOnAnswer = R.INTERNAL_FAILURE;
    const call = vm.vcpu(0).callAsync("smc", F.PSCI_CPU_ON.smc64, [1, ENTRY, 0]);
    monitor.release();
    expect((await call).sw(0)).toBe(R.INTERNAL_FAILURE);
    expect(vm.power.events).toEqual([]);
    expect(vm.vcpu(1).power).toBe("off");
    expect(psciOf(m, "vm0").state[1]).toBe(0);
  });

  it("a CPU_ON whose physical answer comes after the VM was reset starts nothing: the target belongs to the new boot", async () => {
    const { m, monitor } = withMonitor(`vms:\n  vm0: { vcpus: 2 }\n`);
    const vm = m.vm("vm0");
    monitor.deferCpuOn = true;
    const call = vm.vcpu(0).callAsync("smc", F.PSCI_CPU_ON.smc64, [1, ENTRY, 0]);
    // The physical CPU_ON reached the firmware before the reset; the reset turns the CPU off again.
    expect(m.hypervisor.model.psci.cpus("vm0")[1]).toBe(1);
    expect(m.hypervisor.resetDomain("vm0")).toEqual({ ok: true });
    expect(m.hypervisor.model.psci.cpus("vm0")[1]).toBe(0);
    monitor.release();
    expect((await call).sw(0)).toBe(R.INTERNAL_FAILURE);
    expect(vm.power.events).toEqual([]);
    expect(psciOf(m, "vm0").state[1]).toBe(0);
    monitor.deferCpuOn = false;
    expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, 1, ENTRY, 0).sw(0)).toBe(R.SUCCESS);
  });

  it("MEM_PROTECT's wipe of a 16 GiB in-process VM zeroes what the guest touched and makes no RAM it never used", () => {
    const m = machine("vms:\n  vm0: { memory: { size: 16GiB } }\n");
    const vm = m.vm("vm0");
    const memory = vm.memory as unknown as { chunkCount: number };
    const at = 0x4000_0000n + (9n << 30n);
    vm.memory.write(at, new Uint8Array([7, 8, 9]));
    expect(memory.chunkCount).toBe(1);
    expect(vm.vcpu(0).hvc(F.PSCI_MEM_PROTECT.smc32, 1).sw(0)).toBe(0);
    vm.vcpu(0).hvc(F.PSCI_SYSTEM_RESET.smc32);
    expect([...vm.memory.read(at, 3)!]).toEqual([0, 0, 0]);
    expect(memory.chunkCount).toBe(1);
  });

  it("MEM_PROTECT survives a reset (its setting is persistent): every later reset wipes the RAM too", () => {
    const m = machine("vms:\n  vm0: { memory: { size: 4MiB } }\n");
    const vm = m.vm("vm0");
    expect(vm.vcpu(0).hvc(F.PSCI_MEM_PROTECT.smc32, 1).sw(0)).toBe(0);
    for (let i = 0; i < 3; i++) {
      vm.memory.write(0x4010_0000n, new Uint8Array([1, 2, 3]));
      vm.vcpu(0).hvc(F.PSCI_SYSTEM_RESET.smc32);
      expect([...vm.memory.read(0x4010_0000n, 3)!]).toEqual([0, 0, 0]);
    }
    expect(psciOf(m, "vm0").memProtect).toBe(true);
  });
});

describe("standby waits for a wake-up event in the machine (PowerPort.cpuStandby)", () => {
  it("CPU_SUSPEND standby, CPU_DEFAULT_SUSPEND and PSCI 0.1 standby ask the machine to wait, then return SUCCESS; power-down and bad states do not", () => {
    const m = machine("vms:\n  vm0:\n    vcpus: 2\n    services:\n      psci: { version: \"1.1\", v0_1: kvm }\n");
    const v0 = m.vm("vm0").vcpu(0);
    const power = m.vm("vm0").power;
    const standbys = () => power.events.filter((e) => e.startsWith("cpu-standby"));
    expect(v0.smc(F.PSCI_CPU_SUSPEND.smc64, 0x1, ENTRY, 0).x0).toBe(0n);
    expect(v0.smc(F.PSCI_CPU_DEFAULT_SUSPEND.smc64, ENTRY, 0).x0).toBe(0n);
    expect(v0.hvc(0x95c1_ba5e, 0x0, ENTRY).x0).toBe(0n);
    expect(standbys()).toEqual(["cpu-standby 0", "cpu-standby 0", "cpu-standby 0"]);
    // Reserved bits: INVALID_PARAMETERS, no wait.
    expect(v0.smc(F.PSCI_CPU_SUSPEND.smc64, 0x8000_0000, ENTRY, 0).sw(0)).toBe(R.INVALID_PARAMETERS);
    expect(standbys()).toHaveLength(3);
    // Power-down: a suspend, not a standby.
    v0.smc(F.PSCI_CPU_SUSPEND.smc64, 0x4000_0000, ENTRY, 0);
    expect(standbys()).toHaveLength(3);
    expect(power.events.at(-1)).toBe("cpu-suspend 0");
  });
});

describe("a vCPU started without smcvisor (a handover VM's secondary, docs/handover.md)", () => {
  it("is OFF until the machine says it runs (startedOutside), then follows DEN0022: ALREADY_ON, CPU_OFF, CPU_ON", () => {
    const m = machine("vms:\n  vm0: { vcpus: 3 }\n");
    const vm = m.vm("vm0"), psci = psciOf(m, "vm0");
    expect(vm.vcpu(0).smc(F.PSCI_AFFINITY_INFO.smc64, mpidrOf(1), 0).sw(0)).toBe(AFFINITY.OFF);
    expect(psci.startedOutside(1)).toBe(true);
    // The machine started it behind smcvisor's back: the scripted machine's CPU runs too.
    vm.vcpu(1).power = "on";
    expect(vm.vcpu(0).smc(F.PSCI_AFFINITY_INFO.smc64, mpidrOf(1), 0).sw(0)).toBe(AFFINITY.ON);
    expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, mpidrOf(1), ENTRY, 0).sw(0)).toBe(R.ALREADY_ON);
    // Told again (a second handover of the same vCPU): nothing changes.
    expect(psci.startedOutside(1)).toBe(false);
    // vCPU 2 was never started: untouched.
    expect(vm.vcpu(0).smc(F.PSCI_AFFINITY_INFO.smc64, mpidrOf(2), 0).sw(0)).toBe(AFFINITY.OFF);
    // Hotplug through smcvisor: off, then on again at a new entry point.
    expect(vm.vcpu(1).hvc(F.PSCI_CPU_OFF.smc32).outcome).toBe("halt");
    expect(vm.vcpu(0).smc(F.PSCI_AFFINITY_INFO.smc64, mpidrOf(1), 0).sw(0)).toBe(AFFINITY.OFF);
    expect(vm.vcpu(0).smc(F.PSCI_CPU_ON.smc64, mpidrOf(1), ENTRY, 0x55).sw(0)).toBe(R.SUCCESS);
    expect(vm.vcpu(1).pc).toBe(ENTRY);
    expect(vm.vcpu(1).getX(0)).toBe(0x55n);
  });

  it("leaves an ON vCPU as it is, refuses a vCPU the VM does not have, and a reset forgets it", () => {
    const m = machine("vms:\n  vm0: { vcpus: 2 }\n");
    const vm = m.vm("vm0"), psci = psciOf(m, "vm0");
    expect(psci.startedOutside(0)).toBe(false);
    for (const bad of [-1, 2, 1.5, Number.NaN]) expect(() => psci.startedOutside(bad)).toThrow(/no vCPU/);
    expect(psci.startedOutside(1)).toBe(true);
    expect(vm.vcpu(0).smc(F.PSCI_SYSTEM_RESET.smc32).outcome).toBe("halt");
    expect(psci.state[1]).toBe(0);
    expect(psci.state[0]).toBe(1);
  });
});
