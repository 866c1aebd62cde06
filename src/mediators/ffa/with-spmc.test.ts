// The FF-A mediator against the modelled SPMC (src/firmware/spmc) and its test partition: what a Linux
// guest does (v1.0, partition discovery by UUID, direct requests, MEM_SHARE in fragments, a partition that
// retrieves and checksums the memory, reclaim), notifications from a partition, and teardown that leaves
// nothing at the SPMC.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SpmcModel, type SpmcMemory } from "../../firmware/spmc/spmc.js";
import { TEST_SP_CMD, TestPartition } from "../../firmware/spmc/partitions/test-sp.js";
import { HypervisorHeap } from "../../hypervisor/heap.js";
import { ArrayGuestMemory } from "../../machine/scripted/memory.js";
import { FFA_MEM_ATTR_NORMAL_WB_IS, FFA_MEM_PERM, FFA_RET, ffaEndpoints, ffaHandle } from "../../smccc/ffa/abi.js";
import { encodeMemTransaction } from "../../smccc/ffa/descriptors.js";
import { decodePartitionInfo, ffaUuidWords } from "../../smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { DEFAULT_FFA_LIMITS } from "./limits.js";
import { Guest, ID, IPA, PA, RAM, rig, SP1, SP1_UUID, worldOf } from "./testing.js";

const TX = IPA + 0x1_0000n, RX = IPA + 0x2_0000n;
const page = (i: number) => IPA + 0x4_0000n + BigInt(i) * 0x1000n;
const SUCCESS = BigInt(F.FFA_SUCCESS.smc32);
const SPMC_ZERO = { known: false, partitions: 0, shares: 0, fragments: 0, pages: 0, retrieved: 0, bitmaps: 0, bindings: 0, pendingNotifications: 0 };

function setup() {
  const heap = new HypervisorHeap(0x8_0000_0000n, 64);
  const ram: Record<string, ArrayGuestMemory> = {};
  // The SPMC's view of normal-world memory by owner: the heap is the hypervisor's (0), each VM its RAM.
  const locate = (pa: bigint, length: number, owner: number): { mem: ArrayGuestMemory; ipa: bigint } | "heap" | null => {
    if (owner === 0) return heap.contains(pa, length) ? "heap" : null;
    const name = Object.keys(ID).find((n) => ID[n] === owner);
    const base = name === undefined ? undefined : PA[name];
    if (base === undefined || pa < base || pa + BigInt(length) > base + RAM || !ram[name!]) return null;
    return { mem: ram[name!]!, ipa: IPA + (pa - base) };
  };
  const memory: SpmcMemory = {
    read: (pa, length, owner) => {
      const at = locate(pa, length, owner);
      return at === null ? null : at === "heap" ? heap.read(pa, length) : at.mem.read(at.ipa, length);
    },
    write: (pa, data, owner) => {
      const at = locate(pa, data.length, owner);
      return at === null ? false : at === "heap" ? heap.write(pa, data) : at.mem.write(at.ipa, data);
    },
    owns: (pa, length, owner) => {
      const at = locate(pa, length, owner);
      return at === "heap" ? heap.ownerOf(pa, length) !== null : at !== null;
    },
  };
  const sp1 = new TestPartition({ id: SP1, uuid: SP1_UUID });
  const spmc = new SpmcModel({ memory, partitions: [{ partition: sp1, vms: [ID.a!, ID.b!] }] });
  const r = rig(
    {
      heap,
      ram: (b, s) => {
        const m = new ArrayGuestMemory(b, s);
        ram[["a", "b", "c"][Object.keys(ram).length]!] = m;
        return m;
      },
    },
    { partitions: [{ id: SP1, vms: ["a", "b"] }] },
    worldOf(spmc),
  );
  expect(r.mediator.probe()).toBe(true);
  for (const [name, peers] of [["a", ["b"]], ["b", ["a"]]] as const) expect(r.mediator.enable(r.vm(name, [...peers]))).toEqual({ ok: true });
  const g = { a: new Guest(r.mediator, "a"), b: new Guest(r.mediator, "b") };
  return { ...r, ram, spmc, sp1, g };
}

/** What Linux 6.1's driver does first: FFA_VERSION 1.0, ID_GET, RXTX_MAP_64 of one page each. */
function linuxInit(g: Guest) {
  expect(g.smc(F.FFA_VERSION.smc32, 0x1_0000)[0]).toBe(0x1_0002n);
  expect(g.smc(F.FFA_ID_GET.smc32)[0]).toBe(SUCCESS);
  expect(g.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1)[0]).toBe(SUCCESS);
}

describe("the mediator and the modelled SPMC", () => {
  it("tells the test partition of each VM at enable and at destroy, which then leaves nothing at the SPMC", () => {
    const { sp1, mediator, spmc } = setup();
    expect([...sp1.vms]).toEqual([ID.a, ID.b]);
    mediator.destroy("a");
    expect([...sp1.vms]).toEqual([ID.b]);
    expect(spmc.counters(ID.a!)).toEqual(SPMC_ZERO);
  });

  it("a v1.0 guest finds the partition by UUID, messages it, shares memory it checksums, and reclaims it", () => {
    const { g, ram, spmc, mediator } = setup();
    linuxInit(g.a);
    const info = g.a.smc(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(SP1_UUID));
    expect(info.slice(0, 4)).toEqual([SUCCESS, 0n, 1n, 0n]);
    expect(decodePartitionInfo(ram.a!.read(RX, 8)!, 1, 8)![0]!.id).toBe(SP1);
    expect(g.a.smc(F.FFA_RX_RELEASE.smc32)[0]).toBe(SUCCESS);
    const echo = g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc64, ffaEndpoints(ID.a!, SP1), 0, TEST_SP_CMD.ECHO, 5n, 6n);
    expect(echo.slice(0, 6)).toEqual([BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc64), BigInt(ffaEndpoints(SP1, ID.a!)), 0n, BigInt(TEST_SP_CMD.ECHO), 5n, 6n]);
    // 300 scattered pages: a descriptor in two fragments (Linux's layout: v1.0 header, one receiver).
    let expected = 0n;
    const ranges = Array.from({ length: 300 }, (_, i) => {
      const bytes = new Uint8Array(4096).fill((i % 250) + 1);
      ram.a!.write(page(2 * i), bytes);
      expected += BigInt(((i % 250) + 1) * 4096);
      return { address: page(2 * i), pageCount: 1 };
    });
    const d = encodeMemTransaction({ sender: ID.a!, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP1, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges }, "v1.0");
    ram.a!.write(TX, d.subarray(0, 4096));
    const first = g.a.smc(F.FFA_MEM_SHARE.smc64, d.length, 4096, 0, 0);
    expect(first[0]).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    ram.a!.write(TX, d.subarray(4096));
    const done = g.a.smc(F.FFA_MEM_FRAG_TX.smc32, Number(first[1]!), Number(first[2]!), d.length - 4096);
    expect(done[0], `FFA_ERROR ${BigInt.asIntN(32, done[2]!)}`).toBe(SUCCESS);
    const handle = ffaHandle(Number(done[2]!), Number(done[3]!));
    expect(handle).toBe(ffaHandle(Number(first[1]!), Number(first[2]!)));
    expect(spmc.counters(ID.a!)).toMatchObject({ shares: 1, pages: 300 });
    const sum = g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc64, ffaEndpoints(ID.a!, SP1), 0, TEST_SP_CMD.CHECKSUM, handle & 0xffff_ffffn, handle >> 32n);
    expect(sum.slice(3, 6)).toEqual([0n, expected, 300n]);
    expect(g.a.smc(F.FFA_MEM_RECLAIM.smc32, Number(handle & 0xffff_ffffn), Number(handle >> 32n), 0)[0]).toBe(SUCCESS);
    expect(spmc.counters(ID.a!)).toMatchObject({ shares: 0, fragments: 0, pages: 0 });
    expect(mediator.counters("a")).toMatchObject({ transactions: 0, pages: 0 });
  });

  it("a bad later fragment aborts the transaction at the SPMC too", () => {
    const { g, ram, spmc, mediator } = setup();
    linuxInit(g.a);
    const ranges = Array.from({ length: 300 }, (_, i) => ({ address: page(i), pageCount: 1 }));
    const d = encodeMemTransaction({ sender: ID.a!, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP1, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges }, "v1.0");
    ram.a!.write(TX, d.subarray(0, 4096));
    const first = g.a.smc(F.FFA_MEM_SHARE.smc64, d.length, 4096, 0, 0);
    expect(spmc.counters(ID.a!).fragments).toBe(1);
    const next = d.slice(4096);
    new DataView(next.buffer).setBigUint64(0, IPA + RAM, true);
    ram.a!.write(TX, next);
    expect(Guest.code(g.a.smc(F.FFA_MEM_FRAG_TX.smc32, Number(first[1]!), Number(first[2]!), next.length))).toBe(FFA_RET.DENIED);
    expect(spmc.counters(ID.a!)).toMatchObject({ shares: 0, fragments: 0 });
    expect(mediator.counters("a")).toMatchObject({ fragmented: 0, pages: 0 });
  });

  it("a partition's notification reaches the VM that bound it (INFO_GET, GET)", () => {
    const { g } = setup();
    g.a.smc(F.FFA_VERSION.smc32, 0x1_0001);
    expect(g.a.smc(F.FFA_NOTIFICATION_BIND.smc32, ffaEndpoints(SP1, ID.a!), 0, 0x4, 0)[0]).toBe(SUCCESS);
    expect(g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc64, ffaEndpoints(ID.a!, SP1), 0, TEST_SP_CMD.NOTIFY, ID.a!, 0x4, 0)[3]).toBe(0n);
    expect(g.a.smc(F.FFA_NOTIFICATION_INFO_GET.smc64)[3]).toBe(BigInt(ID.a!));
    expect(g.a.smc(F.FFA_NOTIFICATION_GET.smc32, ID.a!, 1)[2]).toBe(0x4n);
  });

  it("destroy with memory shared: the partition is told, the SPMC drops what it held, the mediator keeps nothing", () => {
    const { g, ram, spmc, mediator } = setup();
    linuxInit(g.a);
    const d = encodeMemTransaction({ sender: ID.a!, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP1, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: page(0), pageCount: 4 }] }, "v1.0");
    ram.a!.write(TX, d);
    expect(g.a.smc(F.FFA_MEM_SHARE.smc32, d.length, d.length, 0, 0)[0]).toBe(SUCCESS);
    mediator.destroy("a");
    expect(spmc.counters(ID.a!)).toEqual(SPMC_ZERO);
    expect(mediator.stuck).toEqual([]);
    expect(mediator.counters("a")).toMatchObject({ transactions: 0, pages: 0, rxtx: 0 });
  });
});

describe("any sequence of calls a hostile VM makes", () => {
  const fids = Object.values(F).flatMap((ids) => Object.values(ids) as number[]);
  const word = fc.oneof(
    fc.constantFrom(0, 1, 2, 3, 0x8000, SP1, ffaEndpoints(ID.a!, SP1), ffaEndpoints(ID.b!, SP1), ffaEndpoints(SP1, ID.a!), 0x1_0000, 0x1_0001, 0x1_0002, 80, 96, 112, 4096, 0x8000_0000, 0xffff_ffff),
    fc.integer({ min: 0, max: 0xffff_ffff }),
  );
  const arg = fc.oneof(word, fc.constantFrom(TX, RX, page(0), page(3), IPA + RAM, 0x8_0000_0000n, 1n << 63n));
  const layout = fc.constantFrom("v1.0", "v1.1", "v1.2") as fc.Arbitrary<"v1.0" | "v1.1" | "v1.2">;
  const descriptor = fc.record({ pages: fc.integer({ min: 1, max: 8 }), at: fc.integer({ min: -2, max: 30 }), receiver: fc.constantFrom(SP1, SP1, ID.b!, ID.a!, 0x8000), layout, flip: fc.option(fc.nat(120), { freq: 2 }) });
  /** A raw call; a MEM_SHARE/LEND of a (maybe corrupted) descriptor with its own length; a reclaim, checksum or retrieve of the last handle. */
  const step = fc.oneof(
    fc.record({ kind: fc.constant("raw" as const), fid: fc.constantFrom(...fids), args: fc.array(arg, { maxLength: 7 }) }),
    { arbitrary: fc.record({ kind: fc.constant("send" as const), d: descriptor, lend: fc.boolean() }), weight: 3 },
    fc.record({ kind: fc.constant("reclaim" as const) }),
    fc.record({ kind: fc.constant("checksum" as const) }),
  );

  it("never throws, stays within the VM's limits, and leaves nothing here or at the SPMC once the VM is destroyed", async () => {
    let shared = 0, refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        const { g, ram, spmc, mediator } = setup();
        g.a.smc(F.FFA_VERSION.smc32, 0x1_0001);
        g.a.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1);
        let last = 0n;
        /** Calls left waiting (FFA_MSG_WAIT, a response that waits for the next request): each on a vCPU of its own. */
        const waiting: Promise<bigint[]>[] = [];
        for (const s of steps) {
          let r: bigint[];
          if (s.kind === "send") {
            const d = encodeMemTransaction({ sender: ID.a!, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: s.d.receiver, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: page(s.d.at), pageCount: s.d.pages }] }, s.d.layout);
            if (s.d.flip !== null && s.d.flip < d.length) d[s.d.flip]! ^= 0x41;
            ram.a!.write(TX, d);
            r = g.a.smc(s.lend ? F.FFA_MEM_LEND.smc64 : F.FFA_MEM_SHARE.smc64, d.length, d.length, 0, 0);
            if (r[0] === SUCCESS) {
              last = ffaHandle(Number(r[2]!), Number(r[3]!));
              shared++;
            } else refused++;
          } else if (s.kind === "reclaim") r = g.a.smc(F.FFA_MEM_RECLAIM.smc32, Number(last & 0xffff_ffffn), Number(last >> 32n), 0);
          else if (s.kind === "checksum") r = g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc64, ffaEndpoints(ID.a!, SP1), 0, TEST_SP_CMD.CHECKSUM, last & 0xffff_ffffn, last >> 32n);
          else {
            const started = new Guest(mediator, "a").start(s.fid, ...s.args);
            if (started instanceof Promise) {
              waiting.push(started);
              continue;
            }
            r = started;
          }
          expect(r.length).toBeGreaterThanOrEqual(8);
          const c = mediator.counters("a");
          expect(c.pages).toBeLessThanOrEqual(DEFAULT_FFA_LIMITS.pages);
          expect(c.transactions).toBeLessThanOrEqual(DEFAULT_FFA_LIMITS.transactions);
          // The mediator and the SPMC agree on what the VM shares with partitions.
          const toSp = [...mediator.vm("a")!.lent.values()].filter((t) => t.toSp);
          expect(spmc.counters(ID.a!).shares).toBe(toSp.length);
        }
        mediator.destroy("a");
        expect(mediator.counters("a")).toEqual({ rxtx: 0, rxFull: 0, transactions: 0, fragmented: 0, pages: 0, retrieved: 0, messaging: 0 });
        expect(spmc.counters(ID.a!)).toEqual(SPMC_ZERO);
        expect(mediator.stuck).toEqual([]);
        // Nothing is left waiting for a VM that is gone.
        for (const r of await Promise.all(waiting)) expect(Guest.code(r)).toBe(FFA_RET.ABORTED);
      }),
      { numRuns: 150 },
    );
    // The generator reaches both sides: accepted and refused transactions.
    expect(shared).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(20);
  });
});
