/**
 * Hypervisor identity and general queries (SMCCC DEN0028 §6.2) for the owners a hypervisor answers:
 * Standard Secure (OEN 4, as the VM's virtual standard service, like Xen), Standard Hypervisor (OEN 5)
 * and Vendor-specific Hypervisor (OEN 6). Optionally, per VM, KVM's vendor service: its UID, the
 * features bitmap and the PTP call, so Linux's KVM guest code (drivers/firmware/smccc/kvm_guest.c,
 * drivers/ptp/ptp_kvm_arm.c) runs as it would under KVM.
 */
import type { ServiceClaim } from "../../policy/compile.js";
import type { VmConfig } from "../../policy/load.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { ServiceContext, ServiceDefinition, ServiceInstance } from "../../router/service.js";
import { KVM_VENDOR_HYP_FUNCTIONS } from "../../smccc/functions/hypervisor.js";
import { QUERY_CALL_COUNT, QUERY_CALL_UID, QUERY_REVISION } from "../../smccc/functions/queries.js";
import { OEN } from "../../smccc/owners.js";
import { SMCCC_RET } from "../../smccc/return-codes.js";
import { uuidToSmcccWords } from "../../smccc/uuid.js";
import { SMCCC_1_2 } from "../../smccc/version.js";
import { KVM_UUID, SMCVISOR_REVISION, SMCVISOR_UUID } from "./identity.js";
import { CALL_TYPE } from "../../smccc/fid.js";

const KVM_FEATURES = KVM_VENDOR_HYP_FUNCTIONS.ARM_SMCCC_VENDOR_HYP_KVM_FEATURES.smc32;
const KVM_PTP = KVM_VENDOR_HYP_FUNCTIONS.ARM_SMCCC_VENDOR_HYP_KVM_PTP.smc32;

/** Bits of KVM's features bitmap (Linux ARM_SMCCC_KVM_FUNC_FEATURES = 0, ARM_SMCCC_KVM_FUNC_PTP = 1). */
const KVM_FUNC_FEATURES = 0;
const KVM_FUNC_PTP = 1;

/** PTP counter selectors (Linux KVM_PTP_VIRT_COUNTER = 0, KVM_PTP_PHYS_COUNTER = 1). */
const KVM_PTP_VIRT_COUNTER = 0;
const KVM_PTP_PHYS_COUNTER = 1;

const OWNERS = [OEN.STD_SECURE, OEN.STD_HYP, OEN.VENDOR_HYP] as const;

/**
 * No reset(): every answer comes from the VM's configuration (UIDs, revisions, counts, KVM's features
 * bitmap) or is read at the call (PTP reads the host's clock and the vCPU's counter), so nothing is kept
 * per boot.
 */
export class HypInfoService implements ServiceInstance {
  private readonly smcvisorUid = uuidToSmcccWords(SMCVISOR_UUID);
  private readonly kvmUid = uuidToSmcccWords(KVM_UUID);

  constructor(private readonly vm: VmConfig, private readonly ctx: ServiceContext) {}

  handle(call: SmcCall, res: SmcResult): void {
    const fid = call.fid;
    const owner = (fid >>> 24) & 0x3f;
    if (this.features(fid) < 0) {
      res.ret(SMCCC_RET.NOT_SUPPORTED);
      return;
    }
    if (fid === KVM_FEATURES) {
      res.ret((1 << KVM_FUNC_FEATURES) | (this.features(KVM_PTP) === 0 ? 1 << KVM_FUNC_PTP : 0));
      return;
    }
    if (fid === KVM_PTP) {
      this.ptp(call, res);
      return;
    }
    switch (fid & 0xffff) {
      case QUERY_CALL_COUNT:
        res.ret(this.ctx.callCount(owner));
        return;
      case QUERY_CALL_UID: {
        const w = owner === OEN.VENDOR_HYP && this.vm.services.kvm ? this.kvmUid : this.smcvisorUid;
        res.ret(w[0]);
        res.set(1, w[1]);
        res.set(2, w[2]);
        res.set(3, w[3]);
        return;
      }
      case QUERY_REVISION:
        res.ret(SMCVISOR_REVISION.major);
        res.set(1, SMCVISOR_REVISION.minor);
        return;
    }
    res.ret(SMCCC_RET.NOT_SUPPORTED);
  }

  /** Identities, revisions and counts are fixed for the VM's life; only PTP reads the clock. */
  fixed(fid: number): boolean {
    return fid !== KVM_PTP;
  }

  features(fid: number): number {
    if (fid === KVM_FEATURES) return this.vm.services.kvm ? 0 : -1;
    // PTP needs the machine's view of guest time; a backend without it does not offer the call.
    if (fid === KVM_PTP) return this.vm.services.kvm && this.ctx.vmPorts.time !== undefined ? 0 : -1;
    const fn = fid & 0xffff;
    // Call Count is deprecated from SMCCC v1.2 (DEN0028 C §6.2); VMs told 1.2 or later do not get it.
    if (fn === QUERY_CALL_COUNT) return this.vm.smccc < SMCCC_1_2 ? 0 : -1;
    // KVM implements no Call Count or Revision on its vendor owner; in KVM mode we match it.
    if (fn === QUERY_REVISION && (fid >>> 24 & 0x3f) === OEN.VENDOR_HYP && this.vm.services.kvm) return -1;
    return fn === QUERY_CALL_UID || fn === QUERY_REVISION ? 0 : -1;
  }

  /**
   * ARM_SMCCC_VENDOR_HYP_KVM_PTP: w1 selects the counter; returns the wall clock in ns as W0 (high) :
   * W1 (low) and the counter as W2 (high) : W3 (low), read together (Documentation/virt/kvm/arm/ptp_kvm.rst).
   */
  private ptp(call: SmcCall, res: SmcResult): void {
    const time = this.ctx.vmPorts.time;
    const which = call.w(1);
    if (time === undefined || (which !== KVM_PTP_VIRT_COUNTER && which !== KVM_PTP_PHYS_COUNTER)) {
      res.ret(SMCCC_RET.NOT_SUPPORTED);
      return;
    }
    const ns = BigInt.asUintN(64, time.wallClockNs());
    const cnt = BigInt.asUintN(64, time.counter(call.vcpu, which === KVM_PTP_PHYS_COUNTER));
    res.set(0, Number(ns >> 32n));
    res.set(1, Number(ns & 0xffff_ffffn));
    res.set(2, Number(cnt >> 32n));
    res.set(3, Number(cnt & 0xffff_ffffn));
  }
}

export const HYP_INFO_SERVICE: ServiceDefinition = {
  name: "hyp-info",
  enabled: (vm) => vm.services.hypInfo,
  claims: (vm): ServiceClaim[] => {
    const claims: ServiceClaim[] = OWNERS.map((owner) => ({ service: "hyp-info", owner, types: [CALL_TYPE.fast32], first: QUERY_CALL_COUNT, last: QUERY_REVISION }));
    if (vm.services.kvm) claims.push({ service: "hyp-info", owner: OEN.VENDOR_HYP, types: [CALL_TYPE.fast32], first: 0, last: 1 });
    return claims;
  },
  create: (ctx) => new HypInfoService(ctx.vm, ctx),
};
