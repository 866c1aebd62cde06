// FF-A memory transactions through the mediator: FFA_MEM_SHARE/LEND to partitions (translated and forwarded
// to the test SPMC, in fragments too), between peer VMs (retrieve, relinquish, reclaim in the mediator), and
// every kind of bad input with its exact FFA_ERROR and nothing left behind: no counter, no page, nothing at
// the SPMC.
import { describe, expect, it } from "vitest";
import { HypervisorHeap } from "../../hypervisor/heap.js";
import { ArrayGuestMemory } from "../../machine/scripted/memory.js";
import { FFA_HANDLE_ALLOCATOR_HYPERVISOR, FFA_MEM_ACCESS_FLAG, FFA_MEM_ATTR, FFA_MEM_ATTR_NORMAL_WB_IS, FFA_MEM_FLAG, FFA_MEM_PERM, FFA_RET, ffaHandle } from "../../smccc/ffa/abi.js";
import { decodeMemTransaction, encodeMemTransaction, encodeRelinquish, type FfaDescriptorLayout, type FfaMemAccess, type FfaMemRange, type FfaMemTransaction } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { FfaMediatorLimits } from "./limits.js";
import { Guest, ID, IPA, PA, RAM, rig, SP1, SP2, SP_OTHER } from "./testing.js";

const V1_0 = 0x1_0000, V1_1 = 0x1_0001;
const TX = IPA + 0x1_0000n, RX = IPA + 0x2_0000n;
const PAGE = 0x1000n;
/** Page i of the region the tests share from. */
const page = (i: number) => IPA + 0x4_0000n + BigInt(i) * PAGE;
const ZERO = { rxtx: 1, rxFull: 0, transactions: 0, fragmented: 0, pages: 0, retrieved: 0, messaging: 0 };
const SUCCESS = BigInt(F.FFA_SUCCESS.smc32);
const RW = FFA_MEM_PERM.DATA_RW, RO = FFA_MEM_PERM.DATA_RO;

function setup(opts: { versions?: Record<string, number>; limits?: Partial<FfaMediatorLimits> } = {}) {
  const r = rig({ heap: new HypervisorHeap(0x8_0000_0000n, 64), ram: (b, s) => new ArrayGuestMemory(b, s) }, opts.limits ? { limits: opts.limits } : {});
  expect(r.mediator.probe()).toBe(true);
  for (const [name, peers] of [["a", ["b"]], ["b", ["a"]], ["c", []]] as const) r.mediator.enable(r.vm(name, [...peers]));
  const g = { a: new Guest(r.mediator, "a"), b: new Guest(r.mediator, "b"), c: new Guest(r.mediator, "c") };
  for (const [name, guest] of Object.entries(g)) {
    guest.smc(F.FFA_VERSION.smc32, opts.versions?.[name] ?? V1_1);
    guest.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1);
  }
  const spmcBefore = r.spmc.counters();
  /** Nothing left of refused calls: the VM's counters as after mapping, the SPMC as before. */
  const nothingLeft = (vm = "a") => {
    expect(r.mediator.counters(vm)).toEqual(ZERO);
    expect(r.spmc.counters()).toEqual(spmcBefore);
  };
  return { ...r, g, nothingLeft };
}

function descriptor(over: Partial<FfaMemTransaction> & { ranges: FfaMemRange[] }, layout: FfaDescriptorLayout = "v1.1"): Uint8Array {
  const receivers: FfaMemAccess[] = [{ receiver: SP1, permissions: RW, flags: 0 }];
  return encodeMemTransaction({ sender: ID.a!, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers, ...over }, layout);
}

/** Writes a descriptor into the VM's TX buffer and sends it, whole (or its first `length` bytes). */
function send(g: Guest, mem: ArrayGuestMemory, bytes: Uint8Array, fid: number = F.FFA_MEM_SHARE.smc64, length = bytes.length): bigint[] {
  mem.write(TX, bytes.subarray(0, length));
  return g.smc(fid, bytes.length, length, 0, 0);
}

const handleOf = (r: bigint[]) => ffaHandle(Number(r[2]!), Number(r[3]!));

describe("sharing and lending with partitions", () => {
  it("forwards a share with the VM as sender and physical addresses; RECLAIM frees it here and at the SPMC", () => {
    const { g, memory, spmc, mediator, nothingLeft } = setup();
    const r = send(g.a, memory.a as ArrayGuestMemory, descriptor({ ranges: [{ address: page(0), pageCount: 2 }, { address: page(5), pageCount: 1 }] }));
    expect(r[0]).toBe(SUCCESS);
    const handle = handleOf(r);
    const t = spmc.transactions.get(handle)!;
    expect(t.descriptor).toMatchObject({ sender: ID.a, receivers: [{ receiver: SP1, permissions: RW }], ranges: [{ address: PA.a! + 0x4_0000n, pageCount: 2 }, { address: PA.a! + 0x4_5000n, pageCount: 1 }] });
    expect(mediator.counters("a")).toEqual({ ...ZERO, transactions: 1, pages: 3 });
    expect(g.a.smc(F.FFA_MEM_RECLAIM.smc32, Number(handle & 0xffff_ffffn), Number(handle >> 32n), 0)[0]).toBe(SUCCESS);
    nothingLeft();
  });

  it("lends to two partitions from a v1.0 VM (32-byte header), forwarded in the SPMC's layout", () => {
    const { g, memory, spmc } = setup({ versions: { b: V1_0 } });
    const receivers = [{ receiver: SP1, permissions: RW, flags: 0 }, { receiver: SP2, permissions: RO, flags: 0 }];
    const r = send(g.b, memory.b as ArrayGuestMemory, descriptor({ sender: ID.b!, attributes: 0, receivers, ranges: [{ address: page(1), pageCount: 4 }] }, "v1.0"), F.FFA_MEM_LEND.smc32);
    expect(r[0]).toBe(SUCCESS);
    expect(spmc.transactions.get(handleOf(r))!.descriptor).toMatchObject({ sender: ID.b, receivers: [{ receiver: SP1 }, { receiver: SP2 }], ranges: [{ address: PA.b! + 0x4_1000n, pageCount: 4 }] });
  });

  it("takes a descriptor in fragments: FRAG_RX with the SPMC's handle, then SUCCESS with the same handle", () => {
    const { g, memory, spmc, mediator } = setup();
    const ranges = Array.from({ length: 300 }, (_, i) => ({ address: page(2 * i), pageCount: 1 }));
    const bytes = descriptor({ ranges });
    expect(bytes.length).toBe(80 + 300 * 16);
    const first = send(g.a, memory.a as ArrayGuestMemory, bytes, F.FFA_MEM_SHARE.smc64, 4096);
    expect(first[0]).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    expect(first[3]).toBe(4096n);
    const handle = ffaHandle(Number(first[1]!), Number(first[2]!));
    expect(spmc.transactions.get(handle)!.complete).toBe(false);
    expect(mediator.counters("a")).toMatchObject({ fragmented: 1, pages: 251 });
    (memory.a as ArrayGuestMemory).write(TX, bytes.subarray(4096));
    const last = g.a.smc(F.FFA_MEM_FRAG_TX.smc32, Number(first[1]!), Number(first[2]!), bytes.length - 4096);
    expect(last[0]).toBe(SUCCESS);
    expect(handleOf(last)).toBe(handle);
    const d = spmc.transactions.get(handle)!.descriptor!;
    expect(d.ranges.length).toBe(300);
    expect(d.ranges[299]).toEqual({ address: PA.a! + 0x4_0000n + 598n * PAGE, pageCount: 1 });
    expect(mediator.counters("a")).toMatchObject({ fragmented: 0, transactions: 1, pages: 300 });
  });

  it("reads the TX buffer once: a descriptor rewritten after the read changes nothing (TOCTOU)", () => {
    const { g, memory, spmc } = setup();
    const mem = memory.a as ArrayGuestMemory;
    const hostile = descriptor({ receivers: [{ receiver: SP_OTHER, permissions: RW, flags: 0 }], ranges: [{ address: page(9), pageCount: 1 }] });
    let reads = 0;
    const read = mem.read.bind(mem);
    mem.read = (ipa, length) => {
      const out = read(ipa, length);
      if (ipa === TX) {
        reads++;
        mem.write(TX, hostile); // another vCPU, right after the mediator's copy
      }
      return out;
    };
    const r = send(g.a, mem, descriptor({ ranges: [{ address: page(3), pageCount: 1 }] }));
    expect(r[0]).toBe(SUCCESS);
    expect(reads).toBe(1);
    expect(spmc.transactions.get(handleOf(r))!.descriptor).toMatchObject({ receivers: [{ receiver: SP1 }], ranges: [{ address: PA.a! + 0x4_3000n, pageCount: 1 }] });
  });
});

describe("bad input gets the spec's error and leaves nothing behind", () => {
  const cases: [string, () => Uint8Array, number, { fid?: number; length?: number; w3?: bigint }?][] = [
    ["a misaligned constituent", () => descriptor({ ranges: [{ address: page(0) + 0x800n, pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["overlapping constituents", () => descriptor({ ranges: [{ address: page(0), pageCount: 2 }, { address: page(1), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["pages past the VM's RAM", () => descriptor({ ranges: [{ address: IPA + RAM - PAGE, pageCount: 2 }] }), FFA_RET.DENIED],
    ["pages below the VM's RAM (another VM's, secure memory)", () => descriptor({ ranges: [{ address: 0x0e00_0000n, pageCount: 1 }] }), FFA_RET.DENIED],
    ["the hypervisor's heap", () => descriptor({ ranges: [{ address: 0x8_0000_0000n, pageCount: 1 }] }), FFA_RET.DENIED],
    ["a forged sender", () => descriptor({ sender: ID.b!, ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["a partition the VM may not use", () => descriptor({ receivers: [{ receiver: SP_OTHER, permissions: RW, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["a VM that is not a peer", () => descriptor({ receivers: [{ receiver: ID.c!, permissions: RW, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["the hypervisor as receiver", () => descriptor({ receivers: [{ receiver: 0, permissions: RW, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["a partition and a peer together", () => descriptor({ receivers: [{ receiver: SP1, permissions: RW, flags: 0 }, { receiver: ID.b!, permissions: RW, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.NOT_SUPPORTED],
    ["the NS bit", () => descriptor({ attributes: FFA_MEM_ATTR_NORMAL_WB_IS | FFA_MEM_ATTR.NS, ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["device memory", () => descriptor({ attributes: FFA_MEM_ATTR.TYPE_DEVICE, ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["a share asked to be zeroed", () => descriptor({ flags: FFA_MEM_FLAG.CLEAR, ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["flags beyond [1:0]", () => descriptor({ flags: 1 << 4, ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["no data permission", () => descriptor({ receivers: [{ receiver: SP1, permissions: 0, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["an executable share", () => descriptor({ receivers: [{ receiver: SP1, permissions: RW | FFA_MEM_PERM.INSTR_X, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["the non-retrieval borrower flag", () => descriptor({ receivers: [{ receiver: SP1, permissions: RW, flags: FFA_MEM_ACCESS_FLAG.NON_RETRIEVAL_BORROWER }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["a handle", () => descriptor({ handle: 5n, ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["a receiver twice", () => descriptor({ receivers: [{ receiver: SP1, permissions: RW, flags: 0 }, { receiver: SP1, permissions: RW, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS],
    ["more receivers than the limit", () => descriptor({ receivers: [SP1, SP2, 0x8004, 0x8005, 0x8006].map((receiver) => ({ receiver, permissions: RW, flags: 0 })), ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.NO_MEMORY],
    ["more pages than the VM may share", () => descriptor({ ranges: [{ address: page(0), pageCount: 4097 }] }), FFA_RET.NO_MEMORY],
    ["a fragment longer than the TX buffer", () => descriptor({ ranges: Array.from({ length: 300 }, (_, i) => ({ address: page(i), pageCount: 1 })) }), FFA_RET.INVALID_PARAMETERS],
    ["a fragment longer than the total", () => descriptor({ ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS, { length: 200 }],
    ["an empty fragment", () => descriptor({ ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS, { length: 0 }],
    ["a first fragment cut inside a constituent", () => descriptor({ ranges: [{ address: page(0), pageCount: 1 }, { address: page(1), pageCount: 1 }] }), FFA_RET.INVALID_PARAMETERS, { length: 88 }],
    ["a descriptor outside the TX buffer", () => descriptor({ ranges: [{ address: page(0), pageCount: 1 }] }), FFA_RET.NOT_SUPPORTED, { w3: page(7) }],
  ];
  for (const [what, make, code, over] of cases) {
    it(`${what}: ${code}`, () => {
      const { g, memory, nothingLeft, spmc } = setup();
      const bytes = make();
      const mem = memory.a as ArrayGuestMemory;
      mem.write(TX, bytes.subarray(0, Math.min(bytes.length, 4096)));
      const length = over?.length ?? bytes.length;
      const total = over?.length !== undefined && over.length > bytes.length ? bytes.length - 8 : bytes.length;
      const calls = spmc.calls.length;
      expect(Guest.code(g.a.smc(over?.fid ?? F.FFA_MEM_SHARE.smc64, total, length, over?.w3 ?? 0n, 0))).toBe(code);
      nothingLeft();
      expect(spmc.calls.length).toBe(calls);
    });
  }

  it("a page sum that does not add up, and a total length the descriptor does not fill", () => {
    const { g, memory, nothingLeft } = setup();
    const bytes = descriptor({ ranges: [{ address: page(0), pageCount: 2 }] });
    new DataView(bytes.buffer).setUint32(64, 3, true); // composite total pages (v1.1: header 48 + one 16-byte access)
    expect(Guest.code(send(g.a, memory.a as ArrayGuestMemory, bytes))).toBe(FFA_RET.INVALID_PARAMETERS);
    const ok = descriptor({ ranges: [{ address: page(0), pageCount: 1 }] });
    (memory.a as ArrayGuestMemory).write(TX, ok);
    expect(Guest.code(g.a.smc(F.FFA_MEM_SHARE.smc64, ok.length + 16, ok.length, 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    nothingLeft();
  });

  it("a memory transaction before RXTX_MAP: DENIED", () => {
    const { g, mediator, spmc } = setup();
    g.a.smc(F.FFA_RXTX_UNMAP.smc32);
    expect(Guest.code(g.a.smc(F.FFA_MEM_SHARE.smc64, 96, 96, 0, 0))).toBe(FFA_RET.DENIED);
    expect(mediator.counters("a")).toEqual({ ...ZERO, rxtx: 0 });
    expect(spmc.counters()).toEqual({ transactions: 0, incomplete: 0 });
  });

  it("a page shared twice (the same or overlapping ranges): DENIED, the first transaction intact", () => {
    const { g, memory, mediator, spmc } = setup();
    const mem = memory.a as ArrayGuestMemory;
    expect(send(g.a, mem, descriptor({ ranges: [{ address: page(3), pageCount: 1 }] }))[0]).toBe(SUCCESS);
    expect(Guest.code(send(g.a, mem, descriptor({ ranges: [{ address: page(2), pageCount: 3 }] })))).toBe(FFA_RET.DENIED);
    expect(Guest.code(send(g.a, mem, descriptor({ receivers: [{ receiver: SP2, permissions: RO, flags: 0 }], ranges: [{ address: page(3), pageCount: 1 }] }), F.FFA_MEM_LEND.smc32))).toBe(FFA_RET.DENIED);
    expect(mediator.counters("a")).toEqual({ ...ZERO, transactions: 1, pages: 1 });
    expect(spmc.counters()).toEqual({ transactions: 1, incomplete: 0 });
  });

  it("the VM's own RX/TX buffers: DENIED; and RXTX_MAP of pages it has shared: DENIED", () => {
    const { g, memory, mediator, nothingLeft } = setup();
    const mem = memory.a as ArrayGuestMemory;
    for (const address of [TX, RX]) expect(Guest.code(send(g.a, mem, descriptor({ ranges: [{ address, pageCount: 1 }] })))).toBe(FFA_RET.DENIED);
    nothingLeft();
    expect(send(g.a, mem, descriptor({ ranges: [{ address: page(0), pageCount: 1 }] }))[0]).toBe(SUCCESS);
    g.a.smc(F.FFA_RXTX_UNMAP.smc32);
    expect(Guest.code(g.a.smc(F.FFA_RXTX_MAP.smc64, page(0), RX, 1))).toBe(FFA_RET.DENIED);
    expect(mediator.counters("a")).toMatchObject({ rxtx: 0, transactions: 1 });
  });

  it("the page budget is the whole transaction's, taken once with the first fragment", () => {
    const { g, memory, mediator } = setup({ limits: { pages: 300 } });
    const bytes = descriptor({ ranges: Array.from({ length: 300 }, (_, i) => ({ address: page(i), pageCount: 1 })) });
    const first = send(g.a, memory.a as ArrayGuestMemory, bytes, F.FFA_MEM_SHARE.smc64, 4096);
    (memory.a as ArrayGuestMemory).write(TX, bytes.subarray(4096));
    expect(g.a.smc(F.FFA_MEM_FRAG_TX.smc32, Number(first[1]!), Number(first[2]!), bytes.length - 4096)[0]).toBe(SUCCESS);
    expect(mediator.counters("a").pages).toBe(300);
    expect(Guest.code(send(g.a, memory.a as ArrayGuestMemory, descriptor({ ranges: [{ address: page(400), pageCount: 1 }] })))).toBe(FFA_RET.NO_MEMORY);
  });

  it("more transactions than the limit: NO_MEMORY", () => {
    const { g, memory, mediator } = setup({ limits: { transactions: 2 } });
    const mem = memory.a as ArrayGuestMemory;
    for (let i = 0; i < 2; i++) expect(send(g.a, mem, descriptor({ ranges: [{ address: page(i), pageCount: 1 }] }))[0]).toBe(SUCCESS);
    expect(Guest.code(send(g.a, mem, descriptor({ ranges: [{ address: page(5), pageCount: 1 }] })))).toBe(FFA_RET.NO_MEMORY);
    expect(mediator.counters("a")).toMatchObject({ transactions: 2, pages: 2 });
  });
});

describe("fragments out of order free the partial transaction", () => {
  const ranges = Array.from({ length: 300 }, (_, i) => ({ address: page(i), pageCount: 1 }));
  function started() {
    const s = setup();
    const bytes = descriptor({ ranges });
    const first = send(s.g.a, s.memory.a as ArrayGuestMemory, bytes, F.FFA_MEM_SHARE.smc64, 4096);
    expect(first[0]).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    return { ...s, bytes, lo: Number(first[1]!), hi: Number(first[2]!) };
  }
  const rest = 300 * 16 + 80 - 4096;

  it("another handle", () => {
    const { g, lo, hi, nothingLeft } = started();
    expect(Guest.code(g.a.smc(F.FFA_MEM_FRAG_TX.smc32, lo + 1, hi, rest))).toBe(FFA_RET.INVALID_PARAMETERS);
    nothingLeft();
  });
  it("a fragment longer than what is left, or not whole constituents", () => {
    for (const length of [rest + 16, rest - 8]) {
      const { g, lo, hi, nothingLeft } = started();
      expect(Guest.code(g.a.smc(F.FFA_MEM_FRAG_TX.smc32, lo, hi, length))).toBe(FFA_RET.INVALID_PARAMETERS);
      nothingLeft();
    }
  });
  it("FRAG_TX with no transaction in progress, and a sender ID from a VM", () => {
    const { g, lo, hi, nothingLeft } = started();
    expect(Guest.code(g.a.smc(F.FFA_MEM_FRAG_TX.smc32, lo, hi, rest, ID.a! << 16))).toBe(FFA_RET.INVALID_PARAMETERS);
    nothingLeft();
    expect(Guest.code(g.a.smc(F.FFA_MEM_FRAG_TX.smc32, lo, hi, rest))).toBe(FFA_RET.INVALID_PARAMETERS);
  });
  it("a later fragment with a foreign page or a page already in the first fragment", () => {
    for (const bad of [IPA + RAM, page(0)]) {
      const { g, lo, hi, bytes, memory, nothingLeft } = started();
      const next = bytes.slice(4096);
      new DataView(next.buffer).setBigUint64(16, bad, true);
      (memory.a as ArrayGuestMemory).write(TX, next);
      expect(Guest.code(g.a.smc(F.FFA_MEM_FRAG_TX.smc32, lo, hi, rest))).toBe(FFA_RET.DENIED);
      nothingLeft();
    }
  });
  it("a new transaction while one's fragments are arriving is BUSY and keeps it; RXTX_UNMAP drops it", () => {
    const { g, memory, mediator, spmc } = started();
    expect(Guest.code(send(g.a, memory.a as ArrayGuestMemory, descriptor({ ranges: [{ address: page(400), pageCount: 1 }] })))).toBe(FFA_RET.BUSY);
    expect(mediator.counters("a")).toMatchObject({ fragmented: 1, pages: 251 });
    g.a.smc(F.FFA_RXTX_UNMAP.smc32);
    expect(mediator.counters("a")).toEqual({ ...ZERO, rxtx: 0 });
    expect(spmc.counters()).toEqual({ transactions: 0, incomplete: 0 });
  });
});

describe("FFA_MEM_RECLAIM", () => {
  it("only the lender's own handles; DENIED while a partition holds the region; flags [31:2] MBZ", () => {
    const { g, memory, spmc, mediator } = setup();
    const r = send(g.a, memory.a as ArrayGuestMemory, descriptor({ ranges: [{ address: page(0), pageCount: 1 }] }));
    const lo = Number(r[2]!), hi = Number(r[3]!);
    expect(Guest.code(g.b.smc(F.FFA_MEM_RECLAIM.smc32, lo, hi, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.a.smc(F.FFA_MEM_RECLAIM.smc32, lo, hi, 4))).toBe(FFA_RET.INVALID_PARAMETERS);
    spmc.transactions.get(handleOf(r))!.borrowed = true;
    expect(Guest.code(g.a.smc(F.FFA_MEM_RECLAIM.smc32, lo, hi, 0))).toBe(FFA_RET.DENIED);
    expect(mediator.counters("a")).toMatchObject({ transactions: 1, pages: 1 });
    spmc.transactions.get(handleOf(r))!.borrowed = false;
    expect(g.a.smc(F.FFA_MEM_RECLAIM.smc32, lo, hi, 0)[0]).toBe(SUCCESS);
  });
});

describe("destroy and reset reclaim everything (Xen's order: VM_DESTROYED first)", () => {
  it("reclaims what partitions gave back, keeps and reports what one still holds, and retries it later", () => {
    const { g, memory, spmc, mediator, vm, log } = setup();
    const mem = memory.a as ArrayGuestMemory;
    const free = send(g.a, mem, descriptor({ ranges: [{ address: page(0), pageCount: 1 }] }));
    const held = send(g.a, mem, descriptor({ receivers: [{ receiver: SP2, permissions: RW, flags: 0 }], ranges: [{ address: page(1), pageCount: 1 }] }));
    spmc.transactions.get(handleOf(held))!.borrowed = true;
    const from = spmc.calls.length;
    mediator.destroy("a");
    const calls = spmc.calls.slice(from);
    expect(calls.indexOf(F.FFA_MSG_SEND_DIRECT_REQ.smc32)).toBeLessThan(calls.indexOf(F.FFA_MEM_RECLAIM.smc32));
    expect(spmc.transactions.has(handleOf(free))).toBe(false);
    expect(mediator.counters("a")).toEqual({ ...ZERO, rxtx: 0 });
    expect(mediator.stuck.map((s) => s.handle)).toEqual([handleOf(held)]);
    expect(log.some((l) => l.includes("still holds"))).toBe(true);
    // The VM comes back: the page a partition holds is still not its to share.
    mediator.enable(vm("a", ["b"]));
    g.a.smc(F.FFA_VERSION.smc32, V1_1);
    g.a.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1);
    expect(Guest.code(send(g.a, mem, descriptor({ ranges: [{ address: page(1), pageCount: 1 }] })))).toBe(FFA_RET.DENIED);
    spmc.transactions.get(handleOf(held))!.borrowed = false;
    expect(mediator.reset(vm("a", ["b"]))).toEqual({ ok: true });
    expect(mediator.stuck).toEqual([]);
    expect(spmc.counters()).toEqual({ transactions: 0, incomplete: 0 });
    expect(mediator.counters("a")).toEqual({ ...ZERO, rxtx: 0 });
  });

  it("reset in the middle of fragments aborts them at the SPMC", () => {
    const { g, memory, spmc, mediator, vm } = setup();
    send(g.a, memory.a as ArrayGuestMemory, descriptor({ ranges: Array.from({ length: 300 }, (_, i) => ({ address: page(i), pageCount: 1 })) }), F.FFA_MEM_SHARE.smc64, 4096);
    mediator.reset(vm("a", ["b"]));
    expect(mediator.counters("a")).toEqual({ ...ZERO, rxtx: 0 });
    expect(spmc.counters()).toEqual({ transactions: 0, incomplete: 0 });
  });
});

describe("between peer VMs (the mediator is the relayer)", () => {
  const retrieveRequest = (handle: bigint, over: Partial<FfaMemTransaction> = {}) =>
    encodeMemTransaction({ sender: ID.a!, attributes: 0, flags: 0, handle, tag: 0n, receivers: [{ receiver: ID.b!, permissions: RO, flags: 0 }], ranges: [], ...over }, "v1.1");
  function shared(perm = RO, func: number = F.FFA_MEM_SHARE.smc64, flags = 0) {
    const s = setup();
    const calls = s.spmc.calls.length;
    const r = send(s.g.a, s.memory.a as ArrayGuestMemory, descriptor({ flags, receivers: [{ receiver: ID.b!, permissions: perm, flags: 0 }], ranges: [{ address: page(0), pageCount: 2 }, { address: page(2), pageCount: 1 }] }), func);
    expect(r[0]).toBe(SUCCESS);
    expect(s.spmc.calls.length).toBe(calls);
    return { ...s, handle: handleOf(r) };
  }
  const retrieve = (g: Guest, mem: ArrayGuestMemory, bytes: Uint8Array) => {
    mem.write(TX, bytes);
    return g.smc(F.FFA_MEM_RETRIEVE_REQ.smc64, bytes.length, bytes.length, 0, 0);
  };
  const relinquish = (g: Guest, mem: ArrayGuestMemory, handle: bigint, endpoint = ID.b!) => {
    mem.write(TX, encodeRelinquish({ handle, flags: 0, endpoints: [endpoint] }));
    return g.smc(F.FFA_MEM_RELINQUISH.smc32);
  };

  it("share, retrieve (the answer in the borrower's RX), relinquish, reclaim; no SPMC involved", () => {
    const { g, memory, mediator, handle } = shared();
    expect(handle & FFA_HANDLE_ALLOCATOR_HYPERVISOR).toBe(FFA_HANDLE_ALLOCATOR_HYPERVISOR);
    const b = memory.b as ArrayGuestMemory;
    const r = retrieve(g.b, b, retrieveRequest(handle));
    expect(r[0]).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
    const answer = decodeMemTransaction(b.read(RX, Number(r[1]!))!, "v1.1", { composite: "required", allowNs: true });
    expect(answer).toMatchObject({ ok: true, value: { sender: ID.a, handle, receivers: [{ receiver: ID.b, permissions: RO }], ranges: [{ address: PA.a! + 0x4_0000n, pageCount: 3 }] } });
    expect(mediator.counters("b")).toMatchObject({ retrieved: 1, rxFull: 1 });
    expect(Guest.code(g.a.smc(F.FFA_MEM_RECLAIM.smc32, Number(handle & 0xffff_ffffn), Number(handle >> 32n), 0))).toBe(FFA_RET.DENIED);
    expect(Guest.code(relinquish(g.b, b, handle, ID.c!))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(relinquish(g.b, b, handle)[0]).toBe(SUCCESS);
    expect(g.a.smc(F.FFA_MEM_RECLAIM.smc32, Number(handle & 0xffff_ffffn), Number(handle >> 32n), 0)[0]).toBe(SUCCESS);
    g.b.smc(F.FFA_RX_RELEASE.smc32);
    expect(mediator.counters("a")).toEqual(ZERO);
    expect(mediator.counters("b")).toEqual(ZERO);
  });

  it("refuses a retrieve by a VM the lender did not name, for more than it gave, twice, with another tag or into a full RX", () => {
    const { g, memory, mediator, handle } = shared();
    const b = memory.b as ArrayGuestMemory, c = memory.c as ArrayGuestMemory;
    expect(Guest.code(retrieve(g.c, c, retrieveRequest(handle, { receivers: [{ receiver: ID.c!, permissions: RO, flags: 0 }] })))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(retrieve(g.b, b, retrieveRequest(handle, { receivers: [{ receiver: ID.b!, permissions: RW, flags: 0 }] })))).toBe(FFA_RET.DENIED);
    expect(Guest.code(retrieve(g.b, b, retrieveRequest(handle, { tag: 9n })))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(retrieve(g.b, b, retrieveRequest(handle + 1n)))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(retrieve(g.b, b, retrieveRequest(handle, { flags: FFA_MEM_FLAG.TRANSACTION_TYPE_MASK & (2 << 3) })))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(mediator.counters("b")).toEqual(ZERO);
    g.b.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(Guest.code(retrieve(g.b, b, retrieveRequest(handle)))).toBe(FFA_RET.BUSY);
    g.b.smc(F.FFA_RX_RELEASE.smc32);
    expect(retrieve(g.b, b, retrieveRequest(handle))[0]).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
    g.b.smc(F.FFA_RX_RELEASE.smc32);
    expect(Guest.code(retrieve(g.b, b, retrieveRequest(handle)))).toBe(FFA_RET.DENIED);
  });

  it("a v1.1 borrower's retrieve response has the NS bit (the memory is non-secure)", () => {
    const { g, memory, handle } = shared();
    const b = memory.b as ArrayGuestMemory;
    const r = retrieve(g.b, b, retrieveRequest(handle));
    const answer = decodeMemTransaction(b.read(RX, Number(r[1]!))!, "v1.1", { composite: "required", allowNs: true });
    expect(answer.ok && answer.value.attributes).toBe(FFA_MEM_ATTR_NORMAL_WB_IS | FFA_MEM_ATTR.NS);
  });

  it("a v1.0 borrower retrieves with a v1.0 request and gets a v1.0 answer (32-byte header, no NS bit)", () => {
    const s = setup({ versions: { b: V1_0 } });
    const r = send(s.g.a, s.memory.a as ArrayGuestMemory, descriptor({ receivers: [{ receiver: ID.b!, permissions: RO, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }));
    const b = s.memory.b as ArrayGuestMemory;
    const request = encodeMemTransaction({ sender: ID.a!, attributes: 0, flags: 0, handle: handleOf(r), tag: 0n, receivers: [{ receiver: ID.b!, permissions: RO, flags: 0 }], ranges: [] }, "v1.0");
    const got = retrieve(s.g.b, b, request);
    expect(got[0]).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
    const answer = decodeMemTransaction(b.read(RX, Number(got[1]!))!, "v1.0", { composite: "required" });
    expect(answer).toMatchObject({ ok: true, value: { sender: ID.a, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, ranges: [{ address: PA.a! + 0x4_0000n, pageCount: 1 }] } });
  });

  it("a lend asked to be zeroed is zeroed before the borrower gets it", () => {
    const s = setup();
    const a = s.memory.a as ArrayGuestMemory;
    a.write(page(0), new Uint8Array([1, 2, 3, 4]));
    const r = send(s.g.a, a, descriptor({ attributes: 0, flags: FFA_MEM_FLAG.CLEAR, receivers: [{ receiver: ID.b!, permissions: RW, flags: 0 }], ranges: [{ address: page(0), pageCount: 1 }] }), F.FFA_MEM_LEND.smc64);
    expect(r[0]).toBe(SUCCESS);
    expect([...a.read(page(0), 4)!]).toEqual([1, 2, 3, 4]);
    retrieve(s.g.b, s.memory.b as ArrayGuestMemory, retrieveRequest(handleOf(r), { receivers: [{ receiver: ID.b!, permissions: RW, flags: 0 }] }));
    expect([...a.read(page(0), 4)!]).toEqual([0, 0, 0, 0]);
  });

  it("destroying the borrower gives the memory back; destroying the lender takes it from the borrower", () => {
    const first = shared();
    retrieve(first.g.b, first.memory.b as ArrayGuestMemory, retrieveRequest(first.handle));
    first.mediator.destroy("b");
    expect(first.g.a.smc(F.FFA_MEM_RECLAIM.smc32, Number(first.handle & 0xffff_ffffn), Number(first.handle >> 32n), 0)[0]).toBe(SUCCESS);
    const second = shared();
    retrieve(second.g.b, second.memory.b as ArrayGuestMemory, retrieveRequest(second.handle));
    second.mediator.destroy("a");
    expect(second.mediator.counters("b")).toMatchObject({ retrieved: 0 });
    expect(Guest.code(relinquish(second.g.b, second.memory.b as ArrayGuestMemory, second.handle))).toBe(FFA_RET.INVALID_PARAMETERS);
  });

  it("takes a peer transaction in fragments, with the hypervisor's handle throughout", () => {
    const { g, memory, spmc } = setup();
    const bytes = descriptor({ receivers: [{ receiver: ID.b!, permissions: RW, flags: 0 }], ranges: Array.from({ length: 300 }, (_, i) => ({ address: page(i), pageCount: 1 })) });
    const first = send(g.a, memory.a as ArrayGuestMemory, bytes, F.FFA_MEM_SHARE.smc64, 4096);
    expect(first[0]).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    (memory.a as ArrayGuestMemory).write(TX, bytes.subarray(4096));
    const last = g.a.smc(F.FFA_MEM_FRAG_TX.smc32, Number(first[1]!), Number(first[2]!), bytes.length - 4096);
    expect(handleOf(last)).toBe(ffaHandle(Number(first[1]!), Number(first[2]!)));
    expect(spmc.counters()).toEqual({ transactions: 0, incomplete: 0 });
    const r = retrieve(g.b, memory.b as ArrayGuestMemory, retrieveRequest(handleOf(last), { receivers: [{ receiver: ID.b!, permissions: RW, flags: 0 }] }));
    // Contiguous constituents are one physical range for the borrower.
    const answer = decodeMemTransaction((memory.b as ArrayGuestMemory).read(RX, Number(r[1]!))!, "v1.1", { composite: "required", allowNs: true });
    expect(answer.ok && answer.value.ranges).toEqual([{ address: PA.a! + 0x4_0000n, pageCount: 300 }]);
  });
});
