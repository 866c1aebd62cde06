import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import type { MediatorHost } from "../../mediators/mediator.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { isFfaCall } from "./monitor.js";

/** An SPMC that answers FFA_VERSION with v1.2 and records who called. */
class RecordingSpmc implements CallTarget {
  readonly callers: { vmId: number; fid: number }[] = [];
  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    this.callers.push({ vmId: origin.vmId, fid: call.rawFid });
    res.ret(0x1_0002);
  }
}

describe("the monitor's FF-A dispatch", () => {
  it("knows FF-A's IDs: OEN 4, function numbers 0x60-0xFF, SMC32 and SMC64, fast calls only", () => {
    for (const f of Object.values(F)) for (const id of Object.values(f)) expect(isFfaCall(id), id.toString(16)).toBe(true);
    for (const id of [0x8400_0000, 0x8400_005f, 0x8400_0100, 0x0400_0063, 0x8500_0063, 0xc500_0063, 0x8400_ff00]) expect(isFfaCall(id), id.toString(16)).toBe(false);
  });

  it("hands the hypervisor's FF-A calls to the SPMC and refuses a VM's own (a forward grant built past validation) with FFA_ERROR(NOT_SUPPORTED)", () => {
    // Valid without an SPMC: the forward grant is refused only when the config names one.
    const m = ScriptedMachine.fromText("vms:\n  a:\n    grants:\n      - { range: [0x84000060, 0x840000ff], action: forward }\n");
    const spmc = new RecordingSpmc();
    m.hypervisor.model.spmc = spmc;
    const r = m.vm("a").vcpu(0).smc(F.FFA_VERSION.smc32, 0x1_0002);
    expect([r.x0, r.x(1), r.x(2)]).toEqual([0x8400_0060n, 0n, 0xffff_ffffn]);
    expect(spmc.callers).toEqual([]);
    expect(m.trace.events().some((e) => e.vm === "a" && e.rule === "refused: FF-A calls reach the SPMC only through the FF-A mediator")).toBe(true);
    const host = (m.hypervisor as unknown as { mediatorHost(): MediatorHost }).mediatorHost();
    expect((host.secureCall("test: FF-A", "a", [F.FFA_VERSION.smc32, 0x1_0002]) as number[])[0]).toBe(0x1_0002);
    expect(spmc.callers).toEqual([{ vmId: 0, fid: F.FFA_VERSION.smc32 }]);
  });

  it("passes the hypervisor's 64-bit registers x1-x17 through secureCall64, and all 18 back", () => {
    const m = ScriptedMachine.fromText("vms:\n  a: {}\n");
    const seen: bigint[] = [];
    m.hypervisor.model.spmc = {
      handle(call: SmcCall, res: SmcResult) {
        for (let n = 1; n <= 17; n++) seen.push(call.x(n));
        res.ret(0xc400_0061);
        res.setBig(17, call.x(17) + 1n);
      },
    };
    const host = (m.hypervisor as unknown as { mediatorHost(): MediatorHost }).mediatorHost();
    const args = Array.from({ length: 17 }, (_, i) => (BigInt(i + 1) << 40n) | 0xabcdn);
    const out = host.secureCall64!("test: FF-A", "a", [BigInt(F.FFA_MSG_SEND_DIRECT_REQ2.smc64), ...args]) as bigint[];
    expect(seen).toEqual(args);
    expect(out).toHaveLength(18);
    expect(out[0]).toBe(0xc400_0061n);
    expect(out[17]).toBe(args[16]! + 1n);
  });

  it("answers FF-A calls as unknown functions when the platform has no SPMC", () => {
    const m = ScriptedMachine.fromText("vms:\n  a:\n    grants:\n      - { range: [0x84000060, 0x840000ff], action: forward }\n");
    expect(m.vm("a").vcpu(0).smc(F.FFA_VERSION.smc32, 0x1_0002).x0).toBe(0xffff_ffffn);
  });
});
