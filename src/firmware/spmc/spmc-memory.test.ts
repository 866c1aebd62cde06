import { describe, expect, it } from "vitest";
import {
  FFA_MEM_ATTR,
  FFA_MEM_FLAG,
  FFA_MEM_PERM,
  FFA_MEM_TRANSACTION,
  FFA_RET,
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  ffaHandle,
  ffaHandleHi,
  ffaHandleLo,
} from "../../smccc/ffa/abi.js";
import { encodeMemTransaction } from "../../smccc/ffa/descriptors.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { PartitionContext } from "./partition.js";
import { TEST_SP_CMD } from "./partitions/test-sp.js";
import {
  HYP_HEAP,
  RAM_A,
  RAM_B,
  SP1,
  SP2,
  SP3,
  SP4,
  TX,
  VM_A,
  VM_B,
  VM_C,
  ZERO_COUNTERS,
  expectError,
  expectOk,
  pages,
  world,
} from "./spmc-fixture.js";

const W = (x: bigint) => Number(x & 0xffff_ffffn);

/** A world with VM A and VM B created and the hypervisor's buffers mapped. */
function ready(o: Parameters<typeof world>[0] = {}) {
  const w = world(o);
  w.map();
  w.create(VM_A);
  w.create(VM_B);
  return w;
}

/** Fills `count` pages from `pa` with a pattern and returns the sum of its bytes. */
function fill(w: ReturnType<typeof world>, pa: bigint, count: number, seed: number): bigint {
  const bytes = new Uint8Array(count * 4096).map((_, i) => (i * 7 + seed) & 0xff);
  w.mem.poke(pa, bytes);
  return BigInt(bytes.reduce((s, x) => s + x, 0));
}

const quiet = { ...ZERO_COUNTERS, known: true, partitions: 1 };

describe("FFA_MEM_SHARE / FFA_MEM_LEND relayed for a VM, checked by the test partition", () => {
  it.each([
    ["v1.2", undefined, F.FFA_MEM_SHARE.smc64],
    ["v1.1", FFA_VERSION_1_1, F.FFA_MEM_SHARE.smc64],
    ["v1.0", FFA_VERSION_1_0, F.FFA_MEM_SHARE.smc32],
    ["v1.2 MEM_LEND", undefined, F.FFA_MEM_LEND.smc64],
  ])("%s: SPMC-allocated handle, the partition sums it, reclaim leaves nothing", (_layout, version, fid) => {
    const w = ready(version === undefined ? {} : { version });
    const sum = fill(w, RAM_A, 3, 1) + fill(w, RAM_A + 0x5000n, 1, 9);
    const handle = w.share(w.tx(VM_A, [pages(RAM_A, 0, 3), pages(RAM_A, 5, 1)]), fid);
    expect(handle >> 63n).toBe(0n);
    expect(w.spmc.counters(VM_A)).toEqual({ ...quiet, shares: 1, pages: 4 });
    const r = w.direct(VM_A, SP1, [TEST_SP_CMD.CHECKSUM, ffaHandleLo(handle), ffaHandleHi(handle)]);
    expect(r.slice(3, 6)).toEqual([0n, sum, 4n]);
    expect(w.spmc.counters(VM_A).retrieved).toBe(0);
    expectOk(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 0));
    expect(w.spmc.counters(VM_A)).toEqual(quiet);
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 0), FFA_RET.INVALID_PARAMETERS);
  });

  it("a lend with the clear flag zeroes the pages before any partition sees them; reclaim may clear a lend", () => {
    const w = ready();
    fill(w, RAM_A, 2, 3);
    const handle = w.share(w.tx(VM_A, [pages(RAM_A, 0, 2)], [SP1], { flags: FFA_MEM_FLAG.CLEAR }), F.FFA_MEM_LEND.smc64);
    expect(w.mem.peek(RAM_A, 8192).every((b) => b === 0)).toBe(true);
    fill(w, RAM_A, 2, 5);
    expectOk(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 1));
    expect(w.mem.peek(RAM_A, 8192).every((b) => b === 0)).toBe(true);
  });

  it("a share cannot be cleared, neither when sent nor when reclaimed", () => {
    const w = ready();
    expectError(w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP1], { flags: FFA_MEM_FLAG.CLEAR }), w.layout)), FFA_RET.INVALID_PARAMETERS);
    const handle = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)]));
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 1), FFA_RET.INVALID_PARAMETERS);
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 4), FFA_RET.INVALID_PARAMETERS);
    expectOk(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 0));
  });

  it("several receivers: each partition retrieves for itself", () => {
    const w = ready();
    const handle = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP1, SP4]));
    expect(w.direct(VM_A, SP1, [TEST_SP_CMD.CHECKSUM, ffaHandleLo(handle), 0])[3]).toBe(0n);
    w.sp4.script = (ctx, sender) => {
      const r = ctx.retrieve(handle, { sender });
      return { ok: true, args: [r.ok ? BigInt(r.region.permissions) : 99n] };
    };
    expect(w.direct(VM_A, SP4, [0])[3]).toBe(BigInt(FFA_MEM_PERM.DATA_RW));
    expect(w.spmc.counters(VM_A).retrieved).toBe(1);
  });
});

describe("every kind of bad transaction gets its FFA_ERROR and leaves nothing behind", () => {
  type W = ReturnType<typeof ready>;
  const cases: [string, (w: W) => bigint[], number][] = [
    ["misaligned constituent", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [{ address: RAM_A + 0x10n, pageCount: 1 }]), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["overlapping constituents", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 2), pages(RAM_A, 1, 1)]), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["another VM's page", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1), pages(RAM_B, 0, 1)]), w.layout)), FFA_RET.DENIED],
    ["the hypervisor's page", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(HYP_HEAP, 0, 1)]), w.layout)), FFA_RET.DENIED],
    ["pages past the VM's RAM", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 63, 2)]), w.layout)), FFA_RET.DENIED],
    ["more pages than one transaction may hold", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 9)]), w.layout)), FFA_RET.NO_MEMORY],
    ["a descriptor longer than the SPMC holds", (w) => w.call(F.FFA_MEM_SHARE.smc64, 0x10_0000, 48, 0, 0), FFA_RET.NO_MEMORY],
    ["a sender that is not the VM of a created VM", (w) => w.send(encodeMemTransaction(w.tx(VM_C, [pages(RAM_A, 0, 1)]), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["the hypervisor as sender", (w) => w.send(encodeMemTransaction(w.tx(0, [pages(HYP_HEAP, 0, 1)]), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["a VM as receiver", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [VM_B]), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["no such partition", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [0x8009]), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["a partition that does not list the VM", (w) => w.send(encodeMemTransaction(w.tx(VM_B, [pages(RAM_B, 0, 1)], [SP2]), w.layout)), FFA_RET.DENIED],
    ["one good receiver and one not allowed", (w) => w.send(encodeMemTransaction(w.tx(VM_B, [pages(RAM_B, 0, 1)], [SP1, SP2]), w.layout)), FFA_RET.DENIED],
    ["device memory", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP1], { attributes: FFA_MEM_ATTR.TYPE_DEVICE }), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["a share without attributes", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP1], { attributes: 0 }), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["the NS bit from the sender", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP1], { attributes: 0x2f | FFA_MEM_ATTR.NS }), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["a non-zero handle", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP1], { handle: 5n }), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["flags [31:2] set", (w) => w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP1], { flags: 1 << 3 }), w.layout)), FFA_RET.INVALID_PARAMETERS],
    ["a descriptor in a dynamically allocated buffer", (w) => w.call(F.FFA_MEM_SHARE.smc64, 80, 80, RAM_A, 1), FFA_RET.INVALID_PARAMETERS],
    ["a fragment longer than the whole", (w) => w.call(F.FFA_MEM_SHARE.smc64, 48, 80, 0, 0), FFA_RET.INVALID_PARAMETERS],
    ["a fragment longer than the TX buffer", (w) => w.call(F.FFA_MEM_SHARE.smc64, 8192, 8192, 0, 0), FFA_RET.INVALID_PARAMETERS],
    ["an empty fragment", (w) => w.call(F.FFA_MEM_SHARE.smc64, 80, 0, 0, 0), FFA_RET.INVALID_PARAMETERS],
    ["a first fragment shorter than the header", (w) => w.call(F.FFA_MEM_SHARE.smc64, 80, 16, 0, 0), FFA_RET.INVALID_PARAMETERS],
  ];
  const perms: [string, number][] = [
    ["no data access", FFA_MEM_PERM.INSTR_NX],
    ["execute permission", FFA_MEM_PERM.DATA_RW | FFA_MEM_PERM.INSTR_X],
  ];
  for (const [what, permissions] of perms) {
    cases.push([
      what,
      (w) => w.send(encodeMemTransaction({ ...w.tx(VM_A, [pages(RAM_A, 0, 1)]), receivers: [{ receiver: SP1, permissions, flags: 0, impdef: [0n, 0n] }] }, w.layout)),
      FFA_RET.INVALID_PARAMETERS,
    ]);
  }
  cases.push([
    "the non-retrieval borrower flag",
    (w) => w.send(encodeMemTransaction({ ...w.tx(VM_A, [pages(RAM_A, 0, 1)]), receivers: [{ receiver: SP1, permissions: FFA_MEM_PERM.DATA_RW, flags: 1, impdef: [0n, 0n] }] }, w.layout)),
    FFA_RET.INVALID_PARAMETERS,
  ]);

  it.each(cases)("%s", (_what, act, code) => {
    const w = ready({ limits: { maxPagesPerShare: 8 } });
    expectError(act(w), code);
    for (const vm of [VM_A, VM_B]) expect(w.spmc.counters(vm)).toEqual(quiet);
    // And the same VM can share properly right after.
    w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)]));
  });

  it("without an RX/TX pair a share is INVALID_PARAMETERS", () => {
    const w = world();
    w.create(VM_A);
    expectError(w.call(F.FFA_MEM_SHARE.smc64, 80, 80, 0, 0), FFA_RET.INVALID_PARAMETERS);
  });

  it("no page twice: a page in an outstanding transaction is DENIED until reclaimed (share then lend too)", () => {
    const w = ready();
    const h = w.share(w.tx(VM_A, [pages(RAM_A, 0, 4)]));
    expectError(w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 3, 2)]), w.layout)), FFA_RET.DENIED);
    expectError(w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 2, 1)]), w.layout), F.FFA_MEM_LEND.smc64), FFA_RET.DENIED);
    expect(w.spmc.counters(VM_A).shares).toBe(1);
    expectOk(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(h), ffaHandleHi(h), 0));
    w.share(w.tx(VM_A, [pages(RAM_A, 3, 2)]));
  });

  it("at most maxSharesPerVm transactions and maxPagesPerVm pages per VM (NO_MEMORY); another VM is not affected", () => {
    const w = ready({ limits: { maxSharesPerVm: 3, maxPagesPerVm: 6 } });
    for (let i = 0; i < 3; i++) w.share(w.tx(VM_A, [pages(RAM_A, i, 1)]));
    expectError(w.send(encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 10, 1)]), w.layout)), FFA_RET.NO_MEMORY);
    w.share(w.tx(VM_B, [pages(RAM_B, 0, 5)]));
    expectError(w.send(encodeMemTransaction(w.tx(VM_B, [pages(RAM_B, 10, 2)]), w.layout)), FFA_RET.NO_MEMORY);
    expect(w.spmc.counters(VM_A)).toMatchObject({ shares: 3, pages: 3 });
    expect(w.spmc.counters(VM_B)).toMatchObject({ shares: 1, pages: 5 });
  });

  it("an unknown handle or MBZ flags on reclaim are INVALID_PARAMETERS", () => {
    const w = ready();
    const h = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)]));
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, 0x77, 0, 0), FFA_RET.INVALID_PARAMETERS);
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(h), ffaHandleHi(h), 0x8), FFA_RET.INVALID_PARAMETERS);
    expect(w.spmc.counters(VM_A).shares).toBe(1);
  });
});

describe("fragments (FFA_MEM_FRAG_TX / FRAG_RX, §11.3)", () => {
  /** A 4-range descriptor, split after its first range and then per range. */
  function fragmented(w: ReturnType<typeof ready>) {
    const bytes = encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1), pages(RAM_A, 2, 1), pages(RAM_A, 4, 2), pages(RAM_A, 8, 1)]), w.layout);
    const first = bytes.length - 3 * 16;
    return { bytes, first };
  }
  const frag = (w: ReturnType<typeof ready>, handle: bigint, part: Uint8Array, vm = VM_A) => {
    w.mem.poke(TX, part);
    return w.call(F.FFA_MEM_FRAG_TX.smc32, ffaHandleLo(handle), ffaHandleHi(handle), part.length, vm << 16);
  };

  it("FRAG_RX names the handle, the bytes received and the VM; the last fragment completes it with that handle", () => {
    const w = ready();
    const { bytes, first } = fragmented(w);
    w.mem.poke(TX, bytes.subarray(0, first));
    const r = w.call(F.FFA_MEM_SHARE.smc64, bytes.length, first, 0, 0);
    expect([r[0], W(r[3]!), W(r[4]!)]).toEqual([BigInt(F.FFA_MEM_FRAG_RX.smc32), first, VM_A << 16]);
    const handle = ffaHandle(W(r[1]!), W(r[2]!));
    expect(w.spmc.counters(VM_A)).toMatchObject({ shares: 0, fragments: 1 });
    const r2 = frag(w, handle, bytes.subarray(first, first + 16));
    expect([r2[0], W(r2[3]!)]).toEqual([BigInt(F.FFA_MEM_FRAG_RX.smc32), first + 16]);
    const done = frag(w, handle, bytes.subarray(first + 16));
    expectOk(done);
    expect(ffaHandle(W(done[2]!), W(done[3]!))).toBe(handle);
    expect(w.spmc.counters(VM_A)).toMatchObject({ shares: 1, fragments: 0, pages: 5 });
    expect(w.direct(VM_A, SP1, [TEST_SP_CMD.CHECKSUM, ffaHandleLo(handle), 0]).slice(3, 6)).toEqual([0n, 0n, 5n]);
  });

  it("out of order: FRAG_TX for no transaction, or for another VM's, is INVALID_PARAMETERS and leaves VM A's in progress", () => {
    const w = ready();
    const { bytes, first } = fragmented(w);
    expectError(frag(w, 42n, bytes.subarray(0, 16)), FFA_RET.INVALID_PARAMETERS);
    w.mem.poke(TX, bytes.subarray(0, first));
    const r = w.call(F.FFA_MEM_SHARE.smc64, bytes.length, first, 0, 0);
    const handle = ffaHandle(W(r[1]!), W(r[2]!));
    expectError(frag(w, handle, bytes.subarray(first), VM_B), FFA_RET.INVALID_PARAMETERS);
    expectError(w.call(F.FFA_MEM_FRAG_TX.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 16, (VM_A << 16) | 1), FFA_RET.INVALID_PARAMETERS);
    expect(w.spmc.counters(VM_A).fragments).toBe(1);
    expect(w.spmc.counters(VM_B)).toEqual(quiet);
    expectOk(frag(w, handle, bytes.subarray(first)));
  });

  it.each([
    ["a fragment past the total length", (b: Uint8Array, first: number) => new Uint8Array(b.length - first + 16)],
    ["a fragment that is not whole constituents", (b: Uint8Array, first: number) => b.subarray(first, first + 8)],
    ["an empty fragment", () => new Uint8Array(0)],
  ])("%s ends the transaction: nothing of it stays", (_what, part) => {
    const w = ready();
    const { bytes, first } = fragmented(w);
    w.mem.poke(TX, bytes.subarray(0, first));
    const r = w.call(F.FFA_MEM_SHARE.smc64, bytes.length, first, 0, 0);
    const handle = ffaHandle(W(r[1]!), W(r[2]!));
    expectError(frag(w, handle, part(bytes, first)), FFA_RET.INVALID_PARAMETERS);
    expect(w.spmc.counters(VM_A)).toEqual(quiet);
    expectError(frag(w, handle, bytes.subarray(first)), FFA_RET.INVALID_PARAMETERS);
  });

  it("a fragment longer than the TX buffer ends it too; a completed descriptor that is bad is refused whole", () => {
    const w = ready();
    const { bytes, first } = fragmented(w);
    w.mem.poke(TX, bytes.subarray(0, first));
    let r = w.call(F.FFA_MEM_SHARE.smc64, bytes.length, first, 0, 0);
    let handle = ffaHandle(W(r[1]!), W(r[2]!));
    expectError(w.call(F.FFA_MEM_FRAG_TX.smc32, ffaHandleLo(handle), ffaHandleHi(handle), 8192, VM_A << 16), FFA_RET.INVALID_PARAMETERS);
    expect(w.spmc.counters(VM_A).fragments).toBe(0);
    const bad = encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 0, 1), pages(RAM_B, 0, 1)]), w.layout);
    w.mem.poke(TX, bad.subarray(0, bad.length - 16));
    r = w.call(F.FFA_MEM_SHARE.smc64, bad.length, bad.length - 16, 0, 0);
    handle = ffaHandle(W(r[1]!), W(r[2]!));
    expectError(frag(w, handle, bad.subarray(bad.length - 16)), FFA_RET.DENIED);
    expect(w.spmc.counters(VM_A)).toEqual(quiet);
  });

  it("MEM_RECLAIM of a transaction in progress ends it", () => {
    const w = ready();
    const { bytes, first } = fragmented(w);
    w.mem.poke(TX, bytes.subarray(0, first));
    const r = w.call(F.FFA_MEM_SHARE.smc64, bytes.length, first, 0, 0);
    expectOk(w.call(F.FFA_MEM_RECLAIM.smc32, W(r[1]!), W(r[2]!), 0));
    expect(w.spmc.counters(VM_A)).toEqual(quiet);
  });
});

describe("per-VM isolation", () => {
  it("VM B cannot have the test partition read VM A's region, even though the partition is its receiver", () => {
    const w = ready();
    const h = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)]));
    const r = w.direct(VM_B, SP1, [TEST_SP_CMD.CHECKSUM, ffaHandleLo(h), ffaHandleHi(h)]);
    expect(Number(r[3]!) | 0).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(w.spmc.counters(VM_A)).toMatchObject({ shares: 1, retrieved: 0 });
    expect(w.mem.log.some((a) => a.op === "read" && a.owner === VM_A)).toBe(false);
  });
});

describe("retrieve and relinquish through the partition's context", () => {
  it("retrieval checks the lender, the receiver and the type; reads and writes stay in retrieved pages", () => {
    const w = ready();
    const h = w.share(w.tx(VM_A, [pages(RAM_A, 0, 2)], [SP4], { receivers: [{ receiver: SP4, permissions: FFA_MEM_PERM.DATA_RO, flags: 0, impdef: [0n, 0n] }] }));
    const hb = w.share(w.tx(VM_B, [pages(RAM_B, 0, 1)], [SP1]));
    const seen: unknown[] = [];
    w.sp4.script = (ctx) => {
      seen.push(ctx.read(RAM_A, 16));
      seen.push(ctx.retrieve(0x999n));
      seen.push(ctx.retrieve(h, { sender: VM_B }));
      seen.push(ctx.retrieve(h, { transaction: FFA_MEM_TRANSACTION.LEND }));
      seen.push(ctx.retrieve(hb, { sender: VM_B }));
      const r = ctx.retrieve(h, { sender: VM_A, transaction: FFA_MEM_TRANSACTION.SHARE });
      seen.push(r.ok && { sender: r.region.sender, ns: (r.region.attributes & FFA_MEM_ATTR.NS) !== 0, pages: r.region.totalPages });
      seen.push(ctx.read(RAM_A + 0x1ff0n, 16)?.length);
      seen.push(ctx.read(RAM_A + 0x1ff0n, 32));
      seen.push(ctx.read(RAM_B, 16));
      seen.push(ctx.write(RAM_A, new Uint8Array(4)));
      seen.push(ctx.relinquish(h));
      seen.push(ctx.relinquish(h));
      seen.push(ctx.read(RAM_A, 16));
      return { ok: true, args: [] };
    };
    w.direct(VM_A, SP4, [0]);
    expect(seen).toEqual([
      null,
      { ok: false, error: FFA_RET.INVALID_PARAMETERS },
      { ok: false, error: FFA_RET.INVALID_PARAMETERS },
      { ok: false, error: FFA_RET.INVALID_PARAMETERS },
      { ok: false, error: FFA_RET.DENIED },
      { sender: VM_A, ns: true, pages: 2 },
      16,
      null,
      null,
      false,
      0,
      FFA_RET.INVALID_PARAMETERS,
      null,
    ]);
  });

  it("reclaim is DENIED while a partition holds the region; nested retrievals need as many relinquishes", () => {
    const w = ready({ limits: { maxRetrievals: 2 } });
    const h = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP4]));
    const codes: unknown[] = [];
    w.sp4.script = (ctx, _s, args) => {
      if (args[0] === 1n) codes.push(ctx.retrieve(h).ok, ctx.retrieve(h).ok, ctx.retrieve(h));
      else codes.push(ctx.relinquish(h));
      return { ok: true, args: [] };
    };
    w.direct(VM_A, SP4, [1]);
    expect(codes).toEqual([true, true, { ok: false, error: FFA_RET.NO_MEMORY }]);
    expect(w.spmc.counters(VM_A).retrieved).toBe(2);
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(h), ffaHandleHi(h), 0), FFA_RET.DENIED);
    w.direct(VM_A, SP4, [2]);
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(h), ffaHandleHi(h), 0), FFA_RET.DENIED);
    w.direct(VM_A, SP4, [2]);
    expectOk(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(h), ffaHandleHi(h), 0));
  });

  it("view: in place for a read-write grant the partition holds, null for read-only grants and elsewhere", () => {
    const w = ready();
    const rw = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP4]));
    const ro = w.share(w.tx(VM_A, [pages(RAM_A, 1, 1)], [SP4], { receivers: [{ receiver: SP4, permissions: FFA_MEM_PERM.DATA_RO, flags: 0, impdef: [0n, 0n] }] }));
    const seen: unknown[] = [];
    w.sp4.script = (ctx) => {
      seen.push(ctx.view!(RAM_A, 4));
      ctx.retrieve(rw);
      ctx.retrieve(ro);
      const v = ctx.view!(RAM_A + 8n, 4);
      v?.set([9, 8, 7, 6]);
      seen.push(v?.length, ctx.view!(RAM_A + 0x1000n, 4), ctx.view!(RAM_A + 0xffen, 4));
      ctx.relinquish(rw);
      ctx.relinquish(ro);
      return { ok: true, args: [] };
    };
    w.direct(VM_A, SP4, [0]);
    expect(seen).toEqual([null, 4, null, null]);
    expect([...w.mem.peek(RAM_A + 8n, 4)]).toEqual([9, 8, 7, 6]);
  });

  it("a context kept after the call is dead: DENIED, null, false", () => {
    const w = ready();
    const h = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP4]));
    let kept: PartitionContext | undefined;
    w.sp4.script = (ctx) => {
      kept = ctx;
      // Held across the end of the call: only the context dies, not the retrieval.
      ctx.retrieve(h);
      return { ok: true, args: [] };
    };
    w.direct(VM_A, SP4, [0]);
    expect(kept!.retrieve(h)).toEqual({ ok: false, error: FFA_RET.DENIED });
    expect([kept!.relinquish(h), kept!.read(RAM_A, 4), kept!.write(RAM_A, new Uint8Array(1)), kept!.view!(RAM_A, 4), kept!.notificationSet(VM_A, 1n)]).toEqual([FFA_RET.DENIED, null, false, null, FFA_RET.DENIED]);
    expect(w.spmc.counters(VM_A).retrieved).toBe(1);
  });

  it("a partition cannot write a read-only grant, and can write a read-write one (through the owner's pages)", () => {
    const w = ready();
    const h = w.share(w.tx(VM_A, [pages(RAM_A, 1, 1)], [SP4]));
    w.sp4.script = (ctx) => {
      ctx.retrieve(h);
      const ok = ctx.write(RAM_A + 0x1000n, Uint8Array.of(1, 2, 3));
      ctx.relinquish(h);
      return { ok: true, args: [ok ? 1n : 0n] };
    };
    expect(w.direct(VM_A, SP4, [0])[3]).toBe(1n);
    expect([...w.mem.peek(RAM_A + 0x1000n, 3)]).toEqual([1, 2, 3]);
    expect(w.mem.log.filter((a) => a.op === "write").every((a) => a.owner === VM_A || a.owner === 0)).toBe(true);
  });
});

describe("VM_DESTROYED: the SPMC forgets the VM", () => {
  it("its transactions are reclaimed, its fragments end, its bitmap goes: counters all zero", () => {
    const w = ready();
    w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)]));
    w.share(w.tx(VM_A, [pages(RAM_A, 1, 2)], [SP1, SP4]), F.FFA_MEM_LEND.smc64);
    const bytes = encodeMemTransaction(w.tx(VM_A, [pages(RAM_A, 4, 1), pages(RAM_A, 6, 1)]), w.layout);
    w.mem.poke(TX, bytes.subarray(0, bytes.length - 16));
    expect(w.call(F.FFA_MEM_SHARE.smc64, bytes.length, bytes.length - 16, 0, 0)[0]).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    expectOk(w.call(F.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_A, 1));
    expectOk(w.call(F.FFA_NOTIFICATION_BIND.smc32, (SP1 << 16) | VM_A, 0, 1, 0));
    expect(w.spmc.counters(VM_A)).toMatchObject({ shares: 2, fragments: 1, pages: 3, bitmaps: 1, bindings: 1 });
    const b = w.spmc.counters(VM_B);
    w.destroy(VM_A);
    expect(w.spmc.counters(VM_A)).toEqual(ZERO_COUNTERS);
    expect(w.spmc.counters(VM_B)).toEqual(b);
    expectError(w.direct(VM_A, SP1, [TEST_SP_CMD.ECHO]), FFA_RET.INVALID_PARAMETERS);
    // A VM created again with the same ID starts with nothing: its pages are free to share.
    w.create(VM_A);
    w.share(w.tx(VM_A, [pages(RAM_A, 0, 3)]));
  });

  it("what a partition that was told still holds is released; what one that was not told holds stays until it relinquishes", () => {
    const w = ready();
    w.create(VM_A, SP4);
    const told = w.share(w.tx(VM_A, [pages(RAM_A, 0, 1)], [SP4]));
    w.sp4.script = (ctx) => ({ ok: true, args: [ctx.retrieve(told).ok ? 1n : 0n] });
    expect(w.direct(VM_A, SP4, [0])[3]).toBe(1n);
    // SP2 is never told of VMs: what it keeps, it keeps.
    const kept = w.share(w.tx(VM_A, [pages(RAM_A, 1, 1)], [SP2]));
    w.sp2.script = (ctx) => ({ ok: true, args: [ctx.retrieve(kept).ok ? 1n : 0n] });
    expect(w.direct(VM_A, SP2, [0])[3]).toBe(1n);
    w.destroy(VM_A, SP4);
    w.destroy(VM_A, SP1);
    expect(w.spmc.counters(VM_A)).toEqual({ ...ZERO_COUNTERS, shares: 1, pages: 1, retrieved: 1 });
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(told), ffaHandleHi(told), 0), FFA_RET.INVALID_PARAMETERS);
    expectError(w.call(F.FFA_MEM_RECLAIM.smc32, ffaHandleLo(kept), ffaHandleHi(kept), 0), FFA_RET.DENIED);
    void SP3;
  });
});
