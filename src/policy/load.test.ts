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
