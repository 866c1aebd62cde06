import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import { smcccWordsToUuid } from "../../smccc/uuid.js";
import { KVM_UUID, SMCVISOR_UUID } from "./identity.js";

const m = ScriptedMachine.fromText('vms:\n  plain: {}\n  kvm: { services: { kvm: true } }\n  old: { smccc: "1.1" }\n  off: { services: { hyp-info: false } }\n');
const uid = (vm: string, fid: number) => {
  const r = m.vm(vm).vcpu(0).hvc(fid);
  return smcccWordsToUuid([r.w(0), r.w(1), r.w(2), r.w(3)]);
};

describe("hypervisor identity (SMCCC §6.2)", () => {
  it("answers Call UID on the standard and vendor hypervisor owners with smcvisor's UUID", () => {
    expect(uid("plain", 0x8500_ff01)).toBe(SMCVISOR_UUID);
    expect(uid("plain", 0x8600_ff01)).toBe(SMCVISOR_UUID);
    expect(uid("plain", 0x8400_ff01)).toBe(SMCVISOR_UUID);
  });

  it("answers Revision with major in w0 and minor in w1", () => {
    const r = m.vm("plain").vcpu(0).hvc(0x8500_ff03);
    expect([r.w(0), r.w(1)]).toEqual([0, 1]);
  });

  it("answers the deprecated Call Count only to VMs told SMCCC 1.1 or earlier", () => {
    expect(m.vm("plain").vcpu(0).hvc(0x8500_ff00).sw(0)).toBe(-1);
    // Owner 5 for an SMCCC 1.1 VM: UID and Revision (Count itself is counted: it exists for this VM).
    expect(m.vm("old").vcpu(0).hvc(0x8500_ff00).w(0)).toBe(3);
    // Owner 4 for that VM: its 3 queries, PSCI 1.1's 21 IDs (SMC32 and SMC64) and TRNG's 5.
    expect(m.vm("old").vcpu(0).hvc(0x8400_ff00).w(0)).toBe(29);
  });

  it("is -1 when the VM has the service switched off", () => {
    expect(m.vm("off").vcpu(0).hvc(0x8600_ff01).sw(0)).toBe(-1);
  });
});

describe("KVM-compatible vendor service (Linux kvm_guest.c, ptp_kvm_arm.c)", () => {
  it("returns KVM's UID so Linux's kvm_init_hyp_services() probes on", () => {
    expect(uid("kvm", 0x8600_ff01)).toBe(KVM_UUID);
    const r = m.vm("kvm").vcpu(0).hvc(0x8600_ff01);
    expect([r.w(0), r.w(1), r.w(2), r.w(3)]).toEqual([0xb66fb428, 0xe911c52e, 0x564bcaa9, 0x743a004d]);
  });

  it("offers the features bitmap with FEATURES and PTP", () => {
    const r = m.vm("kvm").vcpu(0).hvc(0x8600_0000);
    expect([r.w(0), r.w(1), r.w(2), r.w(3)]).toEqual([0b11, 0, 0, 0]);
  });

  it("answers PTP with the wall clock and the counter, high word first", () => {
    const vm = m.vm("kvm");
    vm.time.advance(2_000_000_000n);
    const r = vm.vcpu(0).hvc(0x8600_0001, 1);
    const ns = (BigInt(r.w(0)) << 32n) | BigInt(r.w(1));
    const cnt = (BigInt(r.w(2)) << 32n) | BigInt(r.w(3));
    expect(ns).toBe(vm.time.wallClockNs());
    expect(cnt).toBe(125_000_000n);
    expect(vm.vcpu(0).hvc(0x8600_0001, 2).sw(0)).toBe(-1);
  });

  it("keeps KVM's calls away from VMs without KVM compatibility", () => {
    expect(m.vm("plain").vcpu(0).hvc(0x8600_0000).sw(0)).toBe(-1);
    expect(m.vm("plain").vcpu(0).hvc(0x8600_0001, 0).sw(0)).toBe(-1);
  });
});
