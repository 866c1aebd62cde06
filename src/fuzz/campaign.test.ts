/**
 * The campaign's checker can fail: each test breaks the core on purpose (a handler that clobbers a
 * register, writes another VM's RAM through its port or through a view kept from an earlier call, touches
 * another VM's vCPU, lets a VM hold more OP-TEE calls than its limit, answers differently each time while
 * saying its answer is fixed, or counts a call twice in the trace) and expects the campaign to report it,
 * at the call that did it, again when the seed is replayed with that many calls.
 */
import { describe, expect, it } from "vitest";
import type { HypervisorOptions } from "../hypervisor/hypervisor.js";
import type { ScriptedMachine } from "../machine/scripted/machine.js";
import { parseConfigText, type Config } from "../policy/load.js";
import { CALL_SMC, SmcCall, SmcResult } from "../router/call.js";
import type { ServiceDefinition } from "../router/service.js";
import { STANDARD_SERVICES } from "../services/standard.js";
import { OEN } from "../smccc/owners.js";
import { runCampaign, type CampaignOptions } from "./campaign.js";

/** The saboteur's ID: OEM service call 0x100, fast, SMC32 and SMC64. */
const SABOTAGE = 0x8300_0100;

function config(yaml: string): Config {
  const r = parseConfigText(yaml);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}

const TWO = config('vms:\n  a: { smccc: "1.1", vcpus: 2 }\n  b: { smccc: "1.2" }\n');

/**
 * The machines of a campaign, by the RAM object of each of their VMs: a service instance finds the machine
 * it was made for (the campaign builds two: the one under test, and the reference with the cache off).
 */
class Machines {
  private readonly byRam = new Map<unknown, { machine: ScriptedMachine; role: string }>();
  readonly tamper = (m: ScriptedMachine, role: string) => {
    for (const vm of m.config.vms) this.byRam.set(m.vm(vm.name).memory, { machine: m, role });
  };
  /** The machine under test, when the service instance belongs to it; null in the reference machine. */
  subject(ram: unknown): ScriptedMachine | null {
    const m = this.byRam.get(ram);
    return m?.role === "subject" ? m.machine : null;
  }
}

/** A service on OEM 0x100 (or `fn`) that answers 0 and then does `effect` (with the machine it belongs to). */
function saboteur(effect: (vm: string, call: SmcCall, ram: unknown) => void, opts: { answer?: () => number; fixed?: boolean; fn?: number; name?: string } = {}): ServiceDefinition {
  const name = opts.name ?? "saboteur";
  const fn = opts.fn ?? 0x100;
  return {
    name,
    enabled: () => true,
    claims: () => [{ service: name, owner: OEN.OEM, types: [2, 3], first: fn, last: fn }],
    create: (ctx) => ({
      handle(call, res) {
        res.ret(opts.answer?.() ?? 0);
        effect(ctx.vm.name, call, ctx.vmPorts.memory);
      },
      features: () => 0,
      ...(opts.fixed ? { fixed: () => true } : {}),
    }),
  };
}

/** An SMC32 to the secure world with x1 = `a1` and a7 = 0 (the hypervisor's client ID). */
function secureCall(fid: number, a1: number): SmcCall {
  const regs = new Uint32Array(36);
  regs[0] = fid;
  regs[2] = a1;
  const call = new SmcCall();
  call.load(regs, fid, fid, 0, 7, CALL_SMC);
  return call;
}

function withServices(...extra: ServiceDefinition[]): HypervisorOptions {
  return { services: [...STANDARD_SERVICES, ...extra] };
}

async function campaign(opts: Partial<CampaignOptions> & { config: Config }) {
  return runCampaign({ calls: 4000, seed: 11, cwd: process.cwd(), ...opts });
}

/** Runs a sabotaged campaign, expects a violation, and replays it from its seed and call count. */
async function expectCaught(opts: Partial<CampaignOptions> & { config: Config }, kind: string, message: RegExp) {
  const r = await campaign(opts);
  expect(r.violation, "the checker missed the sabotage").not.toBeNull();
  const v = r.violation!;
  expect(v.kind).toBe(kind);
  expect(v.message).toMatch(message);
  expect(v.exact).toBe(true);
  const again = await campaign({ ...opts, calls: v.call + 1 });
  expect(again.violation).toMatchObject({ kind: v.kind, call: v.call, vm: v.vm, fid: v.fid, exact: true });
  return v;
}

describe("a fuzzing campaign", () => {
  it("finds nothing wrong with the core as it is, for a config with every kind of VM", async () => {
    const r = await campaign({ config: config('vms:\n  a: { smccc: "1.1", vcpus: 2 }\n  b: { smccc: "1.2", conduit: hvc }\n  c: { aarch32: true, smccc: "1.0" }\n'), calls: 3000 });
    expect(r.violation).toBeNull();
    expect(r.calls).toBe(3000);
    expect(Object.values(r.stats.perVm).every((n) => n > 500)).toBe(true);
  });

  it("is the same campaign for the same seed, another for another seed", async () => {
    const a = await campaign({ config: TWO, calls: 1000, reference: false });
    const b = await campaign({ config: TWO, calls: 1000, reference: false });
    const c = await campaign({ config: TWO, calls: 1000, reference: false, seed: 12 });
    expect(b.stats).toEqual(a.stats);
    expect(c.stats.perVm).not.toEqual(a.stats.perVm);
  });

  it("catches a handler that clobbers x5 of an SMCCC 1.1 caller", async () => {
    const clobber = saboteur((vm, call) => {
      if (vm === "a") call.regs[10] = 0xdead;
    });
    const v = await expectCaught({ config: TWO, hypervisor: withServices(clobber) }, "registers", /x5 changed from 0x[0-9a-f]+ to 0xdead, beyond the results \(x0-x3\)/);
    expect(v).toMatchObject({ vm: "a" });
    expect((v.fid & 0xbfff_ffff) >>> 0).toBe(SABOTAGE);
  });

  it("catches a handler that writes another VM's RAM through its port", async () => {
    const machines = new Machines();
    const writer = saboteur((vm, _call, ram) => {
      const m = machines.subject(ram);
      if (vm === "a" && m) m.vm("b").memory.write(m.vm("b").memory.base + 0x1000n, Uint8Array.of(0x41));
    });
    const v = await expectCaught({ config: TWO, hypervisor: withServices(writer), tamper: machines.tamper }, "memory", /during a call of a, b's RAM was written at IPA 0x40001000/);
    expect(v.vm).toBe("a");
  });

  it("catches a write through a view another VM handed out in an earlier call of its own", async () => {
    const machines = new Machines();
    const kept = new Map<ScriptedMachine, Uint8Array>();
    // b's call: the service keeps a view of b's RAM, as a TA keeps a memref while its thread waits in an RPC.
    const viewer = saboteur((vm, _call, ram) => {
      const m = machines.subject(ram);
      if (vm === "b" && m && !kept.has(m)) kept.set(m, m.vm("b").memory.view(m.vm("b").memory.base + 0x2000n, 16)!);
    });
    // a's call: another service writes through it.
    const writer = saboteur((vm, _call, ram) => {
      const m = machines.subject(ram);
      const view = m ? kept.get(m) : undefined;
      if (vm === "a" && view) view[3]! ^= 0x5a;
    }, { fn: 0x101, name: "writer" });
    const v = await expectCaught({ config: TWO, hypervisor: withServices(viewer, writer), tamper: machines.tamper }, "memory", /b's RAM at IPA 0x40002003 \(a page it had handed out as a view\) changed while other VMs ran/);
    expect(v.vm).toBe("a");
    expect((v.fid & 0xbfff_ffff) >>> 0).toBe(0x8300_0101);
  });

  it("catches a handler that changes another VM's vCPU", async () => {
    const machines = new Machines();
    const poke = saboteur((vm, _call, ram) => {
      const m = machines.subject(ram);
      if (vm === "a" && m) m.vm("b").vcpus[0]!.words[20] ^= 1;
    });
    const v = await expectCaught({ config: TWO, hypervisor: withServices(poke), tamper: machines.tamper }, "held-state", /b vCPU 0: x10 changed while other VMs ran/);
    expect(v.vm).toBe("a");
  });

  it("catches a fixed answer that is not fixed (the answer cache on and off disagree)", async () => {
    const counters = new Map<string, number>();
    const drifting = saboteur(() => {}, {
      fixed: true,
      answer: () => {
        const n = (counters.get("n") ?? 0) + 1;
        counters.set("n", n);
        return n;
      },
    });
    await expectCaught({ config: TWO, hypervisor: withServices(drifting), reference: true }, "answer-cache", /x0 is 0x[0-9a-f]+ with the answer cache, 0x[0-9a-f]+ without/);
  });

  it("catches a call counted twice in the trace (noticed later, located by replay)", async () => {
    const machines = new Machines();
    const twice = saboteur((vm, _call, ram) => {
      const m = machines.subject(ram);
      if (vm !== "b" || m === null) return;
      m.trace.record(1, 0, 0, SABOTAGE, 0, m.trace.intern("b|default:saboteur"), 0, 0, 0, 0, 0);
    });
    // Without the reference machine, which would notice first (its call leaves one event fewer).
    const v = await expectCaught({ config: TWO, hypervisor: withServices(twice), tamper: machines.tamper, reference: false }, "trace", /the trace counts \d+ calls for b; it made \d+/);
    expect(v.vm).toBe("b");
  });

  it("catches a call that destroys another VM's OP-TEE guest (as the hypervisor, VM_DESTROYED)", async () => {
    const tee = config(`platform:\n  tee: { os: optee, threads: 8, maxGuests: 2 }\nvms:\n  a: { conduit: smc, tee: { mediator: optee } }\n  b: { conduit: smc, tee: { mediator: optee } }\n`);
    const machines = new Machines();
    const destroyer = saboteur((vm, _call, ram) => {
      const m = machines.subject(ram);
      if (vm !== "a" || m === null) return;
      const b = m.hypervisor.domain("b").config.id;
      // What a forwarded Trusted OS call with a7 = 0 did before the monitor refused them (issue 11).
      m.hypervisor.optee!.handle(secureCall(0xb200_000e, b), new SmcResult(), { vmId: 0, vmName: "hypervisor", vcpu: 0 });
    });
    const v = await expectCaught({ config: tee, calls: 20_000, hypervisor: withServices(destroyer), tamper: machines.tamper, reference: false }, "held-state", /what b holds outside its RAM changed while other VMs ran/);
    expect(v.vm).toBe("a");
  });

  it("catches a handler that reads the hypervisor's page of another VM's call waiting in OP-TEE", async () => {
    const tee = config(`platform:\n  tee: { os: optee, threads: 8, maxGuests: 2 }\nvms:\n  a: { conduit: smc, tee: { mediator: optee } }\n  b: { conduit: smc, tee: { mediator: optee } }\n`);
    const machines = new Machines();
    const snoop = saboteur((vm, _call, ram) => {
      const m = machines.subject(ram);
      if (vm !== "a" || m === null) return;
      // The shadow argument of one of b's calls suspended in an RPC, as a heap overlapping a's RAM exposed it.
      const heap = m.hypervisor.heap;
      for (let p = 0n; p < 64n; p++) if (heap.ownerOf(heap.base + p * 4096n, 1) === "b") return void heap.read(heap.base + p * 4096n, 32);
    });
    const v = await expectCaught({ config: tee, calls: 20_000, hypervisor: withServices(snoop), tamper: machines.tamper, reference: false }, "memory", /during a call of a, a page of the hypervisor's heap held for b was read at PA 0x8[0-9a-f]{8}/);
    expect(v.vm).toBe("a");
  });

  it("catches a VM holding more OP-TEE calls than its limit", async () => {
    const tee = config(`platform:\n  tee: { os: optee, threads: 8, maxGuests: 2, limits: { callsInFlight: 2 } }\nvms:\n  a: { conduit: smc, tee: { mediator: optee } }\n  b: { conduit: smc, tee: { mediator: optee } }\n`);
    const v = await expectCaught(
      {
        config: tee,
        calls: 20_000,
        // The mediator of the machine under test admits 6 calls in flight per VM; the platform says 2.
        tamper: (m, role) => {
          if (role !== "subject") return;
          const mediator = m.hypervisor.mediators.get("optee") as unknown as { limits: Record<string, number> };
          mediator.limits = { ...mediator.limits, callsInFlight: 6 };
        },
        reference: false,
      },
      "quota",
      /(has 3 OP-TEE calls in flight; its limit is 2|holds 3 OP-TEE threads)/,
    );
    expect(["a", "b"]).toContain(v.vm);
  });
});
