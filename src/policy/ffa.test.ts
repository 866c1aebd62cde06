import { describe, expect, it } from "vitest";
import { OPTEE_FFA_UUID, TEST_PARTITION_UUID } from "./ffa.js";
import { parseConfigText } from "./load.js";

const KEY = "00".repeat(32);

/** A platform with OP-TEE and an SPMC running it and the test partition; `vms` is appended as YAML. */
function config(vms: string, spmc = "    partitions:\n      - { name: optee, id: 0x8001, runs: optee, vms: [a] }\n      - { name: test, id: 0x8002, runs: test, vms: [a, b] }\n") {
  return `platform:\n  tee: { os: optee }\n  spmc:\n${spmc}vms:\n${vms}`;
}

function errorsOf(text: string) {
  const r = parseConfigText(text);
  if (r.ok) throw new Error("expected the config to be rejected");
  return r.errors;
}

describe("FF-A in the config", () => {
  it("reads partitions with their default UUIDs, and FF-A VMs with their peers, beside an SMC-ABI OP-TEE VM", () => {
    const r = parseConfigText(config(`  a: { tee: { mediator: ffa, contentKey: "${KEY}", peers: [b] } }\n  b: { tee: ffa }\n  c: { tee: optee }\n`));
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.value.platform.spmc!.partitions).toEqual([
      { name: "optee", id: 0x8001, uuid: OPTEE_FFA_UUID, runs: "optee", vms: ["a"], vmIds: [1] },
      { name: "test", id: 0x8002, uuid: TEST_PARTITION_UUID, runs: "test", vms: ["a", "b"], vmIds: [1, 2] },
    ]);
    const [a, b, c] = r.value.vms;
    expect(a).toMatchObject({ tee: { mediator: "ffa" }, ffa: { peers: ["b"] } });
    expect(a!.tee!.contentKey).toHaveLength(32);
    expect(b).toMatchObject({ tee: { mediator: "ffa", contentKey: null }, ffa: { peers: [] } });
    expect(c).toMatchObject({ tee: { mediator: "optee" }, ffa: null });
  });

  it("needs an SPMC for an FF-A VM, and an OP-TEE for its content key", () => {
    expect(errorsOf("vms:\n  a: { tee: ffa }\n")).toEqual([{ path: "vms.a.tee", message: "the platform has no SPMC (platform.spmc)" }]);
    expect(errorsOf(`platform:\n  spmc: { partitions: [] }\nvms:\n  a: { tee: { mediator: ffa, contentKey: "${KEY}" } }\n`)).toEqual([
      { path: "vms.a.tee.contentKey", message: "a content key is kept by the platform's OP-TEE: set platform.tee" },
    ]);
  });

  it("keeps FF-A VMs' endpoint IDs clear of the secure world's (bit 15)", () => {
    const e = errorsOf(config("  a: { id: 0x8000, tee: ffa }\n  b: { id: 2, tee: ffa }\n"));
    expect(e).toEqual([{ path: "vms.a.id", message: expect.stringMatching(/at most 0x7fff .*not 0x8000/) }]);
    // Any VM may still have a 16-bit ID when it does not speak FF-A.
    expect(parseConfigText(config("  a: { tee: ffa }\n  b: { tee: ffa }\n  c: { id: 0x9000 }\n")).ok).toBe(true);
  });

  it("needs SMCCC 1.2 or later for an FF-A VM", () => {
    expect(errorsOf(config("  a: { tee: ffa, smccc: \"1.1\" }\n  b: { tee: ffa }\n"))).toEqual([{ path: "vms.a.smccc", message: expect.stringMatching(/^an FF-A VM needs SMCCC 1.2 or later/) }]);
    expect(errorsOf(`defaults: { smccc: "1.1" }\n${config("  a: { tee: ffa }\n  b: { tee: ffa, smccc: \"1.2\" }\n")}`).map((e) => e.path)).toEqual(["defaults.smccc"]);
    expect(parseConfigText(config("  a: { tee: ffa, smccc: \"1.3\" }\n  b: { tee: ffa }\n")).ok).toBe(true);
  });

  it("names each wrong peer", () => {
    const e = errorsOf(config("  a: { tee: { mediator: ffa, peers: [a, zz, c, b, b] } }\n  b: { tee: ffa }\n  c: {}\n"));
    expect(e.map((x) => `${x.path}: ${x.message}`)).toEqual([
      "vms.a.tee.peers[0]: a VM is not its own peer",
      'vms.a.tee.peers[1]: no VM named "zz"',
      "vms.a.tee.peers[2]: c does not use FF-A (give it tee: ffa)",
      "vms.a.tee.peers[4]: b is already a peer",
    ]);
  });

  it("refuses partitions that collide, name VMs that are not FF-A VMs, or run an OP-TEE the platform lacks", () => {
    const spmc = [
      "    partitions:",
      "      - { name: test, id: 0x8002, runs: test, vms: [a, c, nobody] }",
      "      - { name: test, id: 0x8002, runs: test }",
      "      - { name: other, id: 0x8003, uuid: 486178E0-E7F8-11E3-BC5E-0002A5D5C51B, runs: optee }",
      "      - { name: op, id: 0x8004, runs: optee }",
      "",
    ].join("\n");
    const e = errorsOf(config("  a: { tee: ffa }\n  c: {}\n", spmc));
    expect(e.map((x) => `${x.path}: ${x.message}`)).toEqual([
      "platform.spmc.partitions[0].vms[1]: c does not use FF-A (give it tee: ffa)",
      'platform.spmc.partitions[0].vms[2]: no VM named "nobody"',
      "platform.spmc.partitions[1].name: the name test is already platform.spmc.partitions[0]'s",
      "platform.spmc.partitions[1].id: ID 0x8002 is already platform.spmc.partitions[0]'s",
      `platform.spmc.partitions[1].uuid: UUID ${TEST_PARTITION_UUID} (the default for this kind of partition: give one) is already platform.spmc.partitions[0]'s`,
      `platform.spmc.partitions[3].uuid: UUID ${OPTEE_FFA_UUID} (the default for this kind of partition: give one) is already platform.spmc.partitions[2]'s`,
      "platform.spmc.partitions: one OP-TEE runs in the secure world: at most one partition runs optee",
    ]);
    expect(errorsOf("platform:\n  spmc:\n    partitions: [ { name: op, id: 0x8001, runs: optee } ]\nvms:\n  a: {}\n")).toEqual([
      { path: "platform.spmc.partitions[0].runs", message: "an OP-TEE partition runs the platform's OP-TEE: set platform.tee" },
    ]);
    expect(errorsOf(config("  a: {}\n", "    partitions: [ { name: sp, id: 0x7fff, runs: test } ]\n")).map((x) => x.path)).toEqual(["platform.spmc.partitions[0].id"]);
    expect(errorsOf(config("  a: {}\n", "    partitions: [ { name: op, id: 0x8001, uuid: 00000000-0000-0000-0000-000000000001, runs: optee } ]\n"))).toEqual([
      { path: "platform.spmc.partitions[0].uuid", message: expect.stringMatching(/^OP-TEE's partition has OP-TEE's UUID/) },
    ]);
  });

  it("refuses a forward grant over FF-A calls while the platform has an SPMC, and only then", () => {
    const grant = "  a:\n    grants:\n      - { range: [0x84000060, 0x8400006f], action: forward }\n";
    const e = errorsOf(`platform:\n  spmc: { partitions: [] }\nvms:\n${grant}`);
    expect(e).toEqual([{ path: "vms.a.grants[0].action", message: expect.stringMatching(/^forward would send FF-A calls \(0x84000060-0x8400006F\) to the SPMC past the FF-A mediator/) }]);
    expect(parseConfigText(`vms:\n${grant}`).ok).toBe(true);
  });
});
