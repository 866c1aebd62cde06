import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfigText, validateConfig } from "./load.js";

function errorsOf(text: string, format: "yaml" | "json" = "yaml") {
  const r = parseConfigText(text, format);
  if (r.ok) throw new Error("expected the config to be rejected");
  return r.errors;
}

describe("config validation: errors are data with the path of the offending field", () => {
  it("accepts a minimal config and fills in the defaults", () => {
    const r = parseConfigText("vms:\n  vm0: {}\n");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const vm = r.value.vms[0]!;
    expect(vm).toMatchObject({ name: "vm0", id: 1, vcpus: 1, aarch32: false, smccc: 0x10002, conduit: "hvc", immediate: "not-supported" });
    expect(vm.memory).toEqual({ base: 0x4000_0000n, size: 256n << 20n, pa: 0x1_0000_0000n });
    expect(vm.services).toMatchObject({ arch: true, hypInfo: true, trng: true, pvtime: false, kvm: false, psci: { version: "1.1" } });
    expect(r.value.platform.cpu).toBe("cortex-a57");
  });

  it("names an unknown field", () => {
    expect(errorsOf("vms:\n  vm0:\n    vcpu: 2\n")).toEqual([{ path: "vms.vm0.vcpu", message: "unknown field" }]);
  });

  it("names a bad action", () => {
    const e = errorsOf("vms:\n  vm0:\n    grants:\n      - { owner: sip, action: allow }\n");
    expect(e).toHaveLength(1);
    expect(e[0]!.path).toBe("vms.vm0.grants[0].action");
    expect(e[0]!.message).toMatch(/emulate, forward, deny/);
  });

  it("names a grant that matches by two selectors", () => {
    const e = errorsOf("vms:\n  vm0:\n    grants:\n      - { owner: sip, id: 0x82000001, action: forward }\n");
    expect(e[0]).toMatchObject({ path: "vms.vm0.grants[0]", message: "a grant matches exactly one of: owner, range, id" });
  });

  it("names an unknown owner and an out-of-range ID", () => {
    const e = errorsOf("vms:\n  vm0:\n    grants:\n      - { owner: tee, action: forward }\n      - { id: 0x1ffffffff, action: forward }\n");
    expect(e.map((x) => x.path)).toEqual(["vms.vm0.grants[0].owner", "vms.vm0.grants[1].id"]);
  });

  it("rejects a fast-call ID with must-be-zero or SVE bits", () => {
    const e = errorsOf("vms:\n  vm0:\n    grants:\n      - { id: 0x82010001, action: forward }\n");
    expect(e[0]!.path).toBe("vms.vm0.grants[0].id");
  });

  it("rejects an inverted range, with the field path", () => {
    const e = errorsOf('vms:\n  vm0:\n    grants:\n      - { range: "0x82000010-0x82000001", action: forward }\n');
    expect(e[0]!.path).toBe("vms.vm0.grants[0].range");
    expect(e[0]!.message).toMatch(/starts above its end/);
  });

  it("rejects an argument constraint on a register SMCCC has no such argument in", () => {
    const e = errorsOf("vms:\n  vm0:\n    grants:\n      - { id: 0x82000001, args: { x18: [1] }, action: forward }\n");
    expect(e[0]!.path).toBe("vms.vm0.grants[0].args.x18");
  });

  it("rejects an unknown SMCCC version", () => {
    const e = errorsOf('vms:\n  vm0:\n    smccc: "1.7"\n');
    expect(e[0]!.path).toBe("vms.vm0.smccc");
  });

  it("rejects duplicate VM IDs", () => {
    const e = errorsOf("vms:\n  a: { id: 3 }\n  b: { id: 3 }\n");
    expect(e).toEqual([{ path: "vms.b.id", message: "VM ID 3 is already used by a" }]);
  });

  it("rejects a second VM's grant over IDs granted exclusively", () => {
    const e = errorsOf("vms:\n  a:\n    grants:\n      - { owner: trusted-os, action: forward, exclusive: true }\n  b:\n    grants:\n      - { id: 0xb2000001, action: forward }\n      - { id: 0xb2000002, action: deny }\n");
    expect(e).toEqual([{ path: "vms.b.grants[0]", message: "overlaps vms.a.grants[0], which grants those IDs exclusively to a" }]);
  });

  it("rejects inconsistent workaround answers", () => {
    const e = errorsOf("platform:\n  cpu: legacy-firmware\n  workarounds: { wa3: required }\nvms:\n  vm0: {}\n");
    expect(e[0]!.path).toBe("platform.workarounds.wa3");
  });

  it("rejects an SMC64 grant for an AArch32 VM", () => {
    const e = errorsOf("vms:\n  vm0:\n    aarch32: true\n    grants:\n      - { id: 0xc2000001, action: forward }\n");
    expect(e[0]!.path).toBe("vms.vm0.grants[0].id");
  });

  it("reports YAML syntax errors with their line", () => {
    const e = errorsOf("vms:\n  vm0: {\n");
    expect(e[0]!.path).toMatch(/^\(line \d+, column \d+\)$/);
  });

  it("reports JSON syntax errors", () => {
    expect(errorsOf("{", "json")[0]!.message).toMatch(/not valid JSON/);
  });

  it("lists every problem, not just the first", () => {
    const e = errorsOf("vms:\n  vm0:\n    vcpus: 0\n    bogus: 1\n    grants:\n      - { owner: sip, action: nope }\n");
    expect(e.length).toBe(3);
  });

  it("reads the same config from JSON and YAML", () => {
    const y = parseConfigText('vms:\n  dom0:\n    grants:\n      - { owner: sip, action: forward, args: { x1: [1, "5-7"] } }\n');
    const j = validateConfig({ vms: { dom0: { grants: [{ owner: "sip", action: "forward", args: { x1: [1, "5-7"] } }] } } });
    expect(y).toEqual(j);
    if (!y.ok) throw new Error("expected valid");
    expect(y.value.vms[0]!.rules[0]!.constraints).toEqual([{ reg: 1, low32: false, ranges: [[1n, 1n], [5n, 7n]] }]);
  });

  it("applies defaults that a VM may override", () => {
    const r = parseConfigText('defaults: { smccc: "1.1", services: { trng: false } }\nvms:\n  a: {}\n  b: { smccc: "1.3", services: { trng: true } }\n');
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.value.vms.map((v) => [v.smccc, v.services.trng])).toEqual([[0x10001, false], [0x10003, true]]);
  });
});

describe("TEE limits", () => {
  it("calls in flight per VM default to an equal share of OP-TEE's threads", () => {
    const r = parseConfigText("platform:\n  tee: { os: optee, threads: 8, maxGuests: 2 }\nvms:\n  a: { tee: { mediator: optee } }\n");
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.value.platform.tee!.limits.callsInFlight).toBe(4);
    const d = parseConfigText("platform:\n  tee: { os: optee }\nvms:\n  a: {}\n");
    if (!d.ok) throw new Error(JSON.stringify(d.errors));
    expect(d.value.platform.tee).toMatchObject({ threads: 8, maxGuests: 4, limits: { callsInFlight: 2 } });
  });
});

describe("VM IDs: 16-bit, in range, unique", () => {
  const ids = (text: string) => {
    const r = parseConfigText(text);
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.value.vms.map((v) => [v.name, v.id]);
  };

  it("a VM after one with ID 0xFFFE gets a free ID in range, not 0xFFFF or above", () => {
    expect(ids("vms:\n  a: { id: 0xFFFE }\n  b: {}\n  c: {}\n")).toEqual([["a", 0xfffe], ["b", 1], ["c", 2]]);
  });

  it("default IDs skip IDs that a later VM names", () => {
    expect(ids("vms:\n  a: {}\n  b: { id: 1 }\n  c: { id: 5 }\n  d: {}\n")).toEqual([["a", 2], ["b", 1], ["c", 5], ["d", 6]]);
  });

  it("every ID the secure world sees is unique: no two VMs share one", () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: 1, max: 0xfffe }), { nil: undefined }), { minLength: 1, maxLength: 12 }), (explicit) => {
        const vms = Object.fromEntries(explicit.map((id, i) => [`v${i}`, id === undefined ? {} : { id }]));
        const r = validateConfig({ vms });
        const distinct = new Set(explicit.filter((x) => x !== undefined)).size === explicit.filter((x) => x !== undefined).length;
        expect(r.ok).toBe(distinct);
        if (!r.ok) return;
        const got = r.value.vms.map((v) => v.id);
        expect(new Set(got.map((id) => id & 0xffff)).size).toBe(got.length);
        for (const id of got) expect(id >= 1 && id <= 0xfffe).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses more VMs than there are IDs", () => {
    const vms: Record<string, object> = {};
    for (let i = 0; i < 0xfffe; i++) vms[`v${i}`] = { memory: { size: 4096 } };
    vms.extra = { memory: { size: 4096 } };
    const r = validateConfig({ vms });
    expect(!r.ok && r.errors).toEqual([{ path: "vms.extra", message: "no VM ID is free: IDs are 1-0xFFFE" }]);
  }, 60_000);
});

describe("names the trace and the run summary use for the hypervisor", () => {
  it("refuses a VM named hypervisor, in any case", () => {
    expect(errorsOf("vms:\n  hypervisor: {}\n")[0]).toMatchObject({ path: "vms.hypervisor", message: expect.stringMatching(/is reserved/) });
    expect(errorsOf("vms:\n  HyperVisor: {}\n")[0]!.path).toBe("vms.HyperVisor");
  });
});

describe("argument constraints that can never match", () => {
  it("refuses a W-register value above 32 bits", () => {
    expect(errorsOf("vms:\n  a:\n    grants:\n      - { id: 0xC2000011, args: { w1: [0x100000028] }, action: forward }\n")).toEqual([
      { path: "vms.a.grants[0].args.w1", message: "0x100000028 is above 0xffffffff and can never match: w1 is the low 32 bits of x1" },
    ]);
  });

  it("refuses an X-register value above 32 bits on a grant that matches SMC32 calls only", () => {
    expect(errorsOf('vms:\n  a:\n    grants:\n      - { owner: sip, calls: [fast32], args: { x1: ["0x10-0x100000000"] }, action: forward }\n')[0]!.path).toBe("vms.a.grants[0].args.x1");
    expect(errorsOf("vms:\n  a:\n    aarch32: true\n    grants:\n      - { owner: sip, args: { x2: [0x100000000] }, action: forward }\n")[0]!.path).toBe("vms.a.grants[0].args.x2");
    // SMC64 calls see all of x1.
    expect(parseConfigText("vms:\n  a:\n    grants:\n      - { id: 0xC2000011, args: { x1: [0x100000028] }, action: forward }\n").ok).toBe(true);
  });

  it("refuses a constraint on a register beyond the VM's convention unless it allows 0, which it reads as", () => {
    const g = (args: string) => `defaults: { smccc: "1.1" }\nvms:\n  a:\n    grants:\n      - { id: 0xC2000011, args: { ${args} }, action: forward }\n`;
    expect(errorsOf(g("x8: [5]"))[0]!.path).toBe("vms.a.grants[0].args.x8");
    expect(parseConfigText(g("x8: [0, 5]")).ok).toBe(true);
    expect(parseConfigText(g("x6: [5]")).ok).toBe(true);
  });
});

describe("SiP nodes", () => {
  it("refuses a node ID given twice", () => {
    expect(errorsOf("platform:\n  sip: { nodes: [ { id: 33 }, { id: 40 }, { id: 33, owner: a } ] }\nvms:\n  a: {}\n")).toEqual([
      { path: "platform.sip.nodes[2].id", message: "node 33 is already platform.sip.nodes[0]" },
    ]);
  });
});

describe("calls a TEE mediator owns", () => {
  it("refuses a forward grant over Trusted OS calls while the platform has a trusted OS", () => {
    const e = errorsOf("platform: { tee: { os: optee } }\nvms:\n  a:\n    grants:\n      - { owner: trusted-os, action: forward }\n");
    expect(e).toHaveLength(1);
    expect(e[0]!.path).toBe("vms.a.grants[0].action");
    expect(e[0]!.message).toMatch(/past the TEE mediator/);
  });

  it("counts yielding calls of any owner from OEN 2 up: an SiP owner grant over all four call types is refused", () => {
    expect(errorsOf("platform: { tee: { os: optee } }\nvms:\n  a:\n    grants:\n      - { owner: sip, action: forward }\n")[0]!.message).toMatch(/0x02000000-0x02FFFFFF/);
    expect(parseConfigText("platform: { tee: { os: optee } }\nvms:\n  a:\n    grants:\n      - { owner: sip, calls: [fast32, fast64], action: forward }\n").ok).toBe(true);
    expect(errorsOf('platform: { tee: { os: optee } }\nvms:\n  a:\n    grants:\n      - { range: "0xBF000000-0xBF0000FF", action: forward }\n')[0]!.path).toBe("vms.a.grants[0].action");
    expect(errorsOf("platform: { tee: { os: optee } }\nvms:\n  a:\n    grants:\n      - { id: 0x32000004, args: { x1: [1] }, action: forward }\n")[0]!.path).toBe("vms.a.grants[0].action");
  });

  it("leaves forward grants alone on a platform without a trusted OS, and other actions over those IDs", () => {
    expect(parseConfigText("vms:\n  a:\n    grants:\n      - { owner: trusted-os, action: forward }\n").ok).toBe(true);
    expect(parseConfigText("platform: { tee: { os: optee } }\nvms:\n  a:\n    tee: optee\n    grants:\n      - { owner: trusted-os, action: deny }\n").ok).toBe(true);
  });
});

describe("the SoC identity", () => {
  it("is none unless the config gives one: no real vendor's JEP-106 code is claimed", () => {
    const r = parseConfigText("vms:\n  a: {}\n");
    expect(r.ok && r.value.platform.socId).toBeNull();
  });
});

describe("services.psci.cpuIdle", () => {
  it("true gives the default standby and power-down states; a list is taken as written", () => {
    const r = parseConfigText("vms:\n  vm0:\n    services:\n      psci: { version: \"1.1\", cpuIdle: true }\n");
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const psci = r.value.vms[0]!.services.psci;
    expect(psci && psci.cpuIdle?.map((s) => [s.name, s.powerDown])).toEqual([["cpu-standby", false], ["cpu-power-down", true]]);
    const l = parseConfigText("vms:\n  vm0:\n    services:\n      psci:\n        cpuIdle: [{ name: deep, powerDown: true, stateId: 0x33, entryLatencyUs: 1, exitLatencyUs: 2, minResidencyUs: 3 }]\n");
    if (!l.ok) throw new Error(JSON.stringify(l.errors));
    const p = l.value.vms[0]!.services.psci;
    expect(p && p.cpuIdle).toEqual([{ name: "deep", powerDown: true, stateId: 0x33, entryLatencyUs: 1, exitLatencyUs: 2, minResidencyUs: 3 }]);
    const off = parseConfigText("vms:\n  vm0:\n    services:\n      psci: { cpuIdle: false }\n");
    expect(off.ok && off.value.vms[0]!.services.psci && off.value.vms[0]!.services.psci.cpuIdle).toBeFalsy();
  });

  it("names the field of a bad idle state: a node name the device tree cannot hold, a StateID over 16 bits, an unknown key", () => {
    const state = (over: string) => `vms:\n  vm0:\n    services:\n      psci:\n        cpuIdle: [{ ${over}, powerDown: true, entryLatencyUs: 1, exitLatencyUs: 2, minResidencyUs: 3 }]\n`;
    expect(errorsOf(state("name: 'Deep State', stateId: 1")).map((e) => e.path)).toEqual(["vms.vm0.services.psci.cpuIdle[0].name"]);
    expect(errorsOf(state("name: deep, stateId: 0x10000"))[0]).toMatchObject({ path: "vms.vm0.services.psci.cpuIdle[0].stateId", message: expect.stringContaining("stateId") });
    expect(errorsOf(state("name: deep, stateId: 1, color: red"))[0]!.path).toContain("cpuIdle[0]");
    expect(errorsOf("vms:\n  vm0:\n    services:\n      psci: { cpuIdle: [] }\n")[0]!.path).toBe("vms.vm0.services.psci.cpuIdle");
  });
});
