/**
 * `explain`: the decision for a call and the rule behind it, computed by scanning every rule in
 * precedence order. This is the reference the compiled table is tested against; it is not on the hot
 * path.
 */
import { checkFid, dispatchFid, FID_CHECK_LABELS, FID_OK, registerRules } from "../smccc/convention.js";
import { decodeFid, hex32, type DecodedFid } from "../smccc/fid.js";
import { smcccVersionName } from "../smccc/version.js";
import { claimFor, claimingService, DEFAULT_DENY_LABEL, legacyClaims, type ServiceClaim } from "./compile.js";
import type { VmConfig } from "./load.js";
import { constraintAllows, formatAction, selectorMatches, SPECIFICITY, type Action, type Rule } from "./rules.js";

export interface ExplainCall {
  readonly fid: number;
  /** Argument registers by number: args[1] is x1. Missing ones are zero. */
  readonly args?: readonly bigint[];
  readonly aarch32?: boolean;
  /** The immediate of the SMC or HVC instruction. */
  readonly imm?: number;
}

export interface Considered {
  readonly rule: string;
  readonly result: "decided" | "arguments-not-allowed";
  readonly detail: string;
}

export interface Explanation {
  readonly vm: string;
  readonly smccc: string;
  readonly fid: DecodedFid;
  readonly decision: {
    readonly action: string;
    readonly rule: string;
    readonly service: string | null;
    /** True when the call never reaches policy: a calling-convention rule answers it. */
    readonly convention: boolean;
    readonly reason: string;
  };
  readonly considered: readonly Considered[];
}

/** The value of an argument register as the callee sees it under the call's register rules. */
export function visibleArg(args: readonly bigint[] | undefined, reg: number, fid: number, smcccVersion: number): bigint {
  const smc64 = (fid & 0x4000_0000) !== 0;
  if (reg > registerRules(smcccVersion, smc64).lastArg) return 0n;
  const v = BigInt.asUintN(64, args?.[reg] ?? 0n);
  return smc64 ? v : v & 0xffff_ffffn;
}

export function explain(vm: VmConfig, claims: readonly ServiceClaim[], call: ExplainCall): Explanation {
  const decoded = decodeFid(call.fid);
  const base = { vm: vm.name, smccc: smcccVersionName(vm.smccc), fid: decoded };
  const aarch32 = call.aarch32 ?? vm.aarch32;
  if ((call.imm ?? 0) !== 0) {
    const undef = vm.immediate === "undef";
    return {
      ...base,
      decision: {
        action: "deny", rule: "smccc:immediate", service: null, convention: true,
        reason: `non-zero immediate #${call.imm} is reserved (SMCCC 1.4 §2.9): ${undef ? "UNDEF injected (immediate: undef, like Xen)" : "x0 = -1 and the instruction is skipped (immediate: not-supported, like KVM)"}`,
      },
      considered: [],
    };
  }
  const legacy = legacyClaims(claims).get(decoded.fid);
  if (legacy !== undefined) {
    return { ...base, decision: decisionOf({ kind: "emulate" }, `default:${legacy}`, legacy, `an ID outside the SMCCC layout that this VM's ${legacy} configuration names (PSCI 0.1)`), considered: [] };
  }
  const check = checkFid(decoded.fid, aarch32, vm.smccc);
  if (check !== FID_OK) {
    const reasons = ["", "SMC64 function IDs are invalid from an AArch32 caller (SMCCC §2.5)", "bits 23:17 of a fast call must be zero (SMCCC §2.5)", `bit 16 is must-be-zero before SMCCC 1.3 and this VM is told ${base.smccc}`];
    return { ...base, decision: { action: "deny", rule: FID_CHECK_LABELS[check]!, service: null, convention: true, reason: `${reasons[check]}: -1` }, considered: [] };
  }
  const fid = dispatchFid(decoded.fid);
  const candidates = vm.rules
    .filter((r) => selectorMatches(r.selector, fid))
    .sort((a, b) => SPECIFICITY[a.selector.kind] - SPECIFICITY[b.selector.kind] || a.index - b.index);
  const considered: Considered[] = [];
  const service = claimingService(claims, fid);
  for (const r of candidates) {
    const failed = failedConstraint(r, call.args, fid, vm.smccc);
    if (failed !== null) {
      considered.push({ rule: r.label, result: "arguments-not-allowed", detail: failed });
      continue;
    }
    considered.push({ rule: r.label, result: "decided", detail: `${r.selector.kind} grant, action ${formatAction(r.action)}` });
    return { ...base, decision: decisionOf(r.action, r.label, r.action.kind === "emulate" ? service : null, `${describeSelector(r)} grants it`), considered };
  }
  const claim = claimFor(claims, fid);
  if (claim?.mediator) {
    return { ...base, decision: decisionOf({ kind: "mediate", target: claim.mediator }, `tee:${claim.mediator}`, null, `the ${claim.mediator} mediator serves the Trusted OS and Trusted Application owners for VMs with that TEE enabled`), considered };
  }
  if (service !== null) {
    return { ...base, decision: decisionOf({ kind: "emulate" }, `default:${service}`, service, `the standard ${service} service answers it for every VM that has it`), considered };
  }
  return { ...base, decision: decisionOf({ kind: "deny" }, DEFAULT_DENY_LABEL, null, "no grant matches and no standard service of this VM claims it"), considered };
}

function decisionOf(action: Action, rule: string, service: string | null, reason: string): Explanation["decision"] {
  return { action: formatAction(action), rule, service, convention: false, reason };
}


function failedConstraint(r: Rule, args: readonly bigint[] | undefined, fid: number, version: number): string | null {
  for (const c of r.constraints) {
    const whole = visibleArg(args, c.reg, fid, version);
    const v = c.low32 ? whole & 0xffff_ffffn : whole;
    if (!constraintAllows(c, v)) {
      const allowed = c.ranges.map(([lo, hi]) => (lo === hi ? `0x${lo.toString(16)}` : `0x${lo.toString(16)}-0x${hi.toString(16)}`)).join(", ");
      return `${c.low32 ? "w" : "x"}${c.reg} = 0x${v.toString(16)} is not among ${allowed}`;
    }
  }
  return null;
}

function describeSelector(r: Rule): string {
  const s = r.selector;
  if (s.kind === "id") return `the exact-ID grant ${r.label} (${hex32(s.fid)})`;
  if (s.kind === "range") return `the range grant ${r.label} (${hex32(s.lo)}-${hex32(s.hi)})`;
  return `the owner grant ${r.label} (owner ${s.first === s.last ? s.first : `${s.first}-${s.last}`}, ${s.calls.join("/")})`;
}
