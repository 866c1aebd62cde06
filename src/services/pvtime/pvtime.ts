/**
 * Paravirtualized time, stolen time (DEN0057A; Linux Documentation/virt/kvm/arm/pvtime.rst). One record
 * per vCPU at the IPA the VM's config chooses, 64 bytes apart like KVM's:
 *   u32 revision = 0 @0, u32 attributes = 0 @4, u64 stolen time in ns @8 (little-endian).
 * The machine backend updates the stolen time with `writeStolenTime`.
 */
import type { ServiceClaim } from "../../policy/compile.js";
import type { VmConfig } from "../../policy/load.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { GuestMemory } from "../../router/ports.js";
import type { ServiceContext, ServiceDefinition, ServiceInstance } from "../../router/service.js";
import { PV_TIME_FUNCTIONS as F } from "../../smccc/functions/hypervisor.js";
import { CALL_TYPE } from "../../smccc/fid.js";
import { OEN } from "../../smccc/owners.js";

export const PV_TIME_RECORD_SIZE = 64;

export function recordAddress(base: bigint, vcpu: number): bigint {
  return base + BigInt(PV_TIME_RECORD_SIZE * vcpu);
}

/** Writes one vCPU's record: revision 0, attributes 0, stolen time. Returns false outside guest RAM. */
export function writeStolenTime(memory: GuestMemory, base: bigint, vcpu: number, stolenNs: bigint): boolean {
  const rec = new Uint8Array(16);
  new DataView(rec.buffer).setBigUint64(8, BigInt.asUintN(64, stolenNs), true);
  return memory.write(recordAddress(base, vcpu), rec);
}

export class PvTimeService implements ServiceInstance {
  constructor(private readonly base: bigint, private readonly memory: GuestMemory | undefined, private readonly vcpus: number) {
    this.reset();
  }

  /**
   * A new VM, and a VM that restarts, find every record as revision 0, attributes 0, stolen time 0: the
   * records are in the VM's RAM, which the previous boot could write, and a new boot counts stolen time
   * from zero (KVM rewrites the record with zeros when the guest asks for it, kvm_init_stolen_time in
   * arch/arm64/kvm/pvtime.c). The records' IPA is configuration and stays.
   */
  reset(): void {
    if (this.memory) for (let v = 0; v < this.vcpus; v++) writeStolenTime(this.memory, this.base, v, 0n);
  }

  features(fid: number): number {
    return fid === F.PV_TIME_FEATURES.smc64 || fid === F.PV_TIME_ST.smc64 ? 0 : -1;
  }

  handle(call: SmcCall, res: SmcResult): void {
    switch (call.fid) {
      case F.PV_TIME_FEATURES.smc64:
        // w1 is the queried ID (DEN0057A §3.1): 0 for the two calls, NOT_SUPPORTED otherwise.
        return res.ret(this.features(call.w(1)) === 0 ? 0 : -1);
      case F.PV_TIME_ST.smc64:
        return res.setBig(0, recordAddress(this.base, call.vcpu));
    }
    res.ret(-1);
  }
}

export const PVTIME_SERVICE: ServiceDefinition = {
  name: "pvtime",
  enabled: (vm) => vm.services.pvtime !== false && !vm.aarch32,
  claims: (): ServiceClaim[] => [{ service: "pvtime", owner: OEN.STD_HYP, types: [CALL_TYPE.fast64], first: 0x20, last: 0x3f }],
  create: (ctx: ServiceContext) => {
    const vm: VmConfig = ctx.vm;
    return new PvTimeService((vm.services.pvtime as { base: bigint }).base, ctx.vmPorts.memory, vm.vcpus);
  },
};
