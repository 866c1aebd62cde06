/**
 * Config rules that keep VMs apart where one VM's policy alone cannot show it:
 *
 * - an exclusive grant gives one VM sole use of its IDs against every way another VM could get them: its
 *   grants, its standard services' claims and its TEE mediator's claims;
 * - calls a TEE mediator owns never reach the secure world's trusted OS except through the mediator, which
 *   alone tells the trusted OS who is calling: a `forward` grant over them is refused.
 *
 * Function IDs are handled as sorted, disjoint inclusive intervals of 32-bit values.
 */
import type { ServiceClaim } from "./compile.js";
import type { ConfigError } from "./config.js";
import { selectorIntervals, type Rule } from "./rules.js";

export type Interval = readonly [number, number];

/**
 * The function IDs a trusted OS in the secure world serves, as SMCCC (DEN0028 §2.5 table 2-1 and §6)
 * assigns them and TF-A's dispatchers route them (docs/components/spd, the runtime-service writers'
 * guide): fast calls of the Trusted Application (48-49) and Trusted OS (50-63) owners, and every yielding
 * call with OEN 2-63, SMC32 and SMC64. The OP-TEE mediator claims exactly these for a VM with `tee:`,
 * and the modelled monitor hands the trusted OS a subset of them (src/firmware/monitor/monitor.ts).
 */
export const TRUSTED_OS_CALLS: readonly Interval[] = [
  [0x0200_0000, 0x3fff_ffff], // yielding SMC32, OEN 2-63
  [0x4200_0000, 0x7fff_ffff], // yielding SMC64, OEN 2-63
  [0xb000_0000, 0xbfff_ffff], // fast SMC32, OEN 48-63
  [0xf000_0000, 0xffff_ffff], // fast SMC64, OEN 48-63
];

/**
 * FF-A calls (DEN0077): function numbers 0x60-0xFF of the Standard Secure Service (OEN 4), fast SMC32 and
 * SMC64. With an SPMC in the secure world the FF-A mediator alone speaks them to it, as the hypervisor's
 * endpoint: it names the VM as sender and gives physical addresses it checked.
 */
export const FFA_CALLS: readonly Interval[] = [
  [0x8400_0060, 0x8400_00ff],
  [0xc400_0060, 0xc400_00ff],
];

/** Sorted, merged copy. */
export function normalizeIntervals(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

export function intersectIntervals(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const x = normalizeIntervals(a), y = normalizeIntervals(b);
  const out: Interval[] = [];
  let i = 0, j = 0;
  while (i < x.length && j < y.length) {
    const lo = Math.max(x[i]![0], y[j]![0]), hi = Math.min(x[i]![1], y[j]![1]);
    if (lo <= hi) out.push([lo, hi]);
    if (x[i]![1] < y[j]![1]) i++;
    else j++;
  }
  return out;
}

export function subtractIntervals(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const cut = normalizeIntervals(b);
  const out: Interval[] = [];
  for (const [lo0, hi] of normalizeIntervals(a)) {
    let lo = lo0;
    for (const [clo, chi] of cut) {
      if (chi < lo || clo > hi) continue;
      if (clo > lo) out.push([lo, clo - 1]);
      lo = chi + 1;
      if (lo > hi) break;
    }
    if (lo <= hi) out.push([lo, hi]);
  }
  return out;
}

/** The dispatch IDs a service claim covers. IDs outside the SMCCC layout (PSCI 0.1) come separately. */
export function claimIntervals(c: ServiceClaim): { layout: Interval[]; legacy: Interval[] } {
  const layout: Interval[] = [];
  const legacy: Interval[] = [];
  for (const t of c.types) {
    if (c.owner < 0 || c.first > c.last) continue;
    const base = ((t << 30) | (c.owner << 24)) >>> 0;
    layout.push([base + c.first, base + c.last]);
  }
  for (const fid of c.fids ?? []) ((fid & 0x00ff_0000) !== 0 ? legacy : layout).push([fid >>> 0, fid >>> 0]);
  return { layout, legacy };
}

const hex = (v: number) => `0x${(v >>> 0).toString(16).toUpperCase().padStart(8, "0")}`;

/** A short description of a set of IDs for an error: its first interval, and how many more. */
export function describeIntervals(list: readonly Interval[]): string {
  const first = list[0]!;
  const one = first[0] === first[1] ? hex(first[0]) : `${hex(first[0])}-${hex(first[1])}`;
  return list.length > 1 ? `${one} and ${list.length - 1} more range${list.length > 2 ? "s" : ""}` : one;
}

export interface IsolationVm {
  readonly name: string;
  readonly rules: readonly Rule[];
}

interface Exclusive<V> {
  readonly owner: V;
  readonly rule: Rule;
  readonly ids: readonly Interval[];
}

function exclusiveGrants<V extends IsolationVm>(vms: readonly V[]): Exclusive<V>[] {
  return vms.flatMap((owner) => owner.rules.filter((r) => r.exclusive).map((rule) => ({ owner, rule, ids: normalizeIntervals(selectorIntervals(rule.selector)) })));
}

/**
 * An exclusive grant gives one VM sole use of its IDs: another VM may hold no grant over them but deny.
 * One error per offending grant, naming an exclusive grant it overlaps (the first in config order among
 * those found for the same interval); exclusive intervals are searched in address order, so that many
 * grants do not cost a comparison of every pair.
 */
export function exclusiveGrantProblems(vms: readonly IsolationVm[]): ConfigError[] {
  const errors: ConfigError[] = [];
  const exclusive = exclusiveGrants(vms);
  if (exclusive.length === 0) return errors;
  const spans = exclusive.flatMap((e) => e.ids.map(([lo, hi]) => ({ lo, hi, e }))).sort((a, b) => a.lo - b.lo);
  // maxHi[k]: the highest end among spans[0..k], so that a search backwards stops as soon as nothing earlier can reach.
  const maxHi: number[] = [];
  spans.forEach((sp, k) => maxHi.push(Math.max(sp.hi, k > 0 ? maxHi[k - 1]! : -1)));
  const firstOverlap = (vm: IsolationVm, lo: number, hi: number): Exclusive<IsolationVm> | null => {
    let a = 0, b = spans.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (spans[m]!.lo <= hi) a = m + 1;
      else b = m;
    }
    for (let k = a - 1; k >= 0 && maxHi[k]! >= lo; k--) {
      const sp = spans[k]!;
      if (sp.hi >= lo && sp.e.owner !== vm) return sp.e;
    }
    return null;
  };
  for (const vm of vms) {
    for (const r of vm.rules) {
      if (r.action.kind === "deny") continue;
      let hit: Exclusive<IsolationVm> | null = null;
      for (const [lo, hi] of selectorIntervals(r.selector)) {
        const e = firstOverlap(vm, lo, hi);
        if (e && (hit === null || exclusive.indexOf(e) < exclusive.indexOf(hit))) hit = e;
      }
      if (hit) errors.push({ path: r.path, message: `overlaps ${hit.rule.path}, which grants those IDs exclusively to ${hit.owner.name}` });
    }
  }
  return errors;
}

/**
 * Exclusivity against what another VM gets without a grant: the claims of its standard services and of its
 * TEE mediator (`claimsOf`, known once the hypervisor has its services). A claim counts unless the VM denies
 * those IDs unconditionally (a grant decides before a claim); PSCI 0.1 IDs are answered before any grant,
 * so nothing denies those.
 */
export function exclusiveClaimProblems<V extends IsolationVm>(vms: readonly V[], claimsOf: (vm: V) => readonly ServiceClaim[]): ConfigError[] {
  const errors: ConfigError[] = [];
  const exclusive = exclusiveGrants(vms);
  if (exclusive.length === 0) return errors;
  for (const other of vms) {
    const theirs = exclusive.filter((e) => e.owner !== other);
    if (theirs.length === 0) continue;
    const denied = other.rules.filter((r) => r.action.kind === "deny" && r.constraints.length === 0).flatMap((r) => selectorIntervals(r.selector));
    // What each of the VM's services (or its TEE) would give it, per exclusive grant: one error each.
    const found = new Map<string, { path: string; what: string; e: Exclusive<V>; reached: Interval[] }>();
    for (const c of claimsOf(other)) {
      const { layout, legacy } = claimIntervals(c);
      for (const e of theirs) {
        const reached = [...subtractIntervals(intersectIntervals(layout, e.ids), denied), ...intersectIntervals(legacy, e.ids)];
        if (reached.length === 0) continue;
        const path = c.mediator ? `vms.${other.name}.tee` : `vms.${other.name}.services.${c.service}`;
        const key = `${path}|${e.rule.path}`;
        const seen = found.get(key);
        if (seen) seen.reached.push(...reached);
        else found.set(key, { path, what: c.mediator ? `its TEE (the ${c.mediator} mediator)` : `its ${c.service} service`, e, reached });
      }
    }
    for (const { path, what, e, reached } of found.values()) {
      errors.push({
        path,
        message: `${what} gives ${other.name} ${describeIntervals(normalizeIntervals(reached))}, which ${e.rule.path} grants exclusively to ${e.owner.name}; switch it off for ${other.name}, or deny those IDs in its grants`,
      });
    }
  }
  return errors;
}

/**
 * With a trusted OS in the secure world (platform.tee), a `forward` grant may not cover Trusted OS calls:
 * forwarded, they would reach the trusted OS past its mediator, with registers (a7, the client ID) and
 * physical addresses the guest chose. Guests reach the trusted OS through `tee:` (or `mediate:<name>`).
 */
export function mediatedForwardProblems(vms: readonly IsolationVm[], secure: { readonly tee: boolean; readonly spmc: boolean } = { tee: true, spmc: false }): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const vm of vms) {
    for (const r of vm.rules) {
      if (r.action.kind !== "forward") continue;
      const intervals = selectorIntervals(r.selector);
      const tos = secure.tee ? intersectIntervals(intervals, TRUSTED_OS_CALLS) : [];
      if (tos.length > 0) {
        errors.push({
          path: `${r.path}.action`,
          message: `forward would send Trusted OS calls (${describeIntervals(tos)}) to the secure world past the TEE mediator, which alone tells the trusted OS who calls (platform.tee is set); give the VM tee: optee, narrow the grant, or deny`,
        });
      }
      const ffa = secure.spmc ? intersectIntervals(intervals, FFA_CALLS) : [];
      if (ffa.length > 0) {
        errors.push({
          path: `${r.path}.action`,
          message: `forward would send FF-A calls (${describeIntervals(ffa)}) to the SPMC past the FF-A mediator, which alone names the sender and checks the memory (platform.spmc is set); give the VM tee: ffa, narrow the grant, or deny`,
        });
      }
    }
  }
  return errors;
}
