import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compilePolicy, type ServiceClaim } from "./compile.js";
import { explain, visibleArg } from "./explain.js";
import { parseConfigText, type VmConfig } from "./load.js";
import { constraintAllows } from "./rules.js";
import type { PolicyTable } from "./table.js";

const CLAIMS: ServiceClaim[] = [
  { service: "arch", owner: 0, types: [2, 3], first: 0, last: 0xffff },
  { service: "psci", owner: 4, types: [2, 3], first: 0, last: 0x1f },
  { service: "trng", owner: 4, types: [2, 3], first: 0x50, last: 0x5f },
  { service: "hyp-info", owner: 5, types: [2], first: 0xff00, last: 0xff03 },
];

function vmOf(grantsYaml: string): VmConfig {
  const r = parseConfigText(`delegates:\n  board: { module: ./board.ts }\nvms:\n  vm0:\n    grants:\n${grantsYaml}`);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value.vms[0]!;
}

/** The compiled table's decision, evaluated like the router: first step whose constraints hold. */
function tableDecision(table: PolicyTable, vm: VmConfig, fid: number, args: bigint[]): { action: string; rule: string } {
  for (const step of table.chainFor(fid).steps) {
    if (step.constraints.every((c) => constraintAllows(c, visibleArg(args, c.reg, fid, vm.smccc) & (c.low32 ? 0xffff_ffffn : ~0n)))) {
      return { action: step.action.target ? `${step.action.kind}:${step.action.target}` : step.action.kind, rule: step.label };
    }
  }
  throw new Error("a chain always ends with an unconditional step");
}

describe("compiled policy: precedence", () => {
  const vm = vmOf(`      - { owner: sip, action: forward }
      - { range: "0x82000010-0x8200001F", action: deny }
      - { id: 0x82000015, action: "delegate:board" }
      - { id: 0x84000008, action: deny }
      - { id: 0x82000020, args: { x1: ["0x10-0x1f"] }, action: forward }
      - { id: 0x82000020, action: deny, name: no-other-nodes }
`);
  const table = compilePolicy(vm.rules, CLAIMS);
  const d = (fid: number, x1 = 0n) => tableDecision(table, vm, fid, [0n, x1]);

  it("an exact ID beats a range, which beats the owner grant", () => {
    expect(d(0x8200_0001)).toEqual({ action: "forward", rule: "vms.vm0.grants[0]" });
    expect(d(0x8200_0011)).toEqual({ action: "deny", rule: "vms.vm0.grants[1]" });
    expect(d(0x8200_0015)).toEqual({ action: "delegate:board", rule: "vms.vm0.grants[2]" });
  });

  it("a grant overrides a standard service", () => {
    expect(d(0x8400_0008)).toEqual({ action: "deny", rule: "vms.vm0.grants[3]" });
    expect(d(0x8400_0009)).toEqual({ action: "emulate", rule: "default:psci" });
  });

  it("argument constraints decide between grants for one ID", () => {
    expect(d(0x8200_0020, 0x12n)).toEqual({ action: "forward", rule: "vms.vm0.grants[4]" });
    expect(d(0x8200_0020, 0x20n)).toEqual({ action: "deny", rule: "no-other-nodes" });
  });

  it("denies what nothing claims", () => {
    expect(d(0x8300_0001)).toEqual({ action: "deny", rule: "default:deny" });
    expect(d(0x8400_0020)).toEqual({ action: "deny", rule: "default:deny" });
  });

  it("only owner grants match yielding IDs with bits 23:16 set", () => {
    const t = compilePolicy(vmOf('      - { owner: trusted-os, action: "mediate:optee" }\n      - { range: "0x32000000-0x32FFFFFF", action: deny }\n').rules, CLAIMS);
    expect(t.chainFor(0x3201_0004).steps[0]!.label).toBe("vms.vm0.grants[0]");
    expect(t.chainFor(0x3200_0004).steps[0]!.label).toBe("vms.vm0.grants[1]");
  });

  it("names the emulating service per claim when a grant spans several", () => {
    const t = compilePolicy(vmOf("      - { owner: std-secure, calls: [fast32], action: emulate }\n").rules, CLAIMS);
    expect(t.chainFor(0x8400_0003).steps[0]!.service).toBe("psci");
    expect(t.chainFor(0x8400_0051).steps[0]!.service).toBe("trng");
    expect(t.chainFor(0x8400_0063).steps[0]!.service).toBeNull();
  });

  it("seals", () => {
    expect(table.sealed).toBe(false);
    table.seal();
    expect(table.sealed).toBe(true);
  });
});

const OWNERS = ["arch", "sip", "oem", "std-secure", "std-hyp", "vendor-hyp", "trusted-os", "trusted-app", 7, 12];
const interestingFid = fc.oneof(
  fc.integer({ min: 0, max: 0xffff_ffff }),
  fc.tuple(fc.constantFrom(0x80, 0xc0, 0x00, 0x40), fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 0x40 })).map(([t, o, f]) => (((t << 24) | (o << 24) | f) >>> 0)),
  fc.constantFrom(0x8200_0001, 0x8200_0010, 0x8400_0003, 0xc400_0003, 0x8400_0050, 0x8500_ff01, 0x3200_0004, 0xb200_0000),
);
const ruleArb = fc.record({
  sel: fc.oneof(
    fc.record({ id: interestingFid.map((f) => (f & 0xff00_ffff) >>> 0) }),
    fc.tuple(interestingFid, fc.integer({ min: 0, max: 0x200 })).map(([lo, n]) => ({ range: `0x${lo.toString(16)}-0x${Math.min(0xffff_ffff, lo + n).toString(16)}` })),
    fc.record({ owner: fc.constantFrom(...OWNERS) }),
  ),
  action: fc.constantFrom("forward", "deny", "emulate", "delegate:h", "mediate:m"),
  args: fc.option(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 4 })), { nil: undefined }),
  low32: fc.boolean(),
});

function configFor(rules: readonly { sel: object; action: string; args: [number, number] | undefined; low32?: boolean }[]): VmConfig {
  const grants = rules.map((r) => ({ ...r.sel, action: r.action, ...(r.args ? { args: { [r.low32 ? "w1" : "x1"]: [`${Math.min(...r.args)}-${Math.max(...r.args)}`] } } : {}) }));
  const r = parseConfigText(JSON.stringify({ delegates: { h: { module: "./h.ts" } }, vms: { vm0: { grants } } }), "json");
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value.vms[0]!;
}

describe("compiled policy agrees with the reference evaluator (explain)", () => {
  it("for random rules, IDs and arguments", () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { maxLength: 12 }), fc.array(fc.tuple(interestingFid, fc.integer({ min: 0, max: 5 }), fc.constantFrom(0n, 1n << 32n)), { minLength: 1, maxLength: 20 }), (rules, calls) => {
        const vm = configFor(rules);
        const table = compilePolicy(vm.rules, CLAIMS);
        for (const [fid, x1, upper] of calls) {
          const args = [0n, BigInt(x1) | upper];
          const e = explain(vm, CLAIMS, { fid, args });
          if (e.decision.convention) continue; // must-be-zero bits: answered before policy
          expect(tableDecision(table, vm, e.fid.dispatchFid, args)).toEqual({ action: e.decision.action, rule: e.decision.rule });
        }
      }),
      { numRuns: 300 },
    );
  });

  it("lookups are identical with 1 or 10,000 rules that do not touch the probed IDs", () => {
    const base = [{ owner: "sip", action: "forward" }];
    const many = [...base];
    for (let i = 0; i < 9_999; i++) many.push({ id: `0x${(0x8300_0000 + i).toString(16)}`, action: i % 2 ? "deny" : "forward" } as never);
    const small = configFor(base.map((g) => ({ sel: { owner: g.owner }, action: g.action, args: undefined })));
    const bigCfg = parseConfigText(JSON.stringify({ vms: { vm0: { grants: many } } }), "json");
    if (!bigCfg.ok) throw new Error("invalid");
    const big = bigCfg.value.vms[0]!;
    const t1 = compilePolicy(small.rules, CLAIMS);
    const t2 = compilePolicy(big.rules, CLAIMS);
    fc.assert(
      fc.property(interestingFid.filter((f) => ((f >>> 24) & 0xff) !== 0x83), (fid) => {
        expect(tableDecision(t2, big, fid & 0xff00_ffff, [])).toEqual(tableDecision(t1, small, fid & 0xff00_ffff, []));
      }),
      { numRuns: 2000 },
    );
    // And the added rules do decide their own IDs.
    expect(tableDecision(t2, big, 0x8300_0001, []).rule).toBe("vms.vm0.grants[2]");
    // The pages cost memory in proportion to the IDs rules touch, not to 2^32.
    expect(t2.bytes).toBeLessThan(512 * 1024);
  });
});
