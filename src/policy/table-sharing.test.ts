/**
 * VMs whose policies compile to the same table share its lookup arrays (TableCache). Sharing must never
 * change a decision: these tests compile random policies for several VMs shared and unshared and compare
 * every decision, and compare the router's decisions with `explain`, the reference evaluator.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import type { CallTarget } from "../router/ports.js";
import { compilePolicy, TableCache, type ServiceClaim } from "./compile.js";
import { explain, visibleArg } from "./explain.js";
import { parseConfigText, type Config, type VmConfig } from "./load.js";
import { constraintAllows, formatAction } from "./rules.js";
import type { PolicyTable } from "./table.js";

const CLAIMS: ServiceClaim[] = [
  { service: "arch", owner: 0, types: [2, 3], first: 0, last: 0xffff },
  { service: "psci", owner: 4, types: [2, 3], first: 0, last: 0x1f },
  { service: "trng", owner: 4, types: [2, 3], first: 0x50, last: 0x5f },
];

/** The decision of a compiled table, evaluated as the router does: the first step whose constraints hold. */
function tableDecision(table: PolicyTable, vm: VmConfig, fid: number, args: readonly bigint[]): string {
  for (const step of table.chainFor(fid).steps) {
    const holds = step.constraints.every((c) => constraintAllows(c, visibleArg(args, c.reg, fid, vm.smccc) & (c.low32 ? 0xffff_ffffn : ~0n)));
    if (holds) return `${formatAction(step.action)} ${step.label} ${step.service}`;
  }
  throw new Error("a chain always ends with an unconditional step");
}

// Few distinct IDs and values, so that random VMs often have policies of the same shape.
const FIDS = [0xc200_0011, 0x8200_0011, 0x8200_0012, 0xc200_0024, 0x8400_0000, 0x8400_0050, 0x8300_0001, 0xb200_0001];
const VALUES = [1040n, 1041n, (1n << 32n) | 1040n, 0x1_0000_0000n, 0n, 0xffff_ffffn];
const valueText = (v: bigint) => `0x${v.toString(16)}`;

const constraintArb = fc.record({
  reg: fc.constantFrom(1, 2),
  low32: fc.boolean(),
  values: fc.uniqueArray(fc.constantFrom(...VALUES.filter((v) => v <= 0xffff_ffffn)), { minLength: 1, maxLength: 2 }),
});
const grantArb = fc.record({
  sel: fc.oneof(
    fc.constantFrom(...FIDS).map((id) => ({ id: valueText(BigInt(id)) })),
    fc.constantFrom({ range: "0x82000010-0x8200001F" }, { range: "0xC2000000-0xC20000FF" }),
    fc.constantFrom({ owner: "sip" }, { owner: "sip", calls: ["fast64"] }, { owner: "std-secure", calls: ["fast32"] }),
  ),
  action: fc.constantFrom("forward", "deny", "emulate", "delegate:h"),
  args: fc.option(constraintArb, { nil: undefined }),
});
type Grant = typeof grantArb extends fc.Arbitrary<infer T> ? T : never;

const grantJson = (g: Grant) => ({
  ...g.sel,
  action: g.action,
  ...(g.args ? { args: { [`${g.args.low32 ? "w" : "x"}${g.args.reg}`]: g.args.values.map(valueText) } } : {}),
});

/**
 * One base policy and, per VM, the same policy with a few small changes: a constraint's width, its
 * register or values, an action. The changes are exactly what a table shared by mistake would lose.
 */
const mutationArb = fc.record({ at: fc.nat(), kind: fc.constantFrom("width", "reg", "values", "action", "none") });
const policiesArb = fc.tuple(fc.array(grantArb, { minLength: 1, maxLength: 6 }), fc.array(fc.array(mutationArb, { maxLength: 2 }), { minLength: 2, maxLength: 4 })).map(([base, perVm]) =>
  perVm.map((mutations) => {
    const grants = base.map((g) => ({ ...g, ...(g.args ? { args: { ...g.args } } : {}) }));
    for (const m of mutations) {
      const g = grants[m.at % grants.length]!;
      if (m.kind === "action") g.action = g.action === "forward" ? "deny" : "forward";
      else if (g.args && m.kind === "width") g.args.low32 = !g.args.low32;
      else if (g.args && m.kind === "reg") g.args.reg = g.args.reg === 1 ? 2 : 1;
      else if (g.args && m.kind === "values") g.args.values = [g.args.values[0] === 1040n ? 1041n : 1040n];
    }
    return grants;
  }),
);

function configOf(policies: readonly Grant[][]): Config {
  const vms = Object.fromEntries(policies.map((grants, i) => [`vm${i}`, { grants: grants.map(grantJson) }]));
  const r = parseConfigText(JSON.stringify({ delegates: { h: { module: "./h.ts" } }, vms }), "json");
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

const callArb = fc.tuple(fc.constantFrom(...FIDS, 0x8200_0013, 0xc200_00ff), fc.constantFrom(...VALUES), fc.constantFrom(...VALUES));

describe("compiled tables shared between VMs", () => {
  it("reproduces the reported case: w1: [1040] on one VM and x1: [1040] on another", () => {
    const cfg = parseConfigText(
      "vms:\n" +
        "  a:\n    grants:\n      - { id: 0xC2000011, args: { w1: [1040] }, action: forward }\n" +
        "  b:\n    grants:\n      - { id: 0xC2000011, args: { x1: [1040] }, action: forward }\n",
    );
    if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
    const [a, b] = cfg.value.vms;
    for (const order of [[a!, b!], [b!, a!]]) {
      const cache = new TableCache();
      const tables = new Map(order.map((vm) => [vm.name, cache.compile(vm.rules, CLAIMS)] as const));
      const upper = [0n, (1n << 32n) | 1040n];
      // PM_RESET_ASSERT with x1 = 1 << 32 | 1040: w1 is 1040, x1 is not.
      expect(tableDecision(tables.get("a")!, a!, 0xc200_0011, upper)).toMatch(/^forward /);
      expect(tableDecision(tables.get("b")!, b!, 0xc200_0011, upper)).toMatch(/^deny /);
      expect(tableDecision(tables.get("b")!, b!, 0xc200_0011, [0n, 1040n])).toMatch(/^forward /);
    }
  });

  it("decide every call as tables compiled for each VM alone do", () => {
    fc.assert(
      fc.property(policiesArb, fc.array(callArb, { minLength: 1, maxLength: 24 }), (policies, calls) => {
        const cfg = configOf(policies);
        const cache = new TableCache();
        const shared = cfg.vms.map((vm) => cache.compile(vm.rules, CLAIMS));
        cfg.vms.forEach((vm, i) => {
          const alone = compilePolicy(vm.rules, CLAIMS);
          for (const [fid, x1, x2] of calls) {
            const args = [0n, x1, x2];
            expect(tableDecision(shared[i]!, vm, fid, args)).toBe(tableDecision(alone, vm, fid, args));
          }
        });
      }),
      { numRuns: 400 },
    );
  });
});

describe("the router decides as explain says", () => {
  const delegate: CallTarget = { handle: (_call, res) => void res.ret(0) };

  it("for random policies of several VMs that share tables", () => {
    fc.assert(
      fc.property(policiesArb, fc.array(fc.tuple(fc.nat(), callArb), { minLength: 1, maxLength: 16 }), (policies, calls) => {
        const cfg = configOf(policies);
        const machine = ScriptedMachine.fromConfig(cfg, { delegates: new Map([["h", delegate]]) });
        const router = machine.hypervisor.router;
        for (const [which, [fid, x1, x2]] of calls) {
          const vm = cfg.vms[which % cfg.vms.length]!;
          const e = explain(vm, router.claimsFor(vm), { fid, args: [0n, x1, x2] });
          const r = machine.vm(vm.name).vcpu(0).smc(fid, x1, x2);
          // The trace records the action kind; the rule names the grant (and so the target).
          expect(r.decision).toEqual({ action: e.decision.action.split(":")[0], rule: e.decision.rule });
        }
      }),
      { numRuns: 80 },
    );
  });
});
