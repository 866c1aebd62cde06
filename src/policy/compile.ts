/**
 * Compiling a VM's grants and default services into its PolicyTable.
 *
 * Precedence, per dispatch FID (docs/policy.md):
 *   1. grants naming the exact ID, in config order;
 *   2. grants whose range covers it, in config order;
 *   3. grants for its owner, in config order;
 *   4. the standard service that claims it, if the VM has that service;
 *   5. deny.
 * A step with argument constraints only decides when they hold; the first unconditional step ends the
 * chain. The reference evaluator in explain.ts applies the same order by scanning every rule.
 */
import { CALL_TYPES } from "../smccc/fid.js";
import { SPECIFICITY, type Action, type ArgConstraint, type Rule, type Selector } from "./rules.js";
import { PolicyTable, type Chain, type Step } from "./table.js";

/** The claim covering a dispatch FID, or null. */
export function claimFor(claims: readonly ServiceClaim[], fid: number): ServiceClaim | null {
  const f = fid >>> 0;
  for (const c of claims) if (c.fids?.includes(f)) return c;
  if ((f & 0x00ff_0000) !== 0) return null;
  const owner = (f >>> 24) & 0x3f, type = f >>> 30, fn = f & 0xffff;
  for (const c of claims) if (c.owner === owner && c.types.includes(type) && fn >= c.first && fn <= c.last) return c;
  return null;
}

/** The service that claims a dispatch FID, or null. */
export function claimingService(claims: readonly ServiceClaim[], fid: number): string | null {
  const f = fid >>> 0;
  for (const c of claims) if (c.fids?.includes(f)) return c.service;
  if ((f & 0x00ff_0000) !== 0) return null;
  const owner = (f >>> 24) & 0x3f, type = f >>> 30, fn = f & 0xffff;
  for (const c of claims) if (c.owner === owner && c.types.includes(type) && fn >= c.first && fn <= c.last) return c.service;
  return null;
}

/**
 * A standard service's claim: function numbers first-last of one owner, for some call types; or, with
 * `fids`, exact IDs outside the SMCCC layout (PSCI 0.1 IDs chosen by a device tree). Exact IDs with bits
 * 23:16 clear go into the table like any other; the others are looked up by the router before the
 * calling-convention checks that would reject them.
 */
export interface ServiceClaim {
  readonly service: string;
  readonly owner: number;
  /** Indices into CALL_TYPES (FID bits 31:30): 0 yield32, 1 yield64, 2 fast32, 3 fast64. */
  readonly types: readonly number[];
  readonly first: number;
  readonly last: number;
  readonly fids?: readonly number[];
  /** For a TEE mediator's claims: calls go to `mediate:<mediator>` rather than to an emulating service. */
  readonly mediator?: string;
}

/** Exact IDs claimed outside the SMCCC layout: the router checks these before the convention does. */
export function legacyClaims(claims: readonly ServiceClaim[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const c of claims) for (const fid of c.fids ?? []) if ((fid & 0x00ff_0000) !== 0) out.set(fid >>> 0, c.service);
  return out;
}

const DENY: Action = { kind: "deny" };
const EMULATE: Action = { kind: "emulate" };

export const DEFAULT_DENY_LABEL = "default:deny";

interface Item {
  /** The grant, or null for a service claim (then `step` is set). */
  readonly rule: Rule | null;
  readonly step: Step | null;
  /** Sort key: specificity class, then config order. */
  readonly order: number;
  readonly unconditional: boolean;
  readonly first: number;
  readonly last: number;
}

class ChainInterner {
  readonly chains: Chain[] = [];
  private readonly byKey = new Map<string, number>();
  private readonly ids = new Map<Step, number>();

  intern(steps: Step[]): number {
    const key = steps.map((s) => this.stepId(s)).join(",");
    let idx = this.byKey.get(key);
    if (idx === undefined) {
      idx = this.chains.length;
      this.chains.push({ steps });
      this.byKey.set(key, idx);
    }
    return idx;
  }

  private stepId(s: Step): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(s, id);
    }
    return id;
  }
}

/** Builds the chain for a set of candidate items: sorted by precedence, cut after the first unconditional one. */
function chainSteps(items: readonly Item[], fid: number, denyStep: Step, ruleStep: (r: Rule, fid: number) => Step): Step[] {
  const sorted = [...items].sort((a, b) => a.order - b.order);
  const steps: Step[] = [];
  for (const it of sorted) {
    steps.push(it.rule ? ruleStep(it.rule, fid) : it.step!);
    if (it.unconditional) return steps;
  }
  steps.push(denyStep);
  return steps;
}

export function compilePolicy(rules: readonly Rule[], claims: readonly ServiceClaim[]): PolicyTable {
  const interner = new ChainInterner();
  const denyStep: Step = { rule: null, action: DENY, service: null, label: DEFAULT_DENY_LABEL, constraints: [] };
  const serviceSteps = new Map<string, Step>();
  const serviceStep = (name: string, mediator?: string): Step => {
    let s = serviceSteps.get(name);
    if (!s) {
      const step: Step = mediator
        ? { rule: null, action: { kind: "mediate", target: mediator }, service: null, label: `tee:${mediator}`, constraints: [] }
        : { rule: null, action: EMULATE, service: name, label: `default:${name}`, constraints: [] };
      serviceSteps.set(name, (s = step));
    }
    return s;
  };
  const claimOf = (fid: number): string | null => claimingService(claims, fid);

  const buckets = new Int32Array(256);
  const oddChains = new Uint32Array(256);
  const dir: number[] = [];
  const pool: number[] = [];
  const stepCache = new Map<string, Step>();
  const ruleStep = (rule: Rule, fid: number): Step => {
    // Steps of one rule differ only in the claiming service; share them so identical chains intern once.
    const service = rule.action.kind === "emulate" ? claimOf(fid) : null;
    const key = `${rule.index}/${service}`;
    let s = stepCache.get(key);
    if (!s) stepCache.set(key, (s = { rule, action: rule.action, service, label: rule.label, constraints: rule.constraints }));
    return s;
  };

  for (let bucket = 0; bucket < 256; bucket++) {
    const type = bucket >>> 6, owner = bucket & 0x3f;
    const base = (bucket << 24) >>> 0;
    const items: Item[] = [];
    const ownerRules: Rule[] = [];
    for (const r of rules) {
      const s = r.selector;
      const unconditional = r.constraints.length === 0;
      if (s.kind === "id") {
        if (s.fid >>> 24 === bucket && (s.fid & 0x00ff_0000) === 0) {
          const fn = s.fid & 0xffff;
          items.push({ rule: r, step: null, order: SPECIFICITY.id * 1e6 + r.index, unconditional, first: fn, last: fn });
        }
      } else if (s.kind === "range") {
        const lo = Math.max(s.lo, base), hi = Math.min(s.hi, base + 0xffff);
        if (lo <= hi) items.push({ rule: r, step: null, order: SPECIFICITY.range * 1e6 + r.index, unconditional, first: lo - base, last: hi - base });
      } else if (owner >= s.first && owner <= s.last && s.calls.some((t) => CALL_TYPES.indexOf(t) === type)) {
        items.push({ rule: r, step: null, order: SPECIFICITY.owner * 1e6 + r.index, unconditional, first: 0, last: 0xffff });
        ownerRules.push(r);
      }
    }
    // Segments are also cut at claim boundaries, so an emulating grant's step names one service.
    for (const c of claims) {
      if (c.owner === owner && c.types.includes(type)) {
        items.push({ rule: null, step: serviceStep(c.service, c.mediator), order: 3e6, unconditional: true, first: c.first, last: c.last });
      }
      for (const fid of c.fids ?? []) {
        if (fid >>> 24 === bucket && (fid & 0x00ff_0000) === 0) items.push({ rule: null, step: serviceStep(c.service, c.mediator), order: 3e6, unconditional: true, first: fid & 0xffff, last: fid & 0xffff });
      }
    }
    // Yielding IDs with bits 23:16 set: only owner grants match them, and no service claims them.
    const oddFid = (base | 0x1_0000) >>> 0;
    oddChains[bucket] = interner.intern(
      chainSteps(ownerRules.map((r) => ({ rule: r, step: null, order: r.index, unconditional: r.constraints.length === 0, first: 0, last: 0xffff })), oddFid, denyStep, ruleStep),
    );

    const cuts = new Set<number>([0, 0x1_0000]);
    for (const it of items) {
      cuts.add(it.first);
      cuts.add(it.last + 1);
    }
    const points = [...cuts].sort((a, b) => a - b);
    const byStart = [...items].sort((a, b) => a.first - b.first);
    let active: Item[] = [];
    let k = 0;
    const segChains: number[] = [];
    for (let i = 0; i + 1 < points.length; i++) {
      const start = points[i]!;
      active = active.filter((it) => it.last >= start);
      while (k < byStart.length && byStart[k]!.first <= start) {
        if (byStart[k]!.last >= start) active.push(byStart[k]!);
        k++;
      }
      segChains.push(interner.intern(chainSteps(active, (base + start) >>> 0, denyStep, ruleStep)));
    }
    if (segChains.every((c) => c === segChains[0])) {
      buckets[bucket] = ~segChains[0]!;
      continue;
    }
    buckets[bucket] = dir.length;
    let seg = 0;
    for (let page = 0; page < 256; page++) {
      const pStart = page << 8, pEnd = pStart + 256;
      while (points[seg + 1]! <= pStart) seg++;
      if (points[seg + 1]! >= pEnd) {
        dir.push(~segChains[seg]!);
        continue;
      }
      dir.push(pool.length);
      let s = seg;
      for (let fn = pStart; fn < pEnd; fn++) {
        while (points[s + 1]! <= fn) s++;
        pool.push(segChains[s]!);
      }
    }
  }
  return new PolicyTable(interner.chains, buckets, Int32Array.from(dir), Uint32Array.from(pool), oddChains);
}

/**
 * Compiled tables shared between VMs whose grants and claims are the same apart from their names: the
 * lookup arrays are built once and each VM gets chains that name its own rules. A thousand VMs with one
 * policy then cost one set of pages, and the hot path touches the same cache lines for all of them.
 */
export class TableCache {
  private readonly byKey = new Map<string, { table: PolicyTable; rules: readonly Rule[] }>();

  compile(rules: readonly Rule[], claims: readonly ServiceClaim[]): PolicyTable {
    const key = structuralKey(rules, claims);
    const hit = this.byKey.get(key);
    if (hit === undefined) {
      const table = compilePolicy(rules, claims);
      this.byKey.set(key, { table, rules });
      return table;
    }
    const relabel = new Map<Step, Step>();
    const chains = hit.table.chains.map((c) => ({
      steps: c.steps.map((s) => {
        if (s.rule === null) return s;
        let mine = relabel.get(s);
        if (!mine) {
          // The step's action and constraints are the VM's own too: equal keys mean they are equal, and
          // taking them from the VM's own rule keeps it so if the key ever missed a field.
          const r = rules[s.rule.index]!;
          relabel.set(s, (mine = { ...s, rule: r, label: r.label, action: r.action, constraints: r.constraints }));
        }
        return mine;
      }),
    }));
    return hit.table.withChains(chains);
  }
}

/**
 * Everything about a VM's rules and claims that changes a decision, and nothing else (names, paths and
 * exclusivity do not). Each field is written out by name, so a field added to Rule, ArgConstraint or
 * ServiceClaim is not shared by accident: a constraint on W1 (the low 32 bits) and one on X1 with the same
 * values decide differently, so the register's width is part of the key.
 */
export function structuralKey(rules: readonly Rule[], claims: readonly ServiceClaim[]): string {
  const selector = (s: Selector) =>
    s.kind === "id" ? ["id", s.fid] : s.kind === "range" ? ["range", s.lo, s.hi] : ["owner", s.first, s.last, [...s.calls]];
  const constraint = (c: ArgConstraint) => [c.reg, c.low32 ? "w" : "x", c.ranges.map(([lo, hi]) => `${lo}-${hi}`)];
  const rule = (r: Rule) => [r.index, selector(r.selector), r.constraints.map(constraint), r.action.kind, r.action.target ?? null];
  const claim = (c: ServiceClaim) => [c.service, c.owner, [...c.types], c.first, c.last, c.fids ? [...c.fids] : null, c.mediator ?? null];
  return JSON.stringify([rules.map(rule), claims.map(claim)]);
}
