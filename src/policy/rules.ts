/**
 * Normalized grants: what a rule matches, under which argument constraints, with which action.
 * Both the compiled table (compile.ts) and the reference evaluator behind `explain` (explain.ts) work
 * from these, so they cannot disagree about what a rule means.
 */
import type { CallType } from "../smccc/fid.js";

export type ActionKind = "emulate" | "forward" | "deny" | "mediate" | "delegate";

export interface Action {
  readonly kind: ActionKind;
  /** The mediator or delegate handler name, for `mediate:` and `delegate:`. */
  readonly target?: string | undefined;
}

export function parseAction(text: string): Action {
  const colon = text.indexOf(":");
  if (colon < 0) return { kind: text as ActionKind };
  return { kind: text.slice(0, colon) as ActionKind, target: text.slice(colon + 1) };
}

export function formatAction(a: Action): string {
  return a.target === undefined ? a.kind : `${a.kind}:${a.target}`;
}

export type Selector =
  | { readonly kind: "id"; readonly fid: number }
  | { readonly kind: "range"; readonly lo: number; readonly hi: number }
  | { readonly kind: "owner"; readonly first: number; readonly last: number; readonly calls: readonly CallType[] };

/** Allowed values of one argument register, as inclusive [lo, hi] pairs. */
export interface ArgConstraint {
  /** Register number, 1-17. */
  readonly reg: number;
  /**
   * Compare W_reg (the low 32 bits) instead of X_reg: for interfaces that pack two 32-bit arguments in
   * one register, as ZynqMP's EEMI does (x1 = arg1 << 32 | arg0).
   */
  readonly low32: boolean;
  readonly ranges: readonly (readonly [bigint, bigint])[];
}

export interface Rule {
  /** Position among the VM's grants; config order breaks ties between equally specific rules. */
  readonly index: number;
  /** The config path, "vms.dom0.grants[0]", which names the rule in `explain` and the trace. */
  readonly path: string;
  /** The rule's own name if it has one, else its path. */
  readonly label: string;
  readonly selector: Selector;
  readonly constraints: readonly ArgConstraint[];
  readonly action: Action;
  readonly exclusive: boolean;
}

/** Specificity classes, most specific first: an exact ID beats a range beats an owner grant. */
export const SPECIFICITY = { id: 0, range: 1, owner: 2 } as const;

/** The FID intervals a selector covers (bits 23:16 zero in every bucket), for overlap checks. */
export function selectorIntervals(s: Selector): [number, number][] {
  if (s.kind === "id") return [[s.fid, s.fid]];
  if (s.kind === "range") return [[s.lo, s.hi]];
  const out: [number, number][] = [];
  for (const t of s.calls) {
    const typeBits = callTypeBits(t);
    out.push([(typeBits | (s.first << 24)) >>> 0, (typeBits | (s.last << 24) | 0x00ff_ffff) >>> 0]);
  }
  return out;
}

export function callTypeBits(t: CallType): number {
  switch (t) {
    case "yield32": return 0;
    case "yield64": return 0x4000_0000;
    case "fast32": return 0x8000_0000;
    case "fast64": return 0xc000_0000;
  }
}

/** Whether the rule's selector matches a dispatch FID (SVE hint already removed). */
export function selectorMatches(s: Selector, fid: number): boolean {
  switch (s.kind) {
    case "id": return s.fid === fid;
    case "range": return fid >= s.lo && fid <= s.hi && (fid & 0x00ff_0000) === 0;
    case "owner": {
      const owner = (fid >>> 24) & 0x3f;
      if (owner < s.first || owner > s.last) return false;
      const type = fid >>> 30;
      return s.calls.some((t) => callTypeBits(t) >>> 30 === type);
    }
  }
}

/** Whether an argument value (as the callee sees it) is allowed by a constraint. */
export function constraintAllows(c: ArgConstraint, value: bigint): boolean {
  for (const [lo, hi] of c.ranges) if (value >= lo && value <= hi) return true;
  return false;
}
