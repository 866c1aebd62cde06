/**
 * The modelled EL3 monitor: the secure world's firmware, reachable only through SMCs from the hypervisor
 * (forwarded guest calls and the hypervisor's own calls, R9). Deterministic: no clock, no ambient
 * randomness; entropy comes from an injected generator.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import { OEN } from "../../smccc/owners.js";
import { uuidToSmcccWords } from "../../smccc/uuid.js";
import { EemiService, ZYNQMP_NODES, type NodeSpec, type PlatformMemoryAccess } from "./eemi.js";
import { ModelEntropy, seededGenerator, type ByteGenerator } from "./entropy.js";
import { PhysicalPsci } from "./physical-psci.js";

export interface MonitorOptions {
  /** Where entropy comes from; a seeded generator (seed 0) when not given. */
  readonly entropy?: ByteGenerator;
  /** Entropy bytes available before the source runs dry (default: unlimited). */
  readonly entropyBudget?: number;
  /** The SiP service's device nodes (default: the ZynqMP-shaped table). */
  readonly nodes?: readonly NodeSpec[];
  /** How the monitor reaches memory a caller names (checked against secure memory and VM ownership). */
  readonly memory?: PlatformMemoryAccess;
  /** Told when the monitor refuses a caller for touching what is not its own (the trace records it). */
  readonly onRefusal?: (vm: string, vcpu: number, fid: number, what: string) => void;
  /** The trusted OS the monitor dispatches Trusted OS calls to (OP-TEE), if the platform has one. */
  readonly trustedOs?: CallTarget;
  /** The SPMC the monitor hands FF-A calls to (as TF-A's SPMD does), if the platform has one. */
  readonly spmc?: CallTarget;
}

/** FFA_ERROR and its NOT_SUPPORTED code (DEN0077): what a caller the SPMC does not serve gets. */
const FFA_ERROR = 0x8400_0060;
const FFA_NOT_SUPPORTED = -1;

/** FF-A's function IDs: OEN 4 (Standard Secure), function numbers 0x60-0xFF, fast SMC32 and SMC64. */
export function isFfaCall(fid: number): boolean {
  const f = fid >>> 0;
  return (f & 0xbfff_ff00) >>> 0 === 0x8400_0000 && (f & 0xff) >= 0x60;
}

/** The monitor's identity on the owners it serves (fixed UUIDs of the model, version 4). */
export const MONITOR_SIP_UUID = "8f1c2a6e-3b7d-4e95-b0a4-6d2e9c13f57a";
export const MONITOR_STD_UUID = "c4e0b8d2-7a15-4f3c-9e6b-2a58d1f0c7e4";

export class MonitorModel implements CallTarget {
  readonly psci = new PhysicalPsci();
  readonly entropy: ModelEntropy;
  readonly eemi: EemiService;
  /** Calls served, by origin VM name: what the monitor saw (tests read this). */
  readonly served = new Map<string, number>();
  private current: { vcpu: number; fid: number } = { vcpu: 0, fid: 0 };
  trustedOs: CallTarget | null;
  spmc: CallTarget | null;
  private readonly onRefusal: MonitorOptions["onRefusal"];

  constructor(opts: MonitorOptions = {}) {
    this.trustedOs = opts.trustedOs ?? null;
    this.spmc = opts.spmc ?? null;
    this.onRefusal = opts.onRefusal;
    this.entropy = new ModelEntropy(opts.entropy ?? seededGenerator(0), opts.entropyBudget);
    this.eemi = new EemiService(opts.nodes ?? ZYNQMP_NODES, opts.memory, (vm, what) => opts.onRefusal?.(vm, this.current.vcpu, this.current.fid, what));
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    this.served.set(origin.vmName, (this.served.get(origin.vmName) ?? 0) + 1);
    this.current = { vcpu: origin.vcpu, fid: call.rawFid };
    const fid = call.fid;
    if (this.psci.claims(fid)) return this.psci.handle(call, res, origin);
    if (this.eemi.claims(fid)) return this.eemi.handle(call, res, origin);
    // Trusted OS calls (fast OEN 50-63, yielding OEN 2-63) go to the trusted OS, as TF-A's SPD does, but
    // only the hypervisor's: its TEE mediator names the guest in a7 and gives the OS platform addresses it
    // checked. A VM's call forwarded as the guest made it would carry the guest's own a7 (another VM's
    // client ID, or 0, the hypervisor's) and addresses of its choosing, so it never reaches the trusted OS,
    // whatever a policy grants (SMCCC's unknown-function answer, and a refusal in the trace).
    const oen = (fid >>> 24) & 0x3f;
    if (this.trustedOs !== null && ((fid & 0x8000_0000) !== 0 ? oen >= OEN.TRUSTED_OS_FIRST : oen >= OEN.SIP)) {
      if (origin.vmId !== 0) {
        this.onRefusal?.(origin.vmName, origin.vcpu, call.rawFid, "Trusted OS calls reach the trusted OS only through its mediator");
        return res.ret(-1);
      }
      return this.trustedOs.handle(call, res, origin) as void;
    }
    // FF-A goes to the SPMC (TF-A's SPMD forwards it so), and only the hypervisor's: its FF-A mediator is
    // the normal world's endpoint that names the sender VM and gives the SPMC addresses it checked.
    if (this.spmc !== null && isFfaCall(fid)) {
      if (origin.vmId !== 0) {
        this.onRefusal?.(origin.vmName, origin.vcpu, call.rawFid, "FF-A calls reach the SPMC only through the FF-A mediator");
        res.set(0, FFA_ERROR);
        res.set(1, 0);
        res.set(2, FFA_NOT_SUPPORTED >>> 0);
        return;
      }
      return this.spmc.handle(call, res, origin) as void;
    }
    if ((fid & 0xffff_ff00) >>> 0 === 0x8200_ff00 || (fid & 0xffff_ff00) >>> 0 === 0x8400_ff00) return this.query(fid, res);
    // Anything else: SMCCC's answer to an unknown function.
    res.ret(-1);
  }

  /** General queries for the owners the monitor serves (SMCCC §6.2). */
  private query(fid: number, res: SmcResult): void {
    const owner = (fid >>> 24) & 0x3f;
    switch (fid & 0xffff) {
      case 0xff00:
        // Call Count: the EEMI APIs for SiP; physical PSCI's calls for the standard service.
        return res.ret(owner === OEN.SIP ? 16 : 7);
      case 0xff01: {
        const w = uuidToSmcccWords(owner === OEN.SIP ? MONITOR_SIP_UUID : MONITOR_STD_UUID);
        for (let i = 0; i < 4; i++) res.set(i, w[i]!);
        return;
      }
      case 0xff03:
        res.ret(1);
        return res.set(1, 0);
    }
    res.ret(-1);
  }
}
