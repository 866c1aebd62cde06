import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import { PV_TIME_FUNCTIONS as PV } from "../../smccc/functions/hypervisor.js";
import { recordAddress, writeStolenTime } from "./pvtime.js";

describe("PV time stolen-time records (DEN0057A)", () => {
  const m = ScriptedMachine.fromText("vms:\n  vm0: { vcpus: 2, services: { pvtime: { base: 0x4ff00000 } } }\n");
  const vm = m.vm("vm0");

  it("lays each record out as revision, attributes and stolen ns, little-endian", () => {
    writeStolenTime(vm.memory, 0x4ff0_0000n, 1, 0x0102_0304_0506_0708n);
    const rec = vm.memory.read(recordAddress(0x4ff0_0000n, 1), 16)!;
    expect([...rec]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
  });

  it("points PV_TIME_ST at the calling vCPU's record", () => {
    expect(vm.vcpu(0).smc(PV.PV_TIME_ST.smc64).x0).toBe(0x4ff0_0000n);
  });

  it("refuses records outside the VM's RAM at config time", () => {
    expect(() => ScriptedMachine.fromText("vms:\n  vm0: { services: { pvtime: { base: 0x10000 } } }\n")).toThrow(/vms\.vm0\.services\.pvtime\.base: the 1 records/);
    expect(() => ScriptedMachine.fromText("vms:\n  vm0: { services: { pvtime: { base: 0x40000001 } } }\n")).toThrow(/64-byte aligned/);
  });
});
