import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../policy/load.js";
import { SHIM_SIZE } from "./layout.js";
import { MAX_QEMU_RAM, MAX_QEMU_VCPUS, qemuLimitProblems } from "./limits.js";
import { parseScenario } from "./scenario.js";
import { MAX_SHARED_RAM } from "./shared-ram.js";

const configOf = (text: string) => {
  const r = parseConfigText(text);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
};

describe("what the QEMU backend can run, checked when a scenario is read", () => {
  it("agrees with the RAM file's mapping limit", () => {
    expect(MAX_QEMU_RAM + SHIM_SIZE).toBe(BigInt(MAX_SHARED_RAM));
  });

  it("names each VM the backend would refuse later, with the field", () => {
    const problems = qemuLimitProblems(configOf(`vms:\n  a: { vcpus: ${MAX_QEMU_VCPUS + 1} }\n  b: { memory: { size: 4GiB } }\n  c: { memory: { base: 0x80000000, size: 1MiB } }\n  d: { vcpus: 8, memory: { size: 4094MiB } }\n`));
    expect(problems.map((p) => p.path)).toEqual(["vms.a.vcpus", "vms.b.memory.size", "vms.c.memory.base", "vms.c.memory.size"]);
  });

  it("is part of a scenario's validation, before any guest is built", () => {
    const r = parseScenario("s", { guests: { a: { kernel: "debian" } }, vms: { a: { vcpus: 9 } } }, () => ({}));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.errors.map((e) => e.path)).toEqual(["vms.a.vcpus"]);
  });

  it("refuses a console /regex/ that does not compile when the scenario is read", () => {
    const r = parseScenario("s", { guests: { a: { kernel: "debian", expect: { notConsole: ["ok", "/[a-/"] } } }, vms: { a: {} } }, () => ({}));
    expect(!r.ok && r.errors).toEqual([{ path: "guests.a.expect.notConsole[1]", message: expect.stringMatching(/^not a regular expression: /) }]);
  });

  it("needs a guest of its own for every VM, whatever the VM is named", () => {
    const r = parseScenario("s", { guests: { a: { kernel: "debian" } }, vms: { a: {}, constructor: {} } }, () => ({}));
    expect(!r.ok && r.errors).toEqual([{ path: "guests.constructor", message: "every VM needs a guest (kernel or firmware)" }]);
  });

  it("takes a handover VM only as the handover needs it, naming each field that is not", () => {
    const ok = configOf("vms:\n  h: { handover: true, conduit: smc, memory: { base: 0x40200000, size: 256MiB } }\n");
    expect(qemuLimitProblems(ok)).toEqual([]);
    const bad = qemuLimitProblems(configOf("vms:\n  h: { handover: true, vcpus: 2, aarch32: true, memory: { base: 0x40000000, size: 256MiB } }\n"));
    expect(bad.map((p) => p.path)).toEqual(["vms.h.memory.base", "vms.h.conduit", "vms.h.aarch32"]);
    expect(bad[0]!.message).toContain("memory.base must be 0x40200000");
    // Every CPU hands over itself (docs/handover.md): 1 to 8 vCPUs, the backend's limit, and no more.
    for (const n of [1, 2, 8]) expect(qemuLimitProblems(configOf(`vms:\n  h: { handover: true, vcpus: ${n}, conduit: smc, memory: { base: 0x40200000, size: 256MiB } }\n`))).toEqual([]);
    const nine = qemuLimitProblems(configOf("vms:\n  h: { handover: true, vcpus: 9, conduit: smc, memory: { base: 0x40200000, size: 256MiB } }\n"));
    expect(nine.map((p) => [p.path, p.message])).toEqual([["vms.h.vcpus", expect.stringContaining("at most 8 vCPUs")]]);
    // The handover base is a handover VM's only: any other VM's RAM is still at virt's base.
    expect(qemuLimitProblems(configOf("vms:\n  n: { memory: { base: 0x40200000, size: 256MiB } }\n")).map((p) => p.path)).toEqual(["vms.n.memory.base"]);
  });

  it("refuses firmware for a handover VM when the scenario is read", () => {
    const r = parseScenario("s", { guests: { h: { firmware: "u-boot-qemu" } }, vms: { h: { handover: true, conduit: "smc", memory: { base: 0x4020_0000, size: "256MiB" } } } }, () => ({}));
    expect(!r.ok && r.errors).toEqual([{ path: "guests.h.firmware", message: expect.stringContaining("handover VM boots a kernel") }]);
  });
});
