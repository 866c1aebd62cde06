import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MonitorModel } from "../firmware/monitor/monitor.js";
import { Hypervisor } from "../hypervisor/hypervisor.js";
import type { MediatorHost } from "../mediators/mediator.js";
import { OpteeMediator } from "../mediators/optee/mediator.js";
import { SmcCall, SmcResult } from "../router/call.js";
import { claimIntervals, intersectIntervals, normalizeIntervals, subtractIntervals, TRUSTED_OS_CALLS, type Interval } from "./isolation.js";
import { parseConfigText, type VmConfig } from "./load.js";

function hypervisorErrors(text: string) {
  const r = parseConfigText(text);
  if (!r.ok) throw new Error(`the config itself is invalid: ${JSON.stringify(r.errors)}`);
  const h = Hypervisor.fromConfig(r.value);
  return h.ok ? [] : h.errors;
}

const inside = (list: readonly Interval[], v: number) => list.some(([lo, hi]) => v >= lo && v <= hi);

describe("an exclusive grant holds against every way another VM could get its IDs", () => {
  const tee = "platform: { tee: { os: optee } }\n";

  it("against another VM's tee: claim on the same IDs", () => {
    const e = hypervisorErrors(`${tee}vms:\n  a:\n    tee: optee\n    grants:\n      - { owner: trusted-os, action: "mediate:optee", exclusive: true }\n  b:\n    tee: optee\n`);
    expect(e).toHaveLength(1);
    expect(e[0]!.path).toBe("vms.b.tee");
    expect(e[0]!.message).toMatch(/its TEE \(the optee mediator\) gives b 0x32000000-0x3200FFFF and 55 more ranges, which vms\.a\.grants\[0\] grants exclusively to a/);
  });

  it("against another VM's default service", () => {
    const e = hypervisorErrors("vms:\n  a:\n    grants:\n      - { range: \"0x84000050-0x8400005F\", action: forward, exclusive: true }\n  b: {}\n");
    expect(e).toEqual([
      { path: "vms.b.services.trng", message: "its trng service gives b 0x84000050-0x8400005F, which vms.a.grants[0] grants exclusively to a; switch it off for b, or deny those IDs in its grants" },
    ]);
  });

  it("is satisfied when the other VM switches the service off or denies the IDs unconditionally", () => {
    const exclusive = 'vms:\n  a:\n    grants:\n      - { range: "0x84000050-0x8400005F", action: forward, exclusive: true }\n';
    expect(hypervisorErrors(`${exclusive}  b: { services: { trng: false } }\n`)).toEqual([]);
    expect(hypervisorErrors(`${exclusive}  b:\n    grants:\n      - { owner: std-secure, calls: [fast32, fast64], action: deny }\n`)).toEqual([]);
    // A deny that holds only for some arguments leaves the service reachable for the others.
    expect(hypervisorErrors(`${exclusive}  b:\n    grants:\n      - { owner: std-secure, calls: [fast32, fast64], args: { x1: [1] }, action: deny }\n`)[0]!.path).toBe("vms.b.services.trng");
  });

  it("does not stop the owner's own services", () => {
    expect(hypervisorErrors('vms:\n  a:\n    grants:\n      - { range: "0x84000050-0x8400005F", action: emulate, exclusive: true }\n  b: { services: { trng: false } }\n')).toEqual([]);
  });
});

describe("Trusted OS calls: what the config refuses to forward", () => {
  const host = {} as MediatorHost;
  const vmOf = (aarch32: boolean): VmConfig => {
    const r = parseConfigText(`vms:\n  a: { aarch32: ${aarch32} }\n`);
    if (!r.ok) throw new Error("invalid");
    return r.value.vms[0]!;
  };

  it("are what the OP-TEE mediator claims for a VM with tee: (claims leave out IDs with bits 23:16 set, which no service serves)", () => {
    const claims = (aarch32: boolean) => normalizeIntervals(new OpteeMediator(host).claims(vmOf(aarch32)).flatMap((c) => claimIntervals(c).layout));
    const a64 = claims(false), a32 = claims(true);
    const check = (fid: number) => {
      const dispatchable = (fid & 0x00ff_0000) === 0;
      expect(inside(a64, fid), `0x${fid.toString(16)}`).toBe(inside(TRUSTED_OS_CALLS, fid) && dispatchable);
      expect(inside(a32, fid)).toBe(inside(TRUSTED_OS_CALLS, fid) && dispatchable && (fid & 0x4000_0000) === 0);
    };
    for (const [lo, hi] of TRUSTED_OS_CALLS) for (const fid of [lo - 1, lo, hi, hi + 1]) if (fid >= 0 && fid <= 0xffff_ffff) check(fid);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), check), { numRuns: 5000 });
  });

  it("cover every call the modelled monitor hands its trusted OS", () => {
    const reached: number[] = [];
    const monitor = new MonitorModel({ trustedOs: { handle: (call) => void reached.push(call.fid) } });
    const call = new SmcCall();
    const res = new SmcResult();
    const regs = new Uint32Array(36);
    const probe = (fid: number) => {
      regs[0] = fid;
      call.load(regs, fid, fid, 0, 17, 0);
      res.reset();
      // As the hypervisor (client ID 0): the monitor hands a VM's own forwarded call to no trusted OS.
      monitor.handle(call, res, { vmId: 0, vmName: "hypervisor", vcpu: 0 });
    };
    const edges = [0, 0x01ff_ffff, 0x0200_0000, 0x41ff_ffff, 0x4200_0000, 0x8000_0000, 0xafff_ffff, 0xb000_0000, 0xc000_0000, 0xefff_ffff, 0xf000_0000, 0xffff_ffff];
    for (const fid of edges) probe(fid);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (fid) => probe(fid)), { numRuns: 5000 });
    expect(reached.length).toBeGreaterThan(0);
    for (const fid of reached) expect(inside(TRUSTED_OS_CALLS, fid), `0x${fid.toString(16)}`).toBe(true);
  });
});

describe("interval arithmetic", () => {
  const intervals = fc.array(fc.tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 20 })).map(([lo, n]) => [lo, lo + n] as Interval), { maxLength: 6 });
  it("agrees with sets of points", () => {
    fc.assert(
      fc.property(intervals, intervals, (a, b) => {
        for (let v = 0; v <= 222; v++) {
          expect(inside(intersectIntervals(a, b), v)).toBe(inside(a, v) && inside(b, v));
          expect(inside(subtractIntervals(a, b), v)).toBe(inside(a, v) && !inside(b, v));
          expect(inside(normalizeIntervals(a), v)).toBe(inside(a, v));
        }
      }),
    );
  });
});
