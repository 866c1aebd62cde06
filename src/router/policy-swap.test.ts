// Live policy changes (Router.preparePolicy, then swapPolicy): the next call is decided by the new rules,
// a call in flight finishes under the rule it started with, and no cached answer of the old policy survives.
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../machine/scripted/machine.js";
import { parseConfigText, type VmConfig } from "../policy/load.js";
import { STANDARD_SERVICES } from "../services/standard.js";
import { POLICY_SWAPS_KEPT } from "./router.js";
import type { ServiceDefinition } from "./service.js";
import type { SmcResult } from "./call.js";

const BASE = "vms:\n  a: { vcpus: 2 }\n  b: {}\n";
const HYP_UID = 0x8600_ff01;
const SMCCC_VERSION = 0x8000_0000;
const DENIED32 = 0xffff_ffffn;

function vmConfig(yaml: string, name: string): VmConfig {
  const c = parseConfigText(yaml);
  if (!c.ok) throw new Error(JSON.stringify(c.errors));
  return c.value.vms.find((v) => v.name === name)!;
}

function swap(m: ScriptedMachine, yaml: string, name: string): void {
  const router = m.hypervisor.router;
  const p = router.preparePolicy(router.getVm(name)!, vmConfig(yaml, name));
  if (!p.ok) throw new Error(JSON.stringify(p.errors));
  router.swapPolicy(p.policy);
}

describe("live policy change", () => {
  it("takes effect at the next call, for cached fixed answers too, in both directions", () => {
    const m = ScriptedMachine.fromText(BASE);
    const v = m.vm("a").vcpu(0);
    // Twice each: the second answer comes from the answer cache.
    for (let i = 0; i < 2; i++) expect(v.hvc(SMCCC_VERSION).x0).toBe(0x1_0002n);
    const uid = v.hvc(HYP_UID).x0;
    swap(m, "vms:\n  a: { vcpus: 2, grants: [{ name: no-version, id: 0x80000000, action: deny }, { name: no-uid, id: 0x8600FF01, action: deny }] }\n  b: {}\n", "a");
    for (let i = 0; i < 2; i++) {
      expect(v.hvc(SMCCC_VERSION).x0).toBe(DENIED32);
      expect(v.hvc(HYP_UID).x0).toBe(DENIED32);
    }
    expect(m.trace.latest()!.rule).toBe("no-uid");
    swap(m, BASE, "a");
    expect(v.hvc(SMCCC_VERSION).x0).toBe(0x1_0002n);
    expect(v.hvc(HYP_UID).x0).toBe(uid);
    // The other VM never changed.
    expect(m.vm("b").vcpu(0).hvc(SMCCC_VERSION).x0).toBe(0x1_0002n);
  });

  it("remembers each swap with its VM and time, the latest POLICY_SWAPS_KEPT only", () => {
    let now = 0;
    const m = ScriptedMachine.fromText(BASE, "yaml", { clock: { now: () => (now += 10) } });
    const router = m.hypervisor.router;
    swap(m, BASE, "b");
    swap(m, BASE, "a");
    expect(router.policySwaps.map((p) => p.vm)).toEqual(["b", "a"]);
    expect(router.policySwaps[1]!.at).toBeGreaterThan(router.policySwaps[0]!.at);
    for (let i = 0; i < POLICY_SWAPS_KEPT + 5; i++) swap(m, BASE, "a");
    expect(router.policySwaps).toHaveLength(POLICY_SWAPS_KEPT);
    expect(router.policySwaps.every((p) => p.vm === "a")).toBe(true);
  });

  it("refuses rules whose handlers do not exist, and changes nothing", () => {
    const m = ScriptedMachine.fromText(BASE);
    const router = m.hypervisor.router;
    const valid = vmConfig("vms:\n  a: { vcpus: 2, grants: [{ id: 0x80000000, action: deny }] }\n", "a");
    // Past validation (a config names its delegates), as a caller that builds VmConfigs could pass it.
    const r = router.preparePolicy(router.getVm("a")!, { ...valid, rules: valid.rules.map((x) => ({ ...x, action: { kind: "delegate" as const, target: "nobody" } })) });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]!.path).toBe("vms.a.grants[0].action");
    expect(m.vm("a").vcpu(0).hvc(SMCCC_VERSION).x0).toBe(0x1_0002n);
  });

  it("a call waiting for an asynchronous handler finishes under the rule it started with", async () => {
    let release!: () => void;
    const slow: ServiceDefinition = {
      name: "slow",
      enabled: () => true,
      claims: () => [{ service: "slow", owner: 3, types: [0, 1, 2, 3], first: 0, last: 0xffff }],
      create: () => ({
        handle: (_c, res: SmcResult) => new Promise<void>((resolve) => (release = () => (res.ret(7), resolve()))),
        features: () => 0,
      }),
    };
    const m = ScriptedMachine.fromText(BASE, "yaml", { services: [...STANDARD_SERVICES, slow] });
    const v0 = m.vm("a").vcpu(0);
    const pending = v0.callAsync("hvc", 0x8300_0001);
    swap(m, "vms:\n  a: { vcpus: 2, grants: [{ name: no-oem, owner: 3, action: deny }] }\n  b: {}\n", "a");
    release();
    expect((await pending).x0).toBe(7n);
    expect(m.trace.latest()!.rule).toBe("default:slow");
    expect(v0.hvc(0x8300_0001).x0).toBe(DENIED32);
    expect(m.trace.latest()!.rule).toBe("no-oem");
  });
});
