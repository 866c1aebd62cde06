// The FF-A mediator's registers-only ABIs and lifecycle, against the test SPMC (testing.ts): version
// negotiation, FFA_FEATURES, IDs, RX/TX buffers, partition discovery, direct requests, notifications,
// enable/destroy/reset. Exact FFA_ERROR codes; refused calls leave nothing behind.
import { describe, expect, it } from "vitest";
import { HypervisorHeap } from "../../hypervisor/heap.js";
import { ArrayGuestMemory } from "../../machine/scripted/memory.js";
import { FFA_RET } from "../../smccc/ffa/abi.js";
import { decodePartitionInfo, ffaUuidRegs, ffaUuidWords } from "../../smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { FFA_MEDIATOR_VERSION } from "./mediator.js";
import { Guest, ID, IPA, RAM, rig, SP1, SP1_UUID, SP2, SP_OTHER, SP_OTHER_UUID } from "./testing.js";

const V1_0 = 0x1_0000, V1_1 = 0x1_0001, V1_2 = 0x1_0002;
const TX = IPA + 0x1_0000n, RX = IPA + 0x2_0000n;
const ZERO = { rxtx: 0, rxFull: 0, transactions: 0, fragmented: 0, pages: 0, retrieved: 0, messaging: 0 };
const SUCCESS = BigInt(F.FFA_SUCCESS.smc32);

function setup(opts: { versions?: Record<string, number>; map?: boolean } = {}) {
  const r = rig({ heap: new HypervisorHeap(0x8_0000_0000n, 64), ram: (b, s) => new ArrayGuestMemory(b, s) });
  expect(r.mediator.probe()).toBe(true);
  for (const [name, peers] of [["a", ["b"]], ["b", ["a"]], ["c", []]] as const) expect(r.mediator.enable(r.vm(name, [...peers]))).toEqual({ ok: true });
  const g = { a: new Guest(r.mediator, "a"), b: new Guest(r.mediator, "b"), c: new Guest(r.mediator, "c") };
  for (const [name, guest] of Object.entries(g)) {
    const v = opts.versions?.[name] ?? V1_1;
    guest.smc(F.FFA_VERSION.smc32, v);
    if (opts.map !== false) expect(guest.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1)[0]).toBe(SUCCESS);
  }
  return { ...r, g };
}

describe("FFA_VERSION (DEN0077 v1.2 §13.2.1)", () => {
  it("answers the mediator's version to every 1.x and remembers what the VM asked; its first other call fixes it", () => {
    const { g, mediator } = setup({ map: false });
    for (const v of [V1_0, V1_1, V1_2, 0x1_0007]) expect(g.a.smc(F.FFA_VERSION.smc32, v)[0]).toBe(BigInt(FFA_MEDIATOR_VERSION));
    expect(mediator.vm("a")!.version).toBe(V1_2); // 1.7 is clamped to ours
    g.a.smc(F.FFA_VERSION.smc32, V1_0);
    g.a.smc(F.FFA_ID_GET.smc32);
    // Fixed: the same version answers as before, another is NOT_SUPPORTED and changes nothing.
    expect(g.a.smc(F.FFA_VERSION.smc32, V1_0)[0]).toBe(BigInt(FFA_MEDIATOR_VERSION));
    expect(BigInt.asIntN(32, g.a.smc(F.FFA_VERSION.smc32, V1_2)[0]!)).toBe(-1n);
    expect(mediator.vm("a")!.version).toBe(V1_0);
  });

  it("answers NOT_SUPPORTED in w0 itself for another major version or bit 31, -1 over all 64 bits of the result", () => {
    const { g, mediator } = setup({ map: false });
    for (const v of [0x2_0000, 0x8001_0000, 0]) {
      const r = g.a.smc(F.FFA_VERSION.smc32, v);
      expect(BigInt.asIntN(32, r[0]!)).toBe(-1n);
    }
    // The mediator's own result words are -1 in both halves (the router then applies SMC32's rules).
    expect(mediator.vm("a")!.version).toBe(V1_1);
  });

  it("refuses every other call before FFA_VERSION with NOT_SUPPORTED", () => {
    const r = rig({ heap: new HypervisorHeap(0x8_0000_0000n, 64), ram: (b, s) => new ArrayGuestMemory(b, s) });
    r.mediator.probe();
    r.mediator.enable(r.vm("a"));
    const a = new Guest(r.mediator, "a");
    for (const fid of [F.FFA_ID_GET.smc32, F.FFA_FEATURES.smc32, F.FFA_RXTX_MAP.smc64, F.FFA_MSG_SEND_DIRECT_REQ.smc32, F.FFA_MEM_SHARE.smc64, F.FFA_PARTITION_INFO_GET.smc32]) expect(Guest.code(a.smc(fid, 0))).toBe(FFA_RET.NOT_SUPPORTED);
    expect(r.mediator.vm("a")!.locked).toBe(false);
  });

  it("gives a VM without FF-A -1, as any call it may not make", () => {
    const { mediator } = setup();
    expect(new Guest(mediator, "d").smc(F.FFA_VERSION.smc32, V1_1)[0]).toBe(0xffff_ffffn);
  });
});

describe("FFA_FEATURES (§13.3) reports exactly what is offered", () => {
  it("answers SUCCESS for the ABIs a VM may call and NOT_SUPPORTED for the hypervisor's and the missing ones", () => {
    const { g } = setup({ versions: { a: V1_1, b: V1_2, c: V1_0 } });
    const feat = (guest: Guest, fid: number) => guest.smc(F.FFA_FEATURES.smc32, fid);
    for (const fid of [F.FFA_RXTX_MAP.smc64, F.FFA_MEM_SHARE.smc64, F.FFA_MEM_LEND.smc32, F.FFA_MEM_FRAG_TX.smc32, F.FFA_MEM_RECLAIM.smc32, F.FFA_PARTITION_INFO_GET.smc32, F.FFA_MSG_SEND_DIRECT_REQ.smc64, F.FFA_SPM_ID_GET.smc32, F.FFA_NOTIFICATION_BIND.smc32]) {
      expect(feat(g.a, fid)[0]).toBe(SUCCESS);
    }
    for (const fid of [F.FFA_RX_ACQUIRE.smc32, F.FFA_NOTIFICATION_BITMAP_CREATE.smc32, F.FFA_NOTIFICATION_BITMAP_DESTROY.smc32, F.FFA_MEM_DONATE.smc32, F.FFA_MSG_SEND.smc32, F.FFA_MSG_POLL.smc32, F.FFA_MSG_SEND_DIRECT_REQ2.smc64, F.FFA_PARTITION_INFO_GET_REGS.smc64, 0x8400_00ff]) {
      expect(Guest.code(feat(g.a, fid))).toBe(FFA_RET.NOT_SUPPORTED);
    }
    // Per version: SPM_ID_GET and notifications from v1.1, DIRECT_REQ2 and the RX/TX maximum from v1.2.
    expect(Guest.code(feat(g.c, F.FFA_SPM_ID_GET.smc32))).toBe(FFA_RET.NOT_SUPPORTED);
    expect(Guest.code(feat(g.c, F.FFA_NOTIFICATION_GET.smc32))).toBe(FFA_RET.NOT_SUPPORTED);
    expect(feat(g.b, F.FFA_MSG_SEND_DIRECT_REQ2.smc64)[0]).toBe(SUCCESS);
    expect(feat(g.b, F.FFA_RXTX_MAP.smc32)[2]).toBe(4n << 16n);
    expect(feat(g.a, F.FFA_RXTX_MAP.smc32)[2]).toBe(0n);
    // Feature IDs (bit 31 clear): no interrupts to give.
    expect(Guest.code(feat(g.a, 1))).toBe(FFA_RET.NOT_SUPPORTED);
    // Results a VM is given are reported (the FF-A ACS's mandatory list; RETRIEVE_RESP with RETRIEVE_REQ).
    for (const fid of [F.FFA_ERROR.smc32, F.FFA_INTERRUPT.smc32, F.FFA_SUCCESS.smc32, F.FFA_MEM_RETRIEVE_RESP.smc32]) expect(feat(g.a, fid).slice(0, 8)).toEqual([SUCCESS, 0n, 0n, 0n, 0n, 0n, 0n, 0n]);
  });

  it("RETRIEVE_REQ reports the NS bit (w2 bit 1) to v1.1+ VMs, whatever they pass", () => {
    const { g } = setup({ versions: { c: V1_0 } });
    expect(g.a.smc(F.FFA_FEATURES.smc32, F.FFA_MEM_RETRIEVE_REQ.smc64)[2]).toBe(2n);
    expect(g.a.smc(F.FFA_FEATURES.smc32, F.FFA_MEM_RETRIEVE_REQ.smc32, 2)[2]).toBe(2n);
    expect(g.c.smc(F.FFA_FEATURES.smc32, F.FFA_MEM_RETRIEVE_REQ.smc32)[2]).toBe(0n);
  });

  it("FFA_ERROR's status is a 32-bit value: x2's upper half stays zero for SMC64 calls", () => {
    const { g } = setup();
    const r = g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc64, (ID.b! << 16) | SP1);
    expect(r.slice(0, 3)).toEqual([BigInt(F.FFA_ERROR.smc32), 0n, 0xffff_fffen]);
  });

  it("agrees with dispatch: every FF-A function FEATURES calls unsupported is FFA_ERROR(NOT_SUPPORTED) when called", () => {
    for (const version of [V1_0, V1_1, V1_2]) {
      const { g } = setup({ versions: { a: version } });
      for (const ids of Object.values(F)) {
        for (const fid of Object.values(ids) as number[]) {
          if (fid === F.FFA_VERSION.smc32 || fid === F.FFA_FEATURES.smc32) continue;
          if (Guest.code(g.a.smc(F.FFA_FEATURES.smc32, fid)) !== FFA_RET.NOT_SUPPORTED) continue;
          expect(Guest.code(g.a.smc(fid, 0, 0, 0, 0)), `0x${fid.toString(16)} at 0x${version.toString(16)}`).toBe(FFA_RET.NOT_SUPPORTED);
        }
      }
    }
  });
});

describe("IDs", () => {
  it("gives a VM its config ID (FFA_ID_GET) and the SPMC's (FFA_SPM_ID_GET)", () => {
    const { g } = setup();
    expect(g.b.smc(F.FFA_ID_GET.smc32).slice(0, 3)).toEqual([SUCCESS, 0n, 2n]);
    expect(g.a.smc(F.FFA_SPM_ID_GET.smc32)[2]).toBe(0x8000n);
  });
});

describe("RX/TX buffers (§13.7-13.8, §7.2.2.4)", () => {
  it("maps one pair of aligned, disjoint buffers in the VM's own RAM; unmaps it; refuses the rest", () => {
    const { g, mediator } = setup({ map: false });
    const map = (tx: bigint, rx: bigint, pages: number) => Guest.code(g.a.smc(F.FFA_RXTX_MAP.smc64, tx, rx, pages));
    expect(map(TX + 0x10n, RX, 1)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(map(TX, TX + 0x1000n, 2)).toBe(FFA_RET.INVALID_PARAMETERS); // overlapping
    expect(map(TX, IPA + RAM, 1)).toBe(FFA_RET.INVALID_PARAMETERS); // past the VM's RAM
    expect(map(0x8_0000_0000n, RX, 1)).toBe(FFA_RET.INVALID_PARAMETERS); // the hypervisor's heap
    expect(map(TX, RX, 0)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(map(TX, RX, 5)).toBe(FFA_RET.INVALID_PARAMETERS); // above the 4 FEATURES reports
    expect(map(TX, RX, 0x41)).toBe(FFA_RET.INVALID_PARAMETERS); // w3 [31:6] MBZ
    expect(mediator.counters("a")).toEqual(ZERO);
    expect(map(TX, RX, 4)).toBe(0);
    expect(map(TX + 0x10_0000n, RX + 0x10_0000n, 1)).toBe(FFA_RET.DENIED);
    // The ID field is the hypervisor's: another VM's ID, or [15:0], is refused.
    expect(Guest.code(g.a.smc(F.FFA_RXTX_UNMAP.smc32, ID.b! << 16))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.a.smc(F.FFA_RXTX_UNMAP.smc32, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(g.a.smc(F.FFA_RXTX_UNMAP.smc32)[0]).toBe(SUCCESS);
    expect(Guest.code(g.a.smc(F.FFA_RXTX_UNMAP.smc32))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(mediator.counters("a")).toEqual(ZERO);
  });

  it("RXTX_UNMAP naming the VM itself, as Linux 6.1 does at module exit, unmaps; the driver can map again", () => {
    const { g, mediator } = setup();
    expect(g.a.smc(F.FFA_RXTX_UNMAP.smc32, ID.a! << 16)[0]).toBe(SUCCESS);
    expect(mediator.counters("a").rxtx).toBe(0);
    expect(g.a.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1)[0]).toBe(SUCCESS);
  });

  it("RX_RELEASE only by the VM that owns its RX buffer, without an ID", () => {
    const { g } = setup();
    expect(Guest.code(g.a.smc(F.FFA_RX_RELEASE.smc32))).toBe(FFA_RET.DENIED);
    g.a.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(Guest.code(g.a.smc(F.FFA_RX_RELEASE.smc32, ID.a!))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(g.a.smc(F.FFA_RX_RELEASE.smc32)[0]).toBe(SUCCESS);
    expect(Guest.code(g.a.smc(F.FFA_RX_RELEASE.smc32))).toBe(FFA_RET.DENIED);
  });
});

describe("FFA_PARTITION_INFO_GET (§13.9)", () => {
  const entries = (mem: ArrayGuestMemory, count: number, size: number) => decodePartitionInfo(mem.read(RX, count * size)!, count, size)!;

  it("lists the partitions the VM may use and its peers, in its layout, in its RX buffer; the hypervisor's RX is released", () => {
    const { g, memory, spmc } = setup({ versions: { a: V1_1, b: V1_0 } });
    const r = g.a.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(r.slice(0, 4)).toEqual([SUCCESS, 0n, 3n, 24n]);
    expect(entries(memory.a as ArrayGuestMemory, 3, 24).map((p) => [p.id, p.uuid])).toEqual([
      [SP1, SP1_UUID],
      [SP2, "486178e0-e7f8-11e3-bc5e-0002a5d5c51b"],
      [ID.b, "00000000-0000-0000-0000-000000000000"],
    ]);
    expect(spmc.rxBusy).toBe(false);
    // The VM owns RX until it releases it.
    expect(Guest.code(g.a.smc(F.FFA_PARTITION_INFO_GET.smc32))).toBe(FFA_RET.BUSY);
    // v1.0: 8-byte entries, no size in w3, only v1.0's property bits.
    const v10 = g.b.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(v10.slice(0, 4)).toEqual([SUCCESS, 0n, 3n, 0n]);
    const e = entries(memory.b as ArrayGuestMemory, 3, 8);
    expect(e.map((p) => p.id)).toEqual([SP1, SP2, ID.a]);
    expect(e[0]!.properties).toBe(1);
  });

  it("finds by UUID only what the VM may use: another VM's partition is an unknown UUID", () => {
    const { g, memory, mediator } = setup();
    const w = ffaUuidWords(SP1_UUID);
    expect(g.a.smc(F.FFA_PARTITION_INFO_GET.smc32, ...w).slice(0, 4)).toEqual([SUCCESS, 0n, 1n, 24n]);
    g.a.smc(F.FFA_RX_RELEASE.smc32);
    expect(Guest.code(g.a.smc(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(SP_OTHER_UUID)))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(mediator.counters("a").rxFull).toBe(0);
    const c = g.c.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(c[2]).toBe(1n);
    expect(entries(memory.c as ArrayGuestMemory, 1, 24)[0]!.id).toBe(SP_OTHER);
  });

  it("counts without writing (v1.1 flag), refuses the flag from v1.0 and other flags, and needs RX for the list", () => {
    const { g, mediator } = setup({ versions: { b: V1_0 }, map: false });
    expect(g.a.smc(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 1).slice(0, 4)).toEqual([SUCCESS, 0n, 3n, 0n]); // w3 (the size) MBZ with the count flag
    expect(Guest.code(g.a.smc(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 2))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.b.smc(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.a.smc(F.FFA_PARTITION_INFO_GET.smc32))).toBe(FFA_RET.DENIED);
    expect(mediator.counters("a")).toEqual(ZERO);
  });
});

describe("FFA_PARTITION_INFO_GET_REGS (v1.2 §13.10)", () => {
  it("gives a v1.2 VM the same list in registers, from a start index; refuses a start past the end and tags", () => {
    const { g, spmc } = setup({ versions: { a: V1_2 } });
    const r = g.a.smc(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0, 0, 0);
    expect(r[0]).toBe(BigInt(F.FFA_SUCCESS.smc64));
    expect(r[2]).toBe(2n | (2n << 16n) | (24n << 48n));
    const [lo, hi] = ffaUuidRegs(SP1_UUID);
    expect(r.slice(3, 6)).toEqual([BigInt(SP1) | (1n << 16n) | (BigInt(spmc.partitions[0]!.properties) << 32n), lo, hi]);
    expect(r[9]).toBe(BigInt(ID.b!) | (2n << 16n) | (BigInt(0x703) << 32n));
    expect(g.a.smc(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0, 0, 2)[3]).toBe(BigInt(ID.b!) | (2n << 16n) | (BigInt(0x703) << 32n));
    expect(Guest.code(g.a.smc(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0, 0, 3))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.a.smc(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0, 0, 1 << 16))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.b.smc(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0, 0, 0))).toBe(FFA_RET.NOT_SUPPORTED);
  });
});

describe("direct requests (§15.2-15.4)", () => {
  it("forwards a request to a partition the VM may use, its own ID as sender, 64-bit payload intact", () => {
    const { g } = setup();
    const r = g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc64, (ID.a! << 16) | SP1, 0, 0x1_2345_6789n, 7n, 8n, 9n, 0xffff_ffff_ffff_fffen);
    expect(r.slice(0, 8)).toEqual([BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc64), BigInt(((SP1 << 16) | ID.a!) >>> 0), 0n, 0x1_2345_678an, 7n, 8n, 9n, 0xffff_ffff_ffff_fffen]);
    const r32 = g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, (ID.a! << 16) | SP2, 0, 41);
    expect(r32[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32));
    expect(r32[3]).toBe(42n);
  });

  it("refuses a forged sender, framework messages, partitions the VM may not use and busy peers, without reaching the SPMC", () => {
    const { g, spmc } = setup();
    const before = spmc.calls.length;
    const req = (w1: number, w2 = 0) => Guest.code(g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, w1, w2, 1));
    expect(req((ID.b! << 16) | SP1)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(req((ID.a! << 16) | SP1, 0x8000_0004)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(req((ID.a! << 16) | SP_OTHER)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(req((ID.a! << 16) | 0x8000)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(req((ID.a! << 16) | ID.c!)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(req((ID.a! << 16) | ID.b!)).toBe(FFA_RET.BUSY); // a peer that is not waiting (vm-messaging.test.ts)
    expect(spmc.calls.length).toBe(before);
  });

  it("DIRECT_REQ2 for v1.2 VMs only, x4-x17 forwarded", () => {
    const { g } = setup({ versions: { a: V1_2, b: V1_1 } });
    const payload = Array.from({ length: 14 }, (_, i) => BigInt(i) << 40n);
    const r = g.a.smc(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, (ID.a! << 16) | SP1, 0, 0, ...payload);
    expect(r[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP2.smc64));
    expect(r.slice(4, 18)).toEqual(payload.map((p) => p + 1n));
    expect(Guest.code(g.b.smc(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, (ID.b! << 16) | SP1))).toBe(FFA_RET.NOT_SUPPORTED);
  });
});

describe("notifications (§17)", () => {
  it("binds and gets for the VM itself only; INFO_GET tells each VM of itself and loses no other VM's entry", () => {
    const { g, spmc } = setup();
    expect(g.a.smc(F.FFA_NOTIFICATION_BIND.smc32, (SP1 << 16) | ID.a!, 0, 1)[0]).toBe(SUCCESS);
    expect(Guest.code(g.a.smc(F.FFA_NOTIFICATION_BIND.smc32, (SP1 << 16) | ID.b!, 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.a.smc(F.FFA_NOTIFICATION_BIND.smc32, (SP_OTHER << 16) | ID.a!, 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(g.a.smc(F.FFA_NOTIFICATION_SET.smc32, (ID.b! << 16) | SP1, 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(g.a.smc(F.FFA_NOTIFICATION_GET.smc32, ID.a!, 1).slice(0, 4)).toEqual([SUCCESS, 0n, 5n, 0n]);
    expect(Guest.code(g.a.smc(F.FFA_NOTIFICATION_GET.smc32, ID.b!, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    spmc.pendingNotifications = new Set([ID.a!, ID.b!]);
    expect(g.a.smc(F.FFA_NOTIFICATION_INFO_GET.smc64).slice(0, 4)).toEqual([BigInt(F.FFA_SUCCESS.smc64), 0n, 1n << 7n, BigInt(ID.a!)]);
    expect(Guest.code(g.a.smc(F.FFA_NOTIFICATION_INFO_GET.smc64))).toBe(FFA_RET.NO_DATA);
    expect(g.b.smc(F.FFA_NOTIFICATION_INFO_GET.smc64)[3]).toBe(BigInt(ID.b!));
  });
});

describe("lifecycle", () => {
  it("probe maps the hypervisor's RX/TX with the SPMC; enable sends VM_CREATED to subscribers and creates the bitmap; destroy undoes it", () => {
    const { mediator, spmc, heap } = setup();
    expect(spmc.tx).toBe(mediator.hypTx);
    expect(spmc.rx).toBe(mediator.hypRx);
    expect(heap.inUse).toBe(2);
    expect(spmc.vmMessages).toEqual([`created 1 at 0x${SP1.toString(16)}`, `created 2 at 0x${SP1.toString(16)}`, `created 3 at 0x${SP1.toString(16)}`]);
    expect([...spmc.bitmaps]).toEqual([1, 2, 3]);
    mediator.destroy("b");
    expect(spmc.vmMessages.at(-1)).toBe(`destroyed 2 at 0x${SP1.toString(16)}`);
    expect([...spmc.bitmaps]).toEqual([1, 3]);
    expect(mediator.counters("b")).toEqual(ZERO);
  });

  it("refuses to enable a VM a partition refuses, and leaves nothing of it", () => {
    const r = rig({ heap: new HypervisorHeap(0x8_0000_0000n, 64), ram: (b, s) => new ArrayGuestMemory(b, s) });
    r.mediator.probe();
    r.spmc.createdStatus = FFA_RET.NO_MEMORY;
    expect(r.mediator.enable(r.vm("a"))).toEqual({ ok: false, message: `partition 0x${SP1.toString(16)} refused VM_CREATED (${FFA_RET.NO_MEMORY})` });
    expect(r.spmc.bitmaps.size).toBe(0);
    expect(r.mediator.vm("a")).toBeUndefined();
    r.spmc.createdStatus = 0;
    expect(r.mediator.enable(r.vm("a"))).toEqual({ ok: true });
    expect(r.mediator.enable(r.vm("a"))).toMatchObject({ ok: false });
  });

  it("refuses endpoint IDs that are not normal-world VM IDs or are another VM's", () => {
    const r = rig({ heap: new HypervisorHeap(0x8_0000_0000n, 64), ram: (b, s) => new ArrayGuestMemory(b, s) });
    r.mediator.probe();
    for (const id of [0, 0x8001, 0x1_0001]) expect(r.mediator.enable({ ...r.vm("a"), id })).toMatchObject({ ok: false });
    r.mediator.enable(r.vm("a"));
    expect(r.mediator.enable({ ...r.vm("b"), id: 1 })).toEqual({ ok: false, message: "VM ID 1 is already the FF-A endpoint ID of VM a" });
  });

  it("reset: everything the VM held goes, VM_DESTROYED then VM_CREATED, and the VM negotiates again", () => {
    const { mediator, spmc, g, vm } = setup();
    g.a.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(mediator.counters("a")).toMatchObject({ rxtx: 1, rxFull: 1 });
    spmc.vmMessages.length = 0;
    expect(mediator.reset(vm("a", ["b"]))).toEqual({ ok: true });
    expect(mediator.counters("a")).toEqual(ZERO);
    expect(spmc.vmMessages).toEqual([`destroyed 1 at 0x${SP1.toString(16)}`, `created 1 at 0x${SP1.toString(16)}`]);
    expect(Guest.code(g.a.smc(F.FFA_ID_GET.smc32))).toBe(FFA_RET.NOT_SUPPORTED);
  });

  it("claims OEN 4 functions 0x60-0xFF, fast SMC32 and SMC64 (SMC32 only for AArch32 VMs), only for FF-A VMs", () => {
    const { mediator, vm } = setup();
    expect(mediator.claims(vm("a"))).toEqual([{ service: "ffa", owner: 4, types: [2, 3], first: 0x60, last: 0xff, mediator: "ffa" }]);
    expect(mediator.claims(vm("a", [], true))[0]!.types).toEqual([2]);
    expect(mediator.claims({ ...vm("a"), ffa: null } as never)).toEqual([]);
  });
});

describe("probe", () => {
  it("finds no SPMC when FFA_VERSION is not supported, and keeps no heap page", () => {
    const heap = new HypervisorHeap(0x8_0000_0000n, 64);
    const r = rig({ heap, ram: (b, s) => new ArrayGuestMemory(b, s) });
    r.spmc.handle = (regs) => {
      regs.fill(0);
      regs[0] = 0xffff_ffff;
      regs[1] = 0xffff_ffff;
    };
    expect(r.mediator.probe()).toBe(false);
    expect(heap.inUse).toBe(0);
    expect(r.mediator.enable(r.vm("a"))).toEqual({ ok: false, message: "there is no FF-A SPMC in the secure world" });
  });
});
