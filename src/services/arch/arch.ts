/**
 * Arm Architecture Service (OEN 0), SMCCC (DEN0028 G, v1.6) §7. Answers are per VM: the SMCCC version the
 * VM is told decides which calls exist, and the platform profile decides the workaround answers, the way
 * KVM and Xen answer from host state.
 */
import type { PlatformConfig, VmConfig } from "../../policy/load.js";
import { WA1_ANSWERS, WA2_ANSWERS, WA3_ANSWERS, WA4_ANSWERS } from "../../policy/platform.js";
import type { ServiceClaim } from "../../policy/compile.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { ServiceContext, ServiceDefinition, ServiceInstance } from "../../router/service.js";
import { ARCH_FUNCTIONS } from "../../smccc/functions/arch.js";
import { SMCCC_RET } from "../../smccc/return-codes.js";
import { SMCCC_1_1, SMCCC_1_2, SMCCC_1_6 } from "../../smccc/version.js";
import { socIdName, socIdType0, socIdType1 } from "./soc-id.js";
import { CALL_TYPE } from "../../smccc/fid.js";
import { OEN } from "../../smccc/owners.js";

const F = ARCH_FUNCTIONS;
const SMCCC_VERSION = F.SMCCC_VERSION.smc32;
const SMCCC_ARCH_FEATURES = F.SMCCC_ARCH_FEATURES.smc32;
const SOC_ID32 = F.SMCCC_ARCH_SOC_ID.smc32;
const SOC_ID64 = F.SMCCC_ARCH_SOC_ID.smc64;
const WA1 = F.SMCCC_ARCH_WORKAROUND_1.smc32;
const WA2 = F.SMCCC_ARCH_WORKAROUND_2.smc32;
const WA3 = F.SMCCC_ARCH_WORKAROUND_3.smc32;
const WA4 = F.SMCCC_ARCH_WORKAROUND_4.smc32;

/** SMCCC_ARCH_SOC_ID types (DEN0028 §7.4). */
export const SOC_ID_TYPE_VERSION = 0;
export const SOC_ID_TYPE_REVISION = 1;
export const SOC_ID_TYPE_NAME = 2;

export class ArchService implements ServiceInstance {
  private readonly version: number;
  private readonly wa: { wa1: number; wa2: number; wa3: number; wa4: number };
  /** SMCCC_ARCH_WORKAROUND_2 state per vCPU: 1 = mitigation enabled (the firmware default). */
  readonly ssbdEnabled: Uint8Array;
  private readonly socName: Uint32Array | null;

  constructor(vm: VmConfig, private readonly platform: PlatformConfig, private readonly ctx: ServiceContext) {
    this.version = vm.smccc;
    const w = platform.workarounds;
    this.wa = { wa1: WA1_ANSWERS[w.wa1], wa2: WA2_ANSWERS[w.wa2], wa3: WA3_ANSWERS[w.wa3], wa4: WA4_ANSWERS[w.wa4] };
    this.ssbdEnabled = new Uint8Array(vm.vcpus).fill(1);
    this.socName = platform.socId?.name !== undefined ? socIdName(platform.socId.name) : null;
  }

  handle(call: SmcCall, res: SmcResult): void {
    const fid = call.fid;
    // The call every SMCCC 1.1 caller makes first, and the benchmark's: answered before anything else.
    if (fid === SMCCC_VERSION) {
      // v1.0 has no SMCCC_VERSION: callers read -1 as "1.0" (DEN0028 §7.2).
      res.ret(this.version >= SMCCC_1_1 ? this.version : SMCCC_RET.NOT_SUPPORTED);
      return;
    }
    const f = this.features(fid);
    if (f < 0) {
      res.ret(SMCCC_RET.NOT_SUPPORTED);
      return;
    }
    switch (fid) {
      case SMCCC_ARCH_FEATURES:
        res.ret(this.featuresOf(call.w(1)));
        return;
      case SOC_ID32:
      case SOC_ID64:
        this.socId(call, res);
        return;
      case WA2:
        // W1 = 1 enables the mitigation on this PE, 0 disables it. With FEATURES -2 or 1 it is not
        // required, and a call changes nothing (DEN0028 §7.6).
        if (this.wa.wa2 === 0) this.ssbdEnabled[call.vcpu] = call.w(1) !== 0 ? 1 : 0;
        res.ret(SMCCC_RET.SUCCESS);
        return;
      case WA1:
      case WA3:
        // The branch-predictor invalidation happens in the real EL2/EL3 on the way; to the guest the
        // call is a no-op returning SUCCESS, as KVM's EL2 fast path answers it.
        res.ret(SMCCC_RET.SUCCESS);
        return;
      default:
        res.ret(SMCCC_RET.NOT_SUPPORTED);
    }
  }

  /**
   * SMCCC_VERSION and the workarounds without state (1, 3, 4) answer the same every time; so does any ID
   * the VM does not have. FEATURES and SOC_ID read x1; WORKAROUND_2 records the vCPU's SSBD state.
   */
  fixed(fid: number): boolean {
    if (fid === SMCCC_ARCH_FEATURES || fid === SOC_ID32 || fid === SOC_ID64 || fid === WA2) return false;
    return fid === SMCCC_VERSION || fid === WA1 || fid === WA3 || fid === WA4 || this.features(fid) < 0;
  }

  /**
   * The VM restarts: every vCPU's SMCCC_ARCH_WORKAROUND_2 state goes back to the firmware default,
   * mitigation enabled, as KVM's kvm_reset_vcpu does ("Default workaround setup is enabled"). The other
   * answers come from the VM's configuration and the platform profile, which a reset does not change.
   */
  reset(): void {
    this.ssbdEnabled.fill(1);
  }

  /** Whether a function of this service exists for the VM (the FEATURES answer for it). */
  features(fid: number): number {
    const v = this.version;
    switch (fid) {
      case SMCCC_VERSION:
      case SMCCC_ARCH_FEATURES:
        return v >= SMCCC_1_1 ? 0 : -1;
      case SOC_ID32:
        return v >= SMCCC_1_2 && this.platform.socId !== null ? 0 : -1;
      case SOC_ID64:
        return v >= SMCCC_1_6 && this.socName !== null ? 0 : -1;
      // The workaround calls are discovered through SMCCC_ARCH_FEATURES alone, so they exist from 1.1,
      // whatever revision of DEN0028 first described them: KVM (which reports 1.1) answers WA2 and WA3,
      // and Linux asks for them as soon as the firmware says 1.1 (arch/arm64/kernel/proton-pack.c).
      case WA1:
        return v >= SMCCC_1_1 ? this.wa.wa1 : -1;
      case WA2:
        return v >= SMCCC_1_1 ? this.wa.wa2 : -1;
      case WA3:
        return v >= SMCCC_1_1 ? this.wa.wa3 : -1;
      case WA4:
        return v >= SMCCC_1_1 ? this.wa.wa4 : -1;
      default:
        return -1;
    }
  }

  /** SMCCC_ARCH_FEATURES(fid): arch calls from this service, everything else through the VM's policy. */
  private featuresOf(queried: number): number {
    const q = queried >>> 0;
    if (((q >>> 24) & 0x3f) === 0 && (q & 0x8000_0000) !== 0) {
      // Arm Architecture calls are ours; the SVE hint is not part of the queried identity.
      return this.features((q & 0xfffe_ffff) >>> 0);
    }
    return this.ctx.features(q);
  }

  private socId(call: SmcCall, res: SmcResult): void {
    const soc = this.platform.socId!;
    const type = call.w(1);
    if (call.smc64) {
      // The SMC64 form carries the name type only (DEN0028 G §7.4.4).
      if (type !== SOC_ID_TYPE_NAME || this.socName === null) {
        res.ret(SMCCC_RET.INVALID_PARAMETER);
        return;
      }
      res.ret(SMCCC_RET.SUCCESS);
      for (let r = 1; r <= 17; r++) res.setWords(r, this.socName[2 * (r - 1)]!, this.socName[2 * (r - 1) + 1]!);
      return;
    }
    if (type === SOC_ID_TYPE_VERSION) res.ret(socIdType0(soc));
    else if (type === SOC_ID_TYPE_REVISION) res.ret(socIdType1(soc));
    else res.ret(SMCCC_RET.INVALID_PARAMETER);
  }
}

export const ARCH_SERVICE: ServiceDefinition = {
  name: "arch",
  enabled: (vm) => vm.services.arch,
  claims: (): ServiceClaim[] => [
    // The whole owner: unknown Arm Architecture calls get -1 from the service, like TF-A's arm_arch_svc.
    { service: "arch", owner: OEN.ARM_ARCH, types: [CALL_TYPE.fast32, CALL_TYPE.fast64], first: 0, last: 0xffff },
  ],
  create: (ctx) => new ArchService(ctx.vm, ctx.platform, ctx),
};
