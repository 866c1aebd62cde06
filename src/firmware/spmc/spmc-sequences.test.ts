// Random sequences of what a hypervisor may ask of the SPMC for two VMs, checked against the bounds and,
// at the end, for nothing left behind once both VMs are destroyed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FFA_MEM_PERM, ffaHandle, ffaHandleHi, ffaHandleLo } from "../../smccc/ffa/abi.js";
import { encodeMemTransaction } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { TEST_SP_CMD } from "./partitions/test-sp.js";
import { RAM_A, RAM_B, SP1, SP4, TX, VM_A, VM_B, ZERO_COUNTERS, pages, world } from "./spmc-fixture.js";

type Op =
  | { kind: "share"; vm: 0 | 1; first: number; count: number; lend: boolean; receivers: number[]; fragments: boolean }
  | { kind: "reclaim"; pick: number }
  | { kind: "checksum"; vm: 0 | 1; pick: number }
  | { kind: "hold"; pick: number }
  | { kind: "release"; pick: number }
  | { kind: "frag"; vm: 0 | 1 };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("share" as const),
    vm: fc.constantFrom(0 as const, 1 as const),
    first: fc.integer({ min: 0, max: 60 }),
    count: fc.integer({ min: 1, max: 6 }),
    lend: fc.boolean(),
    receivers: fc.subarray([SP1, SP4], { minLength: 1 }),
    fragments: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("reclaim" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("checksum" as const), vm: fc.constantFrom(0 as const, 1 as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("hold" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("frag" as const), vm: fc.constantFrom(0 as const, 1 as const) }),
);

describe("random sequences", () => {
  it("stay within the bounds, and VM_DESTROYED at every partition told leaves nothing", () => {
    // What the sequences reached, so that the property is not vacuous.
    const reached = { shared: 0, fragmented: 0, held: 0, reclaimed: 0 };
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const limits = { maxSharesPerVm: 5, maxPagesPerVm: 16 };
        const w = world({ limits });
        w.map();
        for (const vm of [VM_A, VM_B]) {
          w.create(vm, SP1);
          w.create(vm, SP4);
        }
        const vms = [VM_A, VM_B] as const;
        const rams = [RAM_A, RAM_B] as const;
        const handles: bigint[] = [];
        const pick = (n: number) => (handles.length === 0 ? 0x77n : handles[n % handles.length]!);
        w.sp4.script = (ctx, _sender, args) => {
          const h = ffaHandle(Number(args[1]! & 0xffff_ffffn), Number(args[2]! & 0xffff_ffffn));
          const r = args[0] === 1n ? (ctx.retrieve(h).ok ? 0 : 1) : ctx.relinquish(h);
          return { ok: true, args: [BigInt(r >>> 0)] };
        };
        for (const o of ops) {
          switch (o.kind) {
            case "share": {
              const t = w.tx(vms[o.vm], [pages(rams[o.vm], o.first, Math.min(o.count, 64 - o.first))], o.receivers);
              const bytes = encodeMemTransaction(
                { ...t, receivers: t.receivers.map((r) => ({ ...r, permissions: FFA_MEM_PERM.DATA_RW })) },
                w.layout,
              );
              const fid = o.lend ? F.FFA_MEM_LEND.smc64 : F.FFA_MEM_SHARE.smc64;
              const length = o.fragments ? bytes.length - 16 : bytes.length;
              w.mem.poke(TX, bytes.subarray(0, length));
              const r = w.call(fid, bytes.length, length, 0, 0);
              if (r[0] === BigInt(F.FFA_SUCCESS.smc32)) {
                handles.push(ffaHandle(Number(r[2]), Number(r[3])));
                reached.shared++;
              }
              if (r[0] === BigInt(F.FFA_MEM_FRAG_RX.smc32)) {
                handles.push(ffaHandle(Number(r[1]), Number(r[2])));
                reached.fragmented++;
              }
              break;
            }
            case "frag": {
              // Completes (or fails) the last transaction in progress, as the VM given says it is.
              const h = pick(handles.length - 1);
              w.mem.poke(TX, new Uint8Array(16));
              w.call(F.FFA_MEM_FRAG_TX.smc32, ffaHandleLo(h), ffaHandleHi(h), 16, vms[o.vm] << 16);
              break;
            }
            case "reclaim": {
              const h = pick(o.pick);
              if (w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(h), ffaHandleHi(h), 0)[0] === BigInt(F.FFA_SUCCESS.smc32)) reached.reclaimed++;
              break;
            }
            case "checksum": {
              const h = pick(o.pick);
              w.direct(vms[o.vm], SP1, [TEST_SP_CMD.CHECKSUM, ffaHandleLo(h), ffaHandleHi(h)]);
              break;
            }
            case "hold":
            case "release": {
              const h = pick(o.pick);
              const r = w.direct(VM_A, SP4, [o.kind === "hold" ? 1 : 2, ffaHandleLo(h), ffaHandleHi(h)]);
              if (o.kind === "hold" && r[3] === 0n) reached.held++;
              break;
            }
          }
          for (const vm of vms) {
            const c = w.spmc.counters(vm);
            expect(c.shares + c.fragments).toBeLessThanOrEqual(limits.maxSharesPerVm);
            expect(c.pages).toBeLessThanOrEqual(limits.maxPagesPerVm);
          }
        }
        for (const vm of vms) {
          w.destroy(vm, SP1);
          w.destroy(vm, SP4);
          expect(w.spmc.counters(vm)).toEqual(ZERO_COUNTERS);
        }
      }),
      { numRuns: 300, seed: 0x5eed },
    );
    expect(Math.min(reached.shared, reached.fragmented, reached.held, reached.reclaimed)).toBeGreaterThan(10);
  });
});
