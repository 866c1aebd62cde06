// Direct messages between peer VMs (vm-messaging.ts): the receiver waits in FFA_MSG_WAIT (or in the response
// to its previous request), the request becomes that call's answer, the sender's call completes with the
// response. Every misuse gets its code; teardown answers whatever waits with ABORTED and leaves zeros.
import { describe, expect, it } from "vitest";
import { HypervisorHeap } from "../../hypervisor/heap.js";
import { ArrayGuestMemory } from "../../machine/scripted/memory.js";
import { FFA_RET, ffaEndpoints } from "../../smccc/ffa/abi.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { Guest, ID, IPA, rig } from "./testing.js";

const REQ32 = F.FFA_MSG_SEND_DIRECT_REQ.smc32, RESP32 = F.FFA_MSG_SEND_DIRECT_RESP.smc32;
const REQ64 = F.FFA_MSG_SEND_DIRECT_REQ.smc64, RESP64 = F.FFA_MSG_SEND_DIRECT_RESP.smc64;
const AB = ffaEndpoints(ID.a!, ID.b!), BA = ffaEndpoints(ID.b!, ID.a!);
const ZERO = { rxtx: 0, rxFull: 0, transactions: 0, fragmented: 0, pages: 0, retrieved: 0, messaging: 0 };

function setup(versions: Record<string, number> = {}) {
  const r = rig({ heap: new HypervisorHeap(0x8_0000_0000n, 64), ram: (b, s) => new ArrayGuestMemory(b, s) });
  r.mediator.probe();
  for (const [name, peers] of [["a", ["b"]], ["b", ["a"]], ["c", []]] as const) r.mediator.enable(r.vm(name, [...peers]));
  const vcpu = (name: string) => new Guest(r.mediator, name);
  for (const name of ["a", "b", "c"]) vcpu(name).smc(F.FFA_VERSION.smc32, versions[name] ?? 0x1_0001);
  return { ...r, vcpu };
}

/** Whether a call is still waiting after everything that can run has run. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setTimeout(r, 0));
  return !done;
}

describe("direct messages between peers", () => {
  it("a request reaches the waiting peer as its MSG_WAIT's answer; the response completes the sender's call; the peer waits again", async () => {
    const { vcpu, mediator } = setup();
    const b = vcpu("b"), a = vcpu("a");
    const wait = b.start(F.FFA_MSG_WAIT.smc32) as Promise<bigint[]>;
    expect(await pending(wait)).toBe(true);
    expect(mediator.counters("b").messaging).toBe(1);
    const request = a.start(REQ32, AB, 0, 11, 12, 13, 14, 15) as Promise<bigint[]>;
    expect((await wait).slice(0, 8)).toEqual([BigInt(REQ32), BigInt(AB), 0n, 11n, 12n, 13n, 14n, 15n]);
    expect(await pending(request)).toBe(true);
    const next = b.start(RESP32, BA, 0, 21, 22, 23, 24, 25) as Promise<bigint[]>;
    expect((await request).slice(0, 8)).toEqual([BigInt(RESP32), BigInt(BA), 0n, 21n, 22n, 23n, 24n, 25n]);
    // The responder waits for the next request without another MSG_WAIT.
    expect(await pending(next)).toBe(true);
    const again = a.start(REQ64, AB, 0, 0x1_0000_0001n) as Promise<bigint[]>;
    expect((await next)[3]).toBe(0x1_0000_0001n);
    void b.start(RESP64, BA, 0, 0x2_0000_0002n);
    expect((await again).slice(0, 4)).toEqual([BigInt(RESP64), BigInt(BA), 0n, 0x2_0000_0002n]);
    expect(mediator.counters("a").messaging).toBe(0);
  });

  it("refuses: a peer not waiting (BUSY), a VM that is not a peer, a response without a request (DENIED) or of the wrong width, sender or receiver", async () => {
    const { vcpu } = setup();
    const a = vcpu("a"), b = vcpu("b"), c = vcpu("c");
    expect(Guest.code(a.smc(REQ32, AB, 0, 1))).toBe(FFA_RET.BUSY);
    expect(Guest.code(b.smc(RESP32, BA, 0, 1))).toBe(FFA_RET.DENIED);
    void b.start(F.FFA_MSG_WAIT.smc32);
    expect(Guest.code(c.smc(REQ32, ffaEndpoints(ID.c!, ID.b!), 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(vcpu("b").smc(F.FFA_MSG_WAIT.smc32))).toBe(FFA_RET.BUSY);
    const request = a.start(REQ64, AB, 0, 1) as Promise<bigint[]>;
    const b2 = vcpu("b");
    expect(Guest.code(b2.smc(RESP32, BA, 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(b2.smc(RESP64, ffaEndpoints(ID.b!, ID.c!), 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(b2.smc(RESP64, ffaEndpoints(ID.c!, ID.a!), 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(b2.smc(RESP64, BA, 0x8000_0000, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    // A request in service is answered, not abandoned for MSG_WAIT; another sender finds the peer busy.
    expect(Guest.code(b2.smc(F.FFA_MSG_WAIT.smc32))).toBe(FFA_RET.DENIED);
    expect(await pending(request)).toBe(true);
    void b2.start(RESP64, BA, 0, 7);
    expect((await request)[3]).toBe(7n);
  });

  it("MSG_WAIT gives the RX buffer back (v1.1) unless asked to keep it; w1 and w2's other bits MBZ", async () => {
    const { vcpu, mediator } = setup();
    const b = vcpu("b");
    b.smc(F.FFA_RXTX_MAP.smc64, IPA + 0x1_0000n, IPA + 0x2_0000n, 1);
    b.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(Guest.code(b.smc(F.FFA_MSG_WAIT.smc32, 0, 2))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(b.smc(F.FFA_MSG_WAIT.smc32, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    void b.start(F.FFA_MSG_WAIT.smc32, 0, 1);
    expect(mediator.counters("b").rxFull).toBe(1);
    mediator.destroy("b");
    const other = setup();
    const b2 = other.vcpu("b");
    b2.smc(F.FFA_RXTX_MAP.smc64, IPA + 0x1_0000n, IPA + 0x2_0000n, 1);
    b2.smc(F.FFA_PARTITION_INFO_GET.smc32);
    expect(other.mediator.counters("b").rxFull).toBe(1);
    void b2.start(F.FFA_MSG_WAIT.smc32);
    expect(other.mediator.counters("b").rxFull).toBe(0);
  });

  it("DIRECT_REQ2 between v1.2 peers carries x4-x17; a v1.1 peer cannot take it (DENIED); a UUID is refused", async () => {
    const { vcpu } = setup({ a: 0x1_0002, b: 0x1_0002, c: 0x1_0002 });
    const a = vcpu("a"), b = vcpu("b");
    const wait = b.start(F.FFA_MSG_WAIT.smc32) as Promise<bigint[]>;
    const payload = Array.from({ length: 14 }, (_, i) => BigInt(i + 1) << 33n);
    expect(Guest.code(a.smc(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, AB, 1, 0, ...payload))).toBe(FFA_RET.INVALID_PARAMETERS);
    const request = a.start(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, AB, 0, 0, ...payload) as Promise<bigint[]>;
    expect((await wait).slice(4, 18)).toEqual(payload);
    void b.start(F.FFA_MSG_SEND_DIRECT_RESP2.smc64, BA, 0, 0, ...payload.map((p) => p + 1n));
    const r = await request;
    expect(r[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP2.smc64));
    expect(r.slice(4, 18)).toEqual(payload.map((p) => p + 1n));
    const old = setup({ a: 0x1_0002, b: 0x1_0001 });
    void old.vcpu("b").start(F.FFA_MSG_WAIT.smc32);
    expect(Guest.code(old.vcpu("a").smc(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, AB, 0, 0, 1))).toBe(FFA_RET.DENIED);
  });

  it("destroying the receiver answers the waiting sender ABORTED; destroying the sender lets the receiver answer into nothing; zeros after", async () => {
    const first = setup();
    void first.vcpu("b").start(F.FFA_MSG_WAIT.smc32);
    const request = first.vcpu("a").start(REQ32, AB, 0, 1) as Promise<bigint[]>;
    first.mediator.destroy("b");
    expect(Guest.code(await request)).toBe(FFA_RET.ABORTED);
    expect(first.mediator.counters("a")).toEqual(ZERO);

    const second = setup();
    const b = second.vcpu("b");
    void b.start(F.FFA_MSG_WAIT.smc32);
    const lost = second.vcpu("a").start(REQ32, AB, 0, 1) as Promise<bigint[]>;
    second.mediator.destroy("a");
    expect(Guest.code(await lost)).toBe(FFA_RET.ABORTED);
    expect(second.mediator.counters("a")).toEqual(ZERO);
    const waitsAgain = b.start(RESP32, BA, 0, 2) as Promise<bigint[]>;
    expect(await pending(waitsAgain)).toBe(true);
    expect(second.mediator.counters("b").messaging).toBe(1);

    const third = setup();
    const parked = third.vcpu("b").start(F.FFA_MSG_WAIT.smc32) as Promise<bigint[]>;
    expect(third.mediator.reset(third.vm("b", ["a"]))).toEqual({ ok: true });
    expect(Guest.code(await parked)).toBe(FFA_RET.ABORTED);
    expect(third.mediator.counters("b")).toEqual(ZERO);
  });
});

describe("indirect messages between peers (FFA_MSG_SEND2)", () => {
  const TX = IPA + 0x1_0000n, RX = IPA + 0x2_0000n;
  /** A v1.1 partition message: header (24 bytes) then the payload at `offset`. */
  function message(sender: number, receiver: number, payload: Uint8Array, offset = 24, flags = 0): Uint8Array {
    const out = new Uint8Array(offset + payload.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, flags, true);
    v.setUint32(8, offset, true);
    v.setUint32(12, ffaEndpoints(sender, receiver), true);
    v.setUint32(16, payload.length, true);
    out.set(payload, offset);
    return out;
  }
  function mapped(versions: Record<string, number> = {}) {
    const s = setup(versions);
    for (const name of ["a", "b", "c"]) s.vcpu(name).smc(F.FFA_RXTX_MAP.smc64, TX, RX, name === "a" ? 2 : 1);
    const send = (bytes: Uint8Array, from = "a", w1 = 0) => {
      s.memory[from]!.write(TX, bytes);
      return s.vcpu(from).smc(F.FFA_MSG_SEND2.smc32, w1);
    };
    return { ...s, send };
  }
  const payload = new Uint8Array([1, 2, 3, 4, 5]);

  it("copies the message into the peer's RX with a header of its own, which the peer owns; RX buffer full is notified", () => {
    const { send, memory, mediator, vcpu } = mapped();
    expect(send(message(ID.a!, ID.b!, payload, 64))[0]).toBe(BigInt(F.FFA_SUCCESS.smc32));
    const got = memory.b!.read(RX, 24 + payload.length)!;
    const v = new DataView(got.buffer);
    expect([v.getUint32(0, true), v.getUint32(8, true), v.getUint32(12, true), v.getUint32(16, true)]).toEqual([0, 24, ffaEndpoints(ID.a!, ID.b!), 5]);
    expect([...got.subarray(24)]).toEqual([...payload]);
    expect(mediator.counters("b").rxFull).toBe(1);
    const b = vcpu("b");
    expect(b.smc(F.FFA_NOTIFICATION_INFO_GET.smc64)[3]).toBe(BigInt(ID.b!));
    expect(b.smc(F.FFA_NOTIFICATION_GET.smc32, ID.b!, 8)[7]).toBe(1n);
    expect(b.smc(F.FFA_NOTIFICATION_GET.smc32, ID.b!, 8)[7]).toBe(0n);
    // Until b releases its RX, another message is BUSY.
    expect(Guest.code(send(message(ID.a!, ID.b!, payload)))).toBe(FFA_RET.BUSY);
    b.smc(F.FFA_RX_RELEASE.smc32);
    expect(send(message(ID.a!, ID.b!, payload))[0]).toBe(BigInt(F.FFA_SUCCESS.smc32));
  });

  it("refuses a forged sender, a VM that is not a peer, a partition, bad offsets and sizes, set flags, a message larger than the peer's RX", () => {
    const { send, mediator } = mapped();
    const refusals: [Uint8Array, number][] = [
      [message(ID.c!, ID.b!, payload), FFA_RET.INVALID_PARAMETERS],
      [message(ID.a!, ID.c!, payload), FFA_RET.INVALID_PARAMETERS],
      [message(ID.a!, 0x8001, payload), FFA_RET.NOT_SUPPORTED],
      [message(ID.a!, ID.b!, payload, 16), FFA_RET.INVALID_PARAMETERS],
      [message(ID.a!, ID.b!, new Uint8Array(0)), FFA_RET.INVALID_PARAMETERS],
      [message(ID.a!, ID.b!, payload, 24, 1), FFA_RET.INVALID_PARAMETERS],
      [message(ID.a!, ID.b!, new Uint8Array(4096)), FFA_RET.NO_MEMORY],
    ];
    for (const [bytes, code] of refusals) expect(Guest.code(send(bytes))).toBe(code);
    const huge = message(ID.a!, ID.b!, payload);
    new DataView(huge.buffer).setUint32(16, 0xffff_fff0, true);
    expect(Guest.code(send(huge))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(send(message(ID.a!, ID.b!, payload), "a", ID.a! << 16))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(mediator.counters("b")).toMatchObject({ rxFull: 0 });
    expect(mediator.vm("b")!.rxBufferFull).toBe(false);
  });

  it("needs v1.1 at both ends, and the sender's TX buffer", () => {
    const { send, vcpu } = mapped({ b: 0x1_0000 });
    expect(Guest.code(send(message(ID.a!, ID.b!, payload)))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(Guest.code(vcpu("b").smc(F.FFA_MSG_SEND2.smc32))).toBe(FFA_RET.NOT_SUPPORTED);
    vcpu("a").smc(F.FFA_RXTX_UNMAP.smc32);
    expect(Guest.code(vcpu("a").smc(F.FFA_MSG_SEND2.smc32))).toBe(FFA_RET.DENIED);
  });
});
