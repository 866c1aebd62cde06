import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import { PM_API, XST_PM, clockOf, resetOf } from "./eemi.js";

const SIP = 0xc200_0000;
const UART_0 = 33, UART_1 = 34, SD_0 = 39, SD_1 = 40, GPIO = 46;

const CONFIG = `
platform:
  secureMemory:
    - { name: tee-os, base: 0x0e000000, size: 16MiB }
  sip:
    nodes:
      - { id: ${UART_0}, name: NODE_UART_0, owner: dom0 }
      - { id: ${UART_1}, name: NODE_UART_1, owner: domU }
      - { id: ${SD_0}, name: NODE_SD_0, owner: dom0 }
      - { id: ${SD_1}, name: NODE_SD_1, owner: drv }
      - { id: ${GPIO}, name: NODE_GPIO }
vms:
  dom0:
    memory: { base: 0x40000000, size: 16MiB, pa: 0x40000000 }
    grants:
      - { owner: sip, action: forward }
  domU:
    memory: { size: 16MiB }
    grants:
      - { owner: sip, action: deny }
  drv:
    memory: { size: 16MiB }
    grants:
      - { name: drv-sd1-node, range: "0xC200000D-0xC200000F", args: { w1: [${SD_1}] }, action: forward }
      - { name: drv-sd1-clock, range: "0xC2000024-0xC200002A", args: { w1: [${clockOf(SD_1)}] }, action: forward }
`;

/** EEMI packing: x1 = arg1 << 32 | arg0, x2 = arg3 << 32 | arg2. */
function eemi(m: ScriptedMachine, vm: string, api: number, ...args: number[]) {
  const a = [...args, 0, 0, 0, 0];
  const r = m.vm(vm).vcpu(0).smc(SIP | api, (BigInt(a[1]!) << 32n) | BigInt(a[0]!), (BigInt(a[3]!) << 32n) | BigInt(a[2]!));
  return { status: Number(r.x0 & 0xffff_ffffn), payload1: Number(r.x0 >> 32n), r };
}

describe("SiP platform management through forwarding (EEMI-shaped)", () => {
  it("GET_API_VERSION is forwarded for dom0: success in the low 32 bits of x0, the version above", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    const { r } = eemi(m, "dom0", PM_API.PM_GET_API_VERSION);
    expect(r.x0).toBe(0x0001_0000_0000_0000n);
    expect(r.decision.action).toBe("forward");
  });

  it("dom0 enables the clock of a node it holds", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    expect(eemi(m, "dom0", PM_API.PM_CLOCK_ENABLE, clockOf(UART_0)).status).toBe(XST_PM.SUCCESS);
    expect(eemi(m, "dom0", PM_API.PM_CLOCK_GETSTATE, clockOf(UART_0)).payload1).toBe(1);
    expect(m.hypervisor.model.eemi.nodeState(UART_0)!.clockOn).toBe(true);
  });

  it("dom0 asking for domU's node gets the family's permission error, and the node stays domU's", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    expect(eemi(m, "dom0", PM_API.PM_REQUEST_NODE, UART_1, 1, 0, 1).status).toBe(XST_PM.NO_ACCESS);
    expect(eemi(m, "dom0", PM_API.PM_CLOCK_ENABLE, clockOf(UART_1)).status).toBe(XST_PM.NO_ACCESS);
    expect(m.hypervisor.model.eemi.ownerOf(UART_1)).toBe("domU");
    expect(m.trace.events().some((e) => e.vm === "dom0" && e.rule.startsWith("refused: NODE_UART_1"))).toBe(true);
  });

  it("domU's SiP call is denied by policy with -1 and never reaches the monitor", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    const { r } = eemi(m, "domU", PM_API.PM_CLOCK_ENABLE, clockOf(UART_1));
    expect(r.x0).toBe(0xffff_ffff_ffff_ffffn);
    expect(r.decision.action).toBe("deny");
    expect(m.hypervisor.model.served.get("domU")).toBeUndefined();
  });

  it("argument constraints limit a VM to its own node IDs (the per-resource check)", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    expect(eemi(m, "drv", PM_API.PM_CLOCK_ENABLE, clockOf(SD_1)).status).toBe(XST_PM.SUCCESS);
    const other = eemi(m, "drv", PM_API.PM_CLOCK_ENABLE, clockOf(SD_0));
    expect(other.r.x0).toBe(0xffff_ffff_ffff_ffffn);
    expect(other.r.decision.action).toBe("deny");
  });

  it("request and release: DOUBLE_REQ, INVALID_NODE, and a released node another VM can take", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    expect(eemi(m, "dom0", PM_API.PM_REQUEST_NODE, GPIO, 1, 0, 1).status).toBe(XST_PM.SUCCESS);
    expect(eemi(m, "dom0", PM_API.PM_REQUEST_NODE, GPIO, 1, 0, 1).status).toBe(XST_PM.DOUBLE_REQ);
    expect(eemi(m, "dom0", PM_API.PM_REQUEST_NODE, 999).status).toBe(XST_PM.INVALID_NODE);
    expect(eemi(m, "dom0", PM_API.PM_RELEASE_NODE, GPIO).status).toBe(XST_PM.SUCCESS);
    expect(m.hypervisor.model.eemi.ownerOf(GPIO)).toBeNull();
  });

  it("resets and clock rates keep their state", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    expect(eemi(m, "dom0", PM_API.PM_RESET_ASSERT, resetOf(SD_0), 1).status).toBe(XST_PM.SUCCESS);
    expect(eemi(m, "dom0", PM_API.PM_RESET_GET_STATUS, resetOf(SD_0)).payload1).toBe(1);
    expect(eemi(m, "dom0", PM_API.PM_CLOCK_SETRATE, clockOf(SD_0), 200_000_000).status).toBe(XST_PM.SUCCESS);
    expect(eemi(m, "dom0", PM_API.PM_CLOCK_GETRATE, clockOf(SD_0)).payload1).toBe(200_000_000);
    expect(eemi(m, "dom0", PM_API.PM_CLOCK_GETDIVIDER, clockOf(SD_0)).payload1).toBe(5);
  });

  it("FEATURE_CHECK reports implemented APIs and NO_FEATURE for others; unknown APIs get -1", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    expect(eemi(m, "dom0", PM_API.PM_FEATURE_CHECK, PM_API.PM_CLOCK_ENABLE).payload1).toBe(1);
    expect(eemi(m, "dom0", PM_API.PM_FEATURE_CHECK, 55).status).toBe(XST_PM.NO_FEATURE);
    expect(m.vm("dom0").vcpu(0).smc(SIP | 55).x0).toBe(0xffff_ffff_ffff_ffffn);
  });
});

describe("secure memory: no path lets a VM reach it", () => {
  it("FPGA_LOAD from the VM's own RAM works; from secure memory or another VM's RAM it is refused and traced", () => {
    const m = ScriptedMachine.fromText(CONFIG);
    m.vm("dom0").memory.write(0x4000_1000n, new Uint8Array([1, 2, 3, 4]));
    expect(eemi(m, "dom0", PM_API.PM_FPGA_LOAD, 0x4000_1000, 0, 4).status).toBe(XST_PM.SUCCESS);
    expect(m.hypervisor.model.eemi.fpga).toMatchObject({ vm: "dom0", bytes: 4 });
    expect(eemi(m, "dom0", PM_API.PM_FPGA_LOAD, 0x0e00_0000, 0, 4096).status).toBe(XST_PM.NO_ACCESS);
    // domU's RAM is placed at 4 GiB in the platform's physical space.
    expect(eemi(m, "dom0", PM_API.PM_FPGA_LOAD, 0, 1, 16).status).toBe(XST_PM.NO_ACCESS);
    const refusals = m.trace.events().filter((e) => e.rule.startsWith("refused:"));
    expect(refusals.map((e) => e.rule)).toEqual([
      'refused: 0xe000000+0x1000 touches secure memory "tee-os"',
      "refused: 0x100000000+0x10 is RAM of another VM",
    ]);
    expect(m.hypervisor.model.eemi.fpga!.bytes).toBe(4);
  });

  it("a VM's RAM may not overlap secure memory or another VM's (config errors with paths)", () => {
    expect(() => ScriptedMachine.fromText("platform:\n  secureMemory: [{ name: tee, base: 0x40000000, size: 1MiB }]\nvms:\n  a: { memory: { pa: 0x40000000 } }\n")).toThrow(/vms\.a\.memory\.pa: its RAM \(PA 0x40000000-0x4fffffff\) overlaps secure memory "tee"/);
    expect(() => ScriptedMachine.fromText("vms:\n  a: { memory: { pa: 0x80000000 } }\n  b: { memory: { pa: 0x80000000 } }\n")).toThrow(/vms\.b\.memory\.pa: .*overlaps a's/);
  });
});

/**
 * Property: over random policies, VMs and calls, a VM never changes monitor state another VM holds, and
 * never receives register contents beyond the ABI's results (x4-x17 keep the caller's values).
 */
describe("isolation property", () => {
  it("holds for random grants and EEMI calls", () => {
    const apis = [PM_API.PM_REQUEST_NODE, PM_API.PM_RELEASE_NODE, PM_API.PM_SET_REQUIREMENT, PM_API.PM_CLOCK_ENABLE, PM_API.PM_CLOCK_DISABLE, PM_API.PM_RESET_ASSERT, PM_API.PM_CLOCK_SETDIVIDER, PM_API.PM_GET_API_VERSION, 55];
    const nodes = [UART_0, UART_1, SD_0, SD_1, GPIO];
    const vms = ["dom0", "domU", "drv"];
    const grantArb = fc.oneof(fc.constant("{ owner: sip, action: forward }"), fc.constant("{ owner: sip, action: deny }"), fc.constantFrom(...nodes).map((n) => `{ range: "0xC2000000-0xC20000FF", args: { w1: [${n}, ${clockOf(n)}, ${resetOf(n)}] }, action: forward }`));
    fc.assert(
      fc.property(
        fc.tuple(fc.array(grantArb, { maxLength: 2 }), fc.array(grantArb, { maxLength: 2 }), fc.array(grantArb, { maxLength: 2 })),
        fc.array(fc.record({ vm: fc.constantFrom(...vms), api: fc.constantFrom(...apis), node: fc.constantFrom(...nodes), kind: fc.constantFrom("node", "clock", "reset"), arg1: fc.nat(3) }), { minLength: 1, maxLength: 40 }),
        (grants, calls) => {
          const yaml = CONFIG.replace(/vms:[\s\S]*/, "vms:\n" + vms.map((vm, i) => `  ${vm}:\n    memory: { size: 16MiB }\n    grants: [${grants[i]!.join(", ")}]`).join("\n") + "\n");
          const m = ScriptedMachine.fromText(yaml);
          const eemiModel = m.hypervisor.model.eemi;
          for (const c of calls) {
            const before = nodes.map((n) => ({ ...eemiModel.nodeState(n)! }));
            const target = c.kind === "node" ? c.node : c.kind === "clock" ? clockOf(c.node) : resetOf(c.node);
            const v = m.vm(c.vm).vcpu(0);
            for (let n = 3; n <= 17; n++) v.setX(n, 0x5eed_0000n + BigInt(n));
            const r = v.smc(SIP | c.api, (BigInt(c.arg1) << 32n) | BigInt(target), 0);
            // Nothing beyond the ABI's results: x0-x1 are EEMI's, x2-x3 zero, x4-x17 the caller's own.
            if (r.decision.action === "forward") for (const n of [2, 3]) expect(r.x(n)).toBe(0n);
            for (let n = 4; n <= 17; n++) expect(r.x(n)).toBe(0x5eed_0000n + BigInt(n));
            // No VM changed a node another VM held.
            nodes.forEach((n, i) => {
              const was = before[i]!;
              if (was.owner !== null && was.owner !== c.vm) expect(eemiModel.nodeState(n)).toEqual(was);
            });
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
