// FF-A attacked as a hostile guest (and a hostile config) would, through the whole in-process hypervisor:
// VMs speak FF-A through the mediator to the modelled SPMC, its test partition and OP-TEE's partition.
// Each test expects the secure behaviour (DEN0077's FFA_ERROR code, nothing reached, counters at zero).
// Where the code is wrong the test still expects the right behaviour and is marked it.fails, with a
// comment naming the defect, so the suite stays green and the defect stays visible.
import { describe, expect, it } from "vitest";
import { TEST_SP_CMD } from "../../src/firmware/spmc/partitions/test-sp.js";
import { runCampaign } from "../../src/fuzz/campaign.js";
import { ScriptedMachine } from "../../src/machine/scripted/machine.js";
import { parseConfigText } from "../../src/policy/load.js";
import type { FfaMediator } from "../../src/mediators/ffa/mediator.js";
import type { CallResult } from "../../src/machine/scripted/vcpu.js";
import { OPTEE_FFA_UUID } from "../../src/firmware/optee/ffa-abi.js";
import { TEST_PARTITION_UUID } from "../../src/policy/ffa.js";
import {
  FFA_FRAMEWORK_MSG,
  FFA_MEM_ATTR_NORMAL_WB_IS,
  FFA_MEM_FLAG,
  FFA_MEM_PERM,
  FFA_MEM_RECLAIM_FLAG,
  FFA_MEM_RELINQUISH_FLAG,
  FFA_MEM_TRANSACTION,
  FFA_MSG_FLAG_FRAMEWORK,
  FFA_NOTIFICATION,
  FFA_RET,
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  ffaEndpoints,
  ffaHandle,
} from "../../src/smccc/ffa/abi.js";
import { encodeMemTransaction, encodeRelinquish, type FfaDescriptorLayout, type FfaMemRange, type FfaMemTransaction } from "../../src/smccc/ffa/descriptors.js";
import { ffaUuidWords } from "../../src/smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../src/smccc/functions/ffa.js";
import { ATTR, ATTR_META, MSG_CMD, TEEC } from "../../src/smccc/optee/abi.js";
import { decodeMsg, encodeMsg, headerNumParams, msgSize, uuidToValues, type MsgArg, type MsgParam } from "../../src/smccc/optee/msg.js";
import { HELLO_WORLD_UUID } from "../../src/firmware/optee/tas/hello-world.js";

const OPTEE = 0x8001, SP = 0x8002;
const IPA = 0x4000_0000n, RAM = 16n << 20n, PAGE = 4096n;
const TX = IPA + 0x10_0000n, RX = IPA + 0x10_1000n, SHARED = IPA + 0x20_0000n;
const SUCCESS = BigInt(F.FFA_SUCCESS.smc32);
const FFA_ERROR = BigInt(F.FFA_ERROR.smc32);
const V10 = FFA_VERSION_1_0, V11 = FFA_VERSION_1_1, V12 = FFA_VERSION_1_2;

const CONFIG = `
platform:
  tee: { os: optee }
  spmc:
    partitions:
      - { name: optee, id: ${OPTEE}, runs: optee, vms: [a, b] }
      - { name: test, id: ${SP}, runs: test, vms: [a, b] }
vms:
  a: { id: 1, vcpus: 2, memory: { size: 16MiB }, tee: { mediator: ffa, peers: [b, d] } }
  b: { id: 2, memory: { size: 16MiB }, tee: { mediator: ffa, peers: [a] } }
  c: { id: 3, memory: { size: 16MiB } }
  d: { id: 4, memory: { size: 16MiB }, tee: { mediator: ffa, peers: [a] } }
  e: { id: 5, memory: { size: 16MiB }, tee: { mediator: ffa, peers: [] } }
`;

type Vm = ReturnType<ScriptedMachine["vm"]>;

function setup() {
  const m = ScriptedMachine.fromText(CONFIG);
  const spmc = m.hypervisor.spmc!;
  const med = m.hypervisor.mediators.get("ffa") as FfaMediator;
  const id = (name: string) => m.config.vms.find((v) => v.name === name)!.id;
  const pa = (name: string) => m.config.vms.find((v) => v.name === name)!.memory.pa;
  /** The mediator's counters for the VM all zero (rxtx aside when asked), and the SPMC holding nothing of it. */
  const clean = (name: string, rxtx = 0) => {
    expect(med.counters(name)).toEqual({ rxtx, rxFull: 0, transactions: 0, fragmented: 0, pages: 0, retrieved: 0, messaging: 0 });
    expect(spmc.counters(id(name))).toMatchObject({ shares: 0, fragments: 0, pages: 0, retrieved: 0 });
  };
  return { m, spmc, med, id, pa, clean, a: m.vm("a"), b: m.vm("b"), d: m.vm("d"), e: m.vm("e") };
}

/** FFA_VERSION, then the RX/TX pair at TX/RX (one page each) unless `map` is false. */
function up(vm: Vm, version = V11, map = true, vcpu = 0): void {
  const v = vm.vcpu(vcpu);
  expect(v.smc(F.FFA_VERSION.smc32, version).x0).toBe(BigInt(V12));
  if (map) expect(v.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1).x0).toBe(SUCCESS);
}

/** The FFA_ERROR code of an answer, or "ok" for anything else. */
function code(r: CallResult): number | "ok" {
  return r.x0 === FFA_ERROR ? Number(BigInt.asIntN(32, r.x(2))) : "ok";
}

function tx(over: Partial<FfaMemTransaction> = {}): FfaMemTransaction {
  return { sender: 1, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED, pageCount: 1 }], ...over };
}

function desc(over: Partial<FfaMemTransaction> = {}, layout: FfaDescriptorLayout = "v1.1"): Uint8Array {
  return encodeMemTransaction(tx(over), layout);
}

/** FFA_MEM_SHARE (or `fid`) of `bytes` written into TX: `length` of them in this fragment. */
function send(vm: Vm, bytes: Uint8Array, fid: number = F.FFA_MEM_SHARE.smc32, length = bytes.length, vcpu = 0): CallResult {
  vm.memory.write(TX, bytes.subarray(0, Math.min(length, bytes.length)));
  return vm.vcpu(vcpu).smc(fid, bytes.length, length, 0, 0);
}

function handleOf(r: CallResult): bigint {
  return ffaHandle(Number(r.x(2) & 0xffff_ffffn), Number(r.x(3) & 0xffff_ffffn));
}
const lo = (h: bigint) => Number(h & 0xffff_ffffn);
const hi = (h: bigint) => Number(h >> 32n);

function checksum(vm: Vm, sender: number, h: bigint): { status: number; sum: bigint } {
  const r = vm.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(sender, SP), 0, TEST_SP_CMD.CHECKSUM, lo(h), hi(h));
  return { status: Number(BigInt.asIntN(32, r.x(3))), sum: r.x(4) };
}

/** Constituents of `n` single pages, every other page from `start` (none contiguous). */
function scattered(n: number, start = SHARED): FfaMemRange[] {
  return Array.from({ length: n }, (_, i) => ({ address: start + BigInt(2 * i) * PAGE, pageCount: 1 }));
}

// ---------------------------------------------------------------------------------------------------

describe("MEM_SHARE/LEND descriptors that try to reach beyond the VM's own RAM", () => {
  it("a range that crosses the end of RAM is DENIED and leaves nothing held", () => {
    const { a, clean } = setup();
    up(a);
    expect(code(send(a, desc({ ranges: [{ address: IPA + RAM - PAGE, pageCount: 2 }] })))).toBe(FFA_RET.DENIED);
    clean("a", 1);
  });

  it("a range that wraps the 64-bit address space is refused and leaves nothing held", () => {
    const { a, clean } = setup();
    up(a);
    const r = code(send(a, desc({ ranges: [{ address: 0xffff_ffff_ffff_f000n, pageCount: 2 }] })));
    expect([FFA_RET.INVALID_PARAMETERS, FFA_RET.DENIED]).toContain(r);
    const r2 = code(send(a, desc({ ranges: [{ address: SHARED, pageCount: 0xffff_ffff }] })));
    expect([FFA_RET.INVALID_PARAMETERS, FFA_RET.DENIED, FFA_RET.NO_MEMORY]).toContain(r2);
    clean("a", 1);
  });

  it("another VM's RAM, the hypervisor's heap and secure memory named by physical address are DENIED", () => {
    const { m, a, pa, clean } = setup();
    up(a);
    const heapPage = m.hypervisor.heap.base;
    for (const address of [pa("b"), pa("b") + RAM - PAGE, heapPage, pa("a") === IPA ? pa("b") : pa("a")]) {
      expect(code(send(a, desc({ ranges: [{ address, pageCount: 1 }] }))), `0x${address.toString(16)}`).toBe(FFA_RET.DENIED);
    }
    clean("a", 1);
  });

  it("zero pages, an unaligned address and a reserved word set are INVALID_PARAMETERS", () => {
    const { a, clean } = setup();
    up(a);
    expect(code(send(a, desc({ ranges: [{ address: SHARED, pageCount: 0 }] })))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(send(a, desc({ ranges: [{ address: SHARED + 8n, pageCount: 1 }] })))).toBe(FFA_RET.INVALID_PARAMETERS);
    const bytes = desc();
    new DataView(bytes.buffer).setUint32(bytes.length - 4, 1, true); // constituent reserved
    expect(code(send(a, bytes))).toBe(FFA_RET.INVALID_PARAMETERS);
    clean("a", 1);
  });

  it("the VM's own RX or TX pages are DENIED, alone or inside a larger range", () => {
    const { a, clean } = setup();
    up(a);
    expect(code(send(a, desc({ ranges: [{ address: TX, pageCount: 1 }] })))).toBe(FFA_RET.DENIED);
    expect(code(send(a, desc({ ranges: [{ address: RX, pageCount: 1 }] })))).toBe(FFA_RET.DENIED);
    expect(code(send(a, desc({ ranges: [{ address: TX - 4n * PAGE, pageCount: 8 }] })))).toBe(FFA_RET.DENIED);
    clean("a", 1);
  });

  it("a page already shared is DENIED (also overlapping by one page, to another receiver), and the first share is untouched", () => {
    const { a, spmc, clean } = setup();
    up(a);
    a.memory.write(SHARED, new Uint8Array(4096).fill(1));
    const first = send(a, desc({ ranges: [{ address: SHARED, pageCount: 2 }] }));
    expect(first.x0).toBe(SUCCESS);
    expect(code(send(a, desc({ ranges: [{ address: SHARED + PAGE, pageCount: 2 }] })))).toBe(FFA_RET.DENIED);
    expect(code(send(a, desc({ receivers: [{ receiver: OPTEE, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED - PAGE, pageCount: 2 }] }), F.FFA_MEM_LEND.smc32))).toBe(FFA_RET.DENIED);
    expect(spmc.counters(1)).toMatchObject({ shares: 1, pages: 2 });
    expect(checksum(a, 1, handleOf(first))).toEqual({ status: 0, sum: 4096n });
    const h = handleOf(first);
    expect(a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(h), hi(h), 0).x0).toBe(SUCCESS);
    clean("a", 1);
  });

  it("overlapping constituents inside one descriptor are INVALID_PARAMETERS", () => {
    const { a, clean } = setup();
    up(a);
    expect(code(send(a, desc({ ranges: [{ address: SHARED, pageCount: 2 }, { address: SHARED + PAGE, pageCount: 1 }] })))).toBe(FFA_RET.INVALID_PARAMETERS);
    clean("a", 1);
  });

  it("many constituents whose pages sum past the VM's budget are NO_MEMORY, in one piece and in fragments", () => {
    const { a, med } = setup();
    expect(a.vcpu(0).smc(F.FFA_VERSION.smc32, V11).x0).toBe(BigInt(V12));
    expect(a.vcpu(0).smc(F.FFA_RXTX_MAP.smc64, TX, TX + 4n * PAGE, 4).x0).toBe(SUCCESS);
    // The budget (4096 pages) is the whole of a 16 MiB VM: a first fragment whose composite declares more
    // than it is NO_MEMORY before anything is held; so is a descriptor longer than 64 KiB.
    const ranges = scattered(3);
    const bytes = desc({ ranges });
    new DataView(bytes.buffer).setUint32(64, 5000, true);
    expect(code(send(a, bytes, F.FFA_MEM_SHARE.smc32, bytes.length - 16))).toBe(FFA_RET.NO_MEMORY);
    expect(code(a.vcpu(0).smc(F.FFA_MEM_SHARE.smc32, 0x1_0001 + 0x1_0000, 4096, 0, 0))).toBe(FFA_RET.NO_MEMORY);
    // Two transactions of 2000 and 2100 pages: the second passes the budget only if the first is not counted.
    expect(send(a, desc({ ranges: [{ address: IPA + 0x20_0000n, pageCount: 2000 }] })).x0).toBe(SUCCESS);
    expect(code(send(a, desc({ ranges: [{ address: IPA + 0x20_0000n + 2000n * PAGE, pageCount: 1500 }, { address: IPA, pageCount: 256 }, { address: IPA + 0x1_0000n * 0n + 0x10_0000n + 16n * PAGE, pageCount: 16 }] })))).toBe("ok");
    expect(med.counters("a").pages).toBeLessThanOrEqual(4096);
  });

  it("a composite offset pointing into the header, or past the descriptor, is INVALID_PARAMETERS", () => {
    const { a, clean } = setup();
    up(a);
    for (const offset of [16, 32, 0x10_0000, 0xffff_fff0]) {
      const bytes = desc();
      new DataView(bytes.buffer).setUint32(48 + 4, offset, true);
      expect(code(send(a, bytes)), `offset ${offset}`).toBe(FFA_RET.INVALID_PARAMETERS);
    }
    clean("a", 1);
  });

  it("an access descriptor count or size that lies is refused (INVALID_PARAMETERS or NO_MEMORY)", () => {
    const { a, clean } = setup();
    up(a);
    for (const [field, value] of [[28, 200], [28, 0], [28, 0xffff_ffff], [24, 0], [24, 4], [24, 0x1000], [32, 8], [32, 0xffff_fff0], [32, 64], [40, 1]] as const) {
      const bytes = desc();
      new DataView(bytes.buffer).setUint32(field, value, true);
      const r = code(send(a, bytes));
      expect([FFA_RET.INVALID_PARAMETERS, FFA_RET.NO_MEMORY], `field @${field} = ${value}`).toContain(r);
    }
    clean("a", 1);
  });

  it("a v1.0 VM sending a v1.1 descriptor, and a v1.1 VM a v1.0 one, are refused", () => {
    const { a, b, clean } = setup();
    up(a, V10);
    expect(code(send(a, desc({}, "v1.1")))).toBe(FFA_RET.INVALID_PARAMETERS);
    clean("a", 1);
    up(b, V11);
    expect(code(send(b, desc({ sender: 2 }, "v1.0")))).toBe(FFA_RET.INVALID_PARAMETERS);
    clean("b", 1);
  });

  it("the sender field naming another VM, the hypervisor or a partition is INVALID_PARAMETERS", () => {
    const { a, clean } = setup();
    up(a);
    for (const sender of [2, 0, SP, 0x8000]) expect(code(send(a, desc({ sender }))), `sender ${sender}`).toBe(FFA_RET.INVALID_PARAMETERS);
    clean("a", 1);
  });

  it("receivers the VM may not use (another VM's partition, a non-peer VM, one-sided peers, the SPMC) are refused", () => {
    const { a, e, clean } = setup();
    up(a);
    up(e);
    // e may use no partition and has no peers; a names e as no peer (e names none).
    for (const receiver of [0x8000, 3, 5, 0x8003]) expect(code(send(a, desc({ receivers: [{ receiver, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }] }))), `receiver ${receiver}`).toBe(FFA_RET.INVALID_PARAMETERS);
    for (const receiver of [SP, OPTEE, 1]) expect(code(send(e, desc({ sender: 5, receivers: [{ receiver, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }] }))), `receiver ${receiver}`).toBe(FFA_RET.INVALID_PARAMETERS);
    clean("a", 1);
    clean("e", 1);
  });

  it("a descriptor in memory other than TX (x3/w4) is NOT_SUPPORTED; no RX/TX is DENIED", () => {
    const { a, b, clean } = setup();
    up(a);
    const bytes = desc();
    a.memory.write(TX, bytes);
    expect(code(a.vcpu(0).smc(F.FFA_MEM_SHARE.smc64, bytes.length, bytes.length, SHARED, 1))).toBe(FFA_RET.NOT_SUPPORTED);
    up(b, V12, false);
    expect(code(b.vcpu(0).smc(F.FFA_MEM_SHARE.smc32, bytes.length, bytes.length, 0, 0))).toBe(FFA_RET.DENIED);
    clean("a", 1);
    clean("b", 0);
  });
});

describe("TOCTOU and fragments", () => {
  it("rewriting TX after MEM_SHARE changes nothing the partition reads", () => {
    const { a } = setup();
    up(a);
    a.memory.write(SHARED, new Uint8Array(4096).fill(2));
    const r = send(a, desc());
    expect(r.x0).toBe(SUCCESS);
    // The guest now points the TX copy at its RX page (and would at anything else): no effect.
    a.memory.write(TX, desc({ ranges: [{ address: RX, pageCount: 1 }] }));
    expect(checksum(a, 1, handleOf(r))).toEqual({ status: 0, sum: 2n * 4096n });
  });

  it("fragments: a later fragment that repeats a page, or names the RX page, aborts the whole transaction at the SPMC too", () => {
    const { a, spmc, clean } = setup();
    up(a);
    const ranges = scattered(4);
    const bytes = desc({ ranges });
    const first = bytes.length - 2 * 16;
    const r = send(a, bytes, F.FFA_MEM_SHARE.smc32, first);
    expect(r.x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    expect(spmc.counters(1)).toMatchObject({ fragments: 1 });
    const h = ffaHandle(Number(r.x(1)), Number(r.x(2)));
    const evil = encodeMemTransaction(tx({ ranges: [ranges[0]!, { address: RX, pageCount: 1 }] }), "v1.1").subarray(-32);
    a.memory.write(TX, evil);
    expect(code(a.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, lo(h), hi(h), 32, 0))).toBe(FFA_RET.DENIED);
    clean("a", 1);
  });

  it("FRAG_TX with another handle, a sender ID, a length that changes or overshoots: INVALID_PARAMETERS, the transaction gone everywhere", () => {
    const { a, clean } = setup();
    up(a);
    const bytes = desc({ ranges: scattered(4) });
    const first = bytes.length - 3 * 16;
    for (const bad of [
      (h: bigint) => [lo(h) + 1, hi(h), 16, 0],
      (h: bigint) => [lo(h), hi(h), 16, 1 << 16],
      (h: bigint) => [lo(h), hi(h), 8, 0],
      (h: bigint) => [lo(h), hi(h), 64, 0],
      (h: bigint) => [lo(h), hi(h), 0, 0],
    ]) {
      const r = send(a, bytes, F.FFA_MEM_SHARE.smc32, first);
      expect(r.x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
      a.memory.write(TX, bytes.subarray(first, first + 16));
      expect(code(a.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, ...bad(ffaHandle(Number(r.x(1)), Number(r.x(2))))))).toBe(FFA_RET.INVALID_PARAMETERS);
      clean("a", 1);
    }
  });

  it("another VM's FRAG_TX with a's handle is INVALID_PARAMETERS and a's transaction goes on", () => {
    const { a, b, spmc } = setup();
    up(a);
    up(b);
    const bytes = desc({ ranges: scattered(3) });
    const first = bytes.length - 16;
    const r = send(a, bytes, F.FFA_MEM_SHARE.smc32, first);
    const h = ffaHandle(Number(r.x(1)), Number(r.x(2)));
    b.memory.write(TX, encodeMemTransaction(tx({ ranges: [{ address: SHARED + 0x10_0000n, pageCount: 1 }] }), "v1.1").subarray(-16));
    expect(code(b.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, lo(h), hi(h), 16, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(spmc.counters(1)).toMatchObject({ fragments: 1 });
    a.memory.write(TX, bytes.subarray(first));
    const done = a.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, lo(h), hi(h), 16, 0);
    expect(done.x0).toBe(SUCCESS);
    expect(spmc.counters(1)).toMatchObject({ shares: 1, pages: 3, fragments: 0 });
  });

  it("a second MEM_SHARE while fragments arrive is BUSY; RXTX_UNMAP abandons the transaction everywhere", () => {
    const { a, clean } = setup();
    up(a);
    const bytes = desc({ ranges: scattered(3) });
    expect(send(a, bytes, F.FFA_MEM_SHARE.smc32, bytes.length - 16).x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    expect(code(send(a, desc({ ranges: [{ address: IPA + 0x80_0000n, pageCount: 1 }] })))).toBe(FFA_RET.BUSY);
    expect(a.vcpu(0).smc(F.FFA_RXTX_UNMAP.smc32, 0).x0).toBe(SUCCESS);
    clean("a", 0);
  });

  it("abandoning a transaction half-way, then destroy: nothing left at the mediator or the SPMC", () => {
    const { m, a, spmc, clean } = setup();
    up(a);
    const bytes = desc({ ranges: scattered(3) });
    expect(send(a, bytes, F.FFA_MEM_SHARE.smc32, bytes.length - 16).x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    expect(spmc.counters(1)).toMatchObject({ fragments: 1 });
    expect(m.hypervisor.destroyDomain("a")).toBe(true);
    expect(spmc.counters(1)).toMatchObject({ known: false, shares: 0, fragments: 0 });
    void clean;
  });

  it("layouts converted with fragments: a v1.0 VM's scattered share in fragments, and a 4-page one-piece descriptor, reach the partition whole", () => {
    const { a, b, spmc } = setup();
    up(a, V10);
    for (let i = 0; i < 6; i++) a.memory.write(SHARED + BigInt(2 * i) * PAGE, new Uint8Array(4096).fill(i + 1));
    const bytes = desc({ ranges: scattered(6) }, "v1.0");
    const first = bytes.length - 4 * 16;
    const r = send(a, bytes, F.FFA_MEM_SHARE.smc32, first);
    expect(r.x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    let h = ffaHandle(Number(r.x(1)), Number(r.x(2)));
    for (const at of [first, first + 32]) {
      a.memory.write(TX, bytes.subarray(at, at + 32));
      const f = a.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, lo(h), hi(h), 32, 0);
      if (at === first) expect(f.x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
      else {
        expect(f.x0).toBe(SUCCESS);
        h = handleOf(f);
      }
    }
    expect(checksum(a, 1, h)).toEqual({ status: 0, sum: 21n * 4096n });
    // b: TX of 4 pages, 1000 constituents in one piece (the hypervisor's TX is one page: it is sent in fragments).
    expect(b.vcpu(0).smc(F.FFA_VERSION.smc32, V11).x0).toBe(BigInt(V12));
    expect(b.vcpu(0).smc(F.FFA_RXTX_MAP.smc64, TX, TX + 4n * PAGE, 4).x0).toBe(SUCCESS);
    for (let i = 0; i < 1000; i++) b.memory.write(SHARED + BigInt(2 * i) * PAGE, new Uint8Array([1]));
    const big = send(b, desc({ sender: 2, ranges: scattered(1000) }));
    expect(big.x0).toBe(SUCCESS);
    expect(spmc.counters(2)).toMatchObject({ shares: 1, pages: 1000 });
    expect(checksum(b, 2, handleOf(big))).toEqual({ status: 0, sum: 1000n });
  });

  it("the first fragment's composite declares fewer pages than the fragments bring: refused, nothing held", () => {
    const { a, clean } = setup();
    up(a);
    const ranges = scattered(3);
    const bytes = desc({ ranges });
    const view = new DataView(bytes.buffer);
    view.setUint32(64, 1, true); // composite total pages: 1 (three are sent)
    const first = bytes.length - 32;
    const r = send(a, bytes, F.FFA_MEM_SHARE.smc32, first);
    if (r.x0 === BigInt(F.FFA_MEM_FRAG_RX.smc32)) {
      a.memory.write(TX, bytes.subarray(first));
      expect(code(a.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, Number(r.x(1)), Number(r.x(2)), 32, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    } else expect(code(r)).toBe(FFA_RET.INVALID_PARAMETERS);
    clean("a", 1);
  });
});

describe("handles: another VM's, guessed ones", () => {
  it("b cannot reclaim a's handle, have the partition checksum it, retrieve it as a peer or relinquish it", () => {
    const { a, b, spmc } = setup();
    up(a);
    up(b);
    a.memory.write(SHARED, new Uint8Array(4096).fill(9));
    const r = send(a, desc());
    const h = handleOf(r);
    expect(code(b.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(h), hi(h), 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(checksum(b, 2, h).status).toBeLessThan(0);
    // b asks for it as a peer transaction lent by a.
    const req = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [] }, "v1.1");
    b.memory.write(TX, req);
    expect(code(b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, req.length, req.length, 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    b.memory.write(TX, encodeRelinquish({ handle: h, flags: 0, endpoints: [2] }));
    expect(code(b.vcpu(0).smc(F.FFA_MEM_RELINQUISH.smc32, 0, 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(spmc.counters(1)).toMatchObject({ shares: 1, retrieved: 0 });
    // Guessed neighbours of a's handle from b: nothing.
    for (const g of [h - 1n, h + 1n, h | (1n << 63n), 0n, 0xffff_ffff_ffff_ffffn]) expect(checksum(b, 2, g).status).toBeLessThan(0);
  });

  it("a peer transaction's handle is not retrievable by a VM it was not lent to (a's peer d), nor by a with b's ID", () => {
    const { a, b, d } = setup();
    up(a);
    up(b);
    up(d);
    const r = send(a, desc({ receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }] }));
    expect(r.x0).toBe(SUCCESS);
    const h = handleOf(r);
    const req = (receiver: number) => encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }], ranges: [] }, "v1.1");
    for (const [vm, receiver] of [[d, 4], [d, 2]] as const) {
      const q = req(receiver);
      vm.memory.write(TX, q);
      expect(code(vm.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    }
  });

  it("a read-only borrower asking for write access is DENIED", () => {
    const { a, b } = setup();
    up(a);
    up(b);
    const h = handleOf(send(a, desc({ receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }] }), F.FFA_MEM_LEND.smc32));
    const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [] }, "v1.1");
    b.memory.write(TX, q);
    expect(code(b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0))).toBe(FFA_RET.DENIED);
  });

  // Was a DEFECT (fixed 2026-12-05): PeerMemory.relinquish (src/mediators/ffa/peer-memory.ts) honoured the "zero memory after
  // relinquish" flag from a borrower that was lent the region read-only: a RO borrower wipes the lender's
  // pages. DEN0077 §11.x (FFA_MEM_RELINQUISH, flags bit 0) says the flag must be 0 unless the borrower has
  // write access (and for memory lent to a single borrower); Hafnium's ffa_memory_relinquish answers
  // FFA_DENIED ("memory region is not writable") / INVALID_PARAMETERS for it.
  it("a read-only borrower's relinquish with the zero flag does not wipe the lender's memory", () => {
    const { a, b } = setup();
    up(a);
    up(b);
    a.memory.write(SHARED, new Uint8Array(4096).fill(0x5a));
    const h = handleOf(send(a, desc({ receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }] }), F.FFA_MEM_LEND.smc32));
    const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }], ranges: [] }, "v1.1");
    b.memory.write(TX, q);
    expect(b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0).x0).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
    b.memory.write(TX, encodeRelinquish({ handle: h, flags: FFA_MEM_RELINQUISH_FLAG.CLEAR, endpoints: [2] }));
    const r = b.vcpu(0).smc(F.FFA_MEM_RELINQUISH.smc32, 0, 0, 0);
    expect(a.memory.read(SHARED, 4)).toEqual(new Uint8Array([0x5a, 0x5a, 0x5a, 0x5a]));
    expect([FFA_RET.DENIED, FFA_RET.INVALID_PARAMETERS]).toContain(code(r));
  });

  /** a lends (or shares) SHARED to `borrowers`, each retrieves it read-write; the handle. */
  function lentAndRetrieved(s: ReturnType<typeof setup>, fid: number, borrowers: [Vm, number][], perm: number = FFA_MEM_PERM.DATA_RW): bigint {
    const r = send(s.a, desc({ receivers: borrowers.map(([, id]) => ({ receiver: id, permissions: perm, flags: 0 })) }), fid);
    expect(r.x0).toBe(SUCCESS);
    const h = handleOf(r);
    for (const [vm, id] of borrowers) {
      const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver: id, permissions: perm, flags: 0 }], ranges: [] }, "v1.1");
      vm.memory.write(TX, q);
      expect(vm.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0).x0).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
    }
    return h;
  }

  // Was a DEFECT (fixed 2026-12-05): PeerMemory.relinquish (src/mediators/ffa/peer-memory.ts) cleared a lent region on one
  // borrower's relinquish with the zero flag while another borrower of the same lend still holds it: b
  // wipes the memory d is using. The zero-after-relinquish flag is for a sole borrower giving back what it
  // alone could write; with several borrowers the mediator should refuse it (INVALID_PARAMETERS), or
  // clear only when the last borrower lets go.
  it("one borrower's relinquish with the zero flag does not wipe memory another borrower still holds", () => {
    const s = setup();
    up(s.a);
    up(s.b);
    up(s.d);
    s.a.memory.write(SHARED, new Uint8Array(4096).fill(0x33));
    const h = lentAndRetrieved(s, F.FFA_MEM_LEND.smc32, [[s.b, 2], [s.d, 4]]);
    s.b.memory.write(TX, encodeRelinquish({ handle: h, flags: FFA_MEM_RELINQUISH_FLAG.CLEAR, endpoints: [2] }));
    const r = s.b.vcpu(0).smc(F.FFA_MEM_RELINQUISH.smc32, 0, 0, 0);
    expect(s.a.memory.read(SHARED, 4)).toEqual(new Uint8Array([0x33, 0x33, 0x33, 0x33]));
    expect(code(r)).toBe(FFA_RET.INVALID_PARAMETERS);
  });

  // Was a DEFECT (minor, fixed 2026-12-05): the zero flag on the relinquish of a SHARE is accepted (SUCCESS,
  // nothing cleared) by PeerMemory.relinquish; Hafnium's ffa_memory_relinquish answers INVALID_PARAMETERS
  // ("memory which was shared can't be cleared": the owner never lost access).
  it("the zero flag on relinquishing shared (not lent) memory is INVALID_PARAMETERS", () => {
    const s = setup();
    up(s.a);
    up(s.b);
    const h = lentAndRetrieved(s, F.FFA_MEM_SHARE.smc32, [[s.b, 2]]);
    s.b.memory.write(TX, encodeRelinquish({ handle: h, flags: FFA_MEM_RELINQUISH_FLAG.CLEAR, endpoints: [2] }));
    expect(code(s.b.vcpu(0).smc(F.FFA_MEM_RELINQUISH.smc32, 0, 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
  });

  // Was a DEFECT (minor, fixed 2026-12-05): FfaMemory.reclaim (src/mediators/ffa/memory.ts) honours the zero
  // flag for a peer SHARE and clears the pages, where the same call for a partition's share is
  // INVALID_PARAMETERS at the SPMC (MemoryTransactions.reclaim, after Hafnium ffa_memory_reclaim): the
  // two paths of one ABI disagree. Only the lender's own memory is touched.
  it("reclaiming a peer SHARE with the zero flag is INVALID_PARAMETERS, as for a partition's", () => {
    const s = setup();
    up(s.a);
    up(s.b);
    s.a.memory.write(SHARED, new Uint8Array(16).fill(7));
    const peerShare = handleOf(send(s.a, desc({ receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }] })));
    const spShare = handleOf(send(s.a, desc({ ranges: [{ address: SHARED + PAGE, pageCount: 1 }] })));
    expect(code(s.a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(spShare), hi(spShare), FFA_MEM_RECLAIM_FLAG.CLEAR))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(s.a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(peerShare), hi(peerShare), FFA_MEM_RECLAIM_FLAG.CLEAR))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(s.a.memory.read(SHARED, 4)).toEqual(new Uint8Array([7, 7, 7, 7]));
  });

  // Was a DEFECT (low, fixed 2026-12-05): PeerMemory.retrieve zeroed a lend made with the zero flag whenever no
  // borrower holds it (retrievedBy.size === 0), so a borrower that relinquishes (without the zero flag)
  // and retrieves again finds what it wrote wiped. The zero flag of FFA_MEM_LEND asks for the region to be
  // cleared once, before the borrower first sees it (Hafnium clears it as the lend is made); it is not a
  // clear on every retrieval. (The model has no stage 2: the borrower's writes land in the lender's pages,
  // which is what the lender's write stands for here.)
  it("a zero-flag lend is cleared once: a second retrieve after a relinquish keeps what was written", () => {
    const s = setup();
    up(s.a);
    up(s.b);
    const r = send(s.a, desc({ flags: FFA_MEM_FLAG.CLEAR, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }] }), F.FFA_MEM_LEND.smc32);
    expect(r.x0).toBe(SUCCESS);
    const h = handleOf(r);
    const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [] }, "v1.1");
    const retrieve = () => {
      s.b.memory.write(TX, q);
      expect(s.b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0).x0).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
      expect(s.b.vcpu(0).smc(F.FFA_RX_RELEASE.smc32, 0).x0).toBe(SUCCESS);
    };
    retrieve();
    s.a.memory.write(SHARED, new Uint8Array([0x44, 0x44])); // the borrower's data in the lent page
    s.b.memory.write(TX, encodeRelinquish({ handle: h, flags: 0, endpoints: [2] }));
    expect(s.b.vcpu(0).smc(F.FFA_MEM_RELINQUISH.smc32, 0, 0, 0).x0).toBe(SUCCESS);
    retrieve();
    expect(s.a.memory.read(SHARED, 2)).toEqual(new Uint8Array([0x44, 0x44]));
  });

  it("the lender cannot reclaim while the peer holds it; the borrower's destroy gives it back", () => {
    const { m, a, b, clean } = setup();
    up(a);
    up(b);
    const h = handleOf(send(a, desc({ receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }] })));
    const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [] }, "v1.1");
    b.memory.write(TX, q);
    expect(b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0).x0).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
    expect(code(a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(h), hi(h), 0))).toBe(FFA_RET.DENIED);
    expect(m.hypervisor.destroyDomain("b")).toBe(true);
    expect(a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(h), hi(h), 0).x0).toBe(SUCCESS);
    clean("a", 1);
  });
});

describe("OP-TEE's partition over FF-A", () => {
  const direct = (vm: Vm, sender: number, w3: number, w4 = 0, w5 = 0, w6 = 0, w7 = 0) => vm.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(sender, OPTEE), 0, w3, w4, w5, w6, w7);

  it("b's yielding call naming a's region (shared with OP-TEE) is refused and OP-TEE never retrieves it", () => {
    const { a, b, spmc } = setup();
    up(a);
    up(b);
    const h = handleOf(send(a, desc({ receivers: [{ receiver: OPTEE, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }] })));
    // OPTEE_FFA_YIELDING_CALL_WITH_ARG = bit 31 | 0 (thread_spmc.c).
    const r = direct(b, 2, 0x8000_0000, lo(h), hi(h), 0);
    expect(r.x0).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32));
    expect(r.x(3)).not.toBe(0n);
    expect(spmc.counters(1)).toMatchObject({ shares: 1, retrieved: 0 });
    // UNREGISTER_SHM (service 3 in the blocking range) of a's handle from b: a's region is not b's.
    direct(b, 2, 3, lo(h), hi(h));
    expect(spmc.counters(1)).toMatchObject({ shares: 1, retrieved: 0 });
  });

  const words = (r: CallResult) => [3, 4, 5, 6, 7].map((n) => Number(r.x(n) & 0xffff_ffffn));
  const ARG = SHARED + 0x10_000n;
  /** a's argument region shared with OP-TEE, and an OPEN_SESSION to hello world started in it: OP-TEE stops in its GET_TIME RPC. */
  function suspended(s: ReturnType<typeof setup>) {
    up(s.a);
    up(s.b);
    const h = handleOf(send(s.a, desc({ receivers: [{ receiver: OPTEE, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: ARG, pageCount: 1 }] })));
    const [u0, u1] = uuidToValues(HELLO_WORLD_UUID);
    const meta = (x: bigint, y: bigint): MsgParam => ({ attr: BigInt(ATTR.VALUE_INPUT | ATTR_META), a: x, b: y, c: 0n });
    s.a.memory.write(ARG, encodeMsg({ cmd: MSG_CMD.OPEN_SESSION, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [meta(u0, u1), meta(0n, 0n)] }));
    expect(words(direct(s.a, 1, 0x8000_0000, lo(h), hi(h), 0)).slice(0, 2)).toEqual([0, 0]);
    const opened = decodeMsg(s.a.memory.read(ARG, msgSize(2))!, 2);
    expect(opened.ret).toBe(0);
    // INVOKE_COMMAND (hello world's INC_VALUE asks the normal world for the time: an RPC).
    const msg: MsgArg = { cmd: MSG_CMD.INVOKE_COMMAND, func: 0, session: opened.session, cancelId: 0, ret: 0, retOrigin: 0, params: [{ attr: BigInt(ATTR.VALUE_INOUT), a: 41n, b: 0n, c: 0n }] };
    s.a.memory.write(ARG, encodeMsg(msg));
    const w = words(direct(s.a, 1, 0x8000_0000, lo(h), hi(h), 0));
    expect(w.slice(0, 2)).toEqual([0, 1]); // status 0, RETURN RPC_CMD
    expect(s.spmc.counters(1)).toMatchObject({ retrieved: 1 });
    /** Answers the RPC (the time) and resumes thread `w[3]` as `vm`: the final words. */
    const finish = (vm: Vm = s.a, sender = 1) => {
      const at = ARG + BigInt(msgSize(msg.params.length));
      const n = headerNumParams(s.a.memory.read(at, 32)!);
      const rpc = decodeMsg(s.a.memory.read(at, msgSize(n))!, n);
      rpc.params[0]!.a = 1_700_000_000n;
      rpc.ret = TEEC.SUCCESS;
      s.a.memory.write(at, encodeMsg(rpc));
      return words(direct(vm, sender, 0x8000_0001, 0, 0, 0, w[4]));
    };
    return { h, thread: w[4]!, finish };
  }

  it("a VM that leaves calls suspended in RPCs gets BUSY at its share of OP-TEE's threads; b still gets a thread", () => {
    const s = setup();
    const first = suspended(s);
    const [u0, u1] = uuidToValues(HELLO_WORLD_UUID);
    const meta = (x: bigint, y: bigint): MsgParam => ({ attr: BigInt(ATTR.VALUE_INPUT | ATTR_META), a: x, b: y, c: 0n });
    // More invokes of a's session, each at its own offset in the region, none answered.
    let busy = -1;
    for (let k = 1; k < 16 && busy < 0; k++) {
      const off = k * 256;
      s.a.memory.write(ARG + BigInt(off), encodeMsg({ cmd: MSG_CMD.INVOKE_COMMAND, func: 0, session: 1, cancelId: 0, ret: 0, retOrigin: 0, params: [{ attr: BigInt(ATTR.VALUE_INOUT), a: 1n, b: 0n, c: 0n }] }));
      const w = words(direct(s.a, 1, 0x8000_0000, lo(first.h), hi(first.h), off));
      if (w[0] !== 0) busy = w[0]!;
    }
    expect(busy).toBe(TEEC.ERROR_BUSY >>> 0);
    const held = m_counters(s).threads;
    // b opens a session and completes it: a's suspended calls do not starve it.
    const hb = handleOf(send(s.b, desc({ sender: 2, receivers: [{ receiver: OPTEE, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: ARG, pageCount: 1 }] })));
    s.b.memory.write(ARG, encodeMsg({ cmd: MSG_CMD.OPEN_SESSION, func: 0, session: 0, cancelId: 0, ret: 0, retOrigin: 0, params: [meta(u0, u1), meta(0n, 0n)] }));
    expect(words(direct(s.b, 2, 0x8000_0000, lo(hb), hi(hb), 0)).slice(0, 2)).toEqual([0, 0]);
    expect(decodeMsg(s.b.memory.read(ARG, msgSize(2))!, 2).ret).toBe(0);
    expect(m_counters(s).threads).toBe(held);
    // a's reset frees every thread it held.
    s.m.hypervisor.resetDomain("a");
    expect(s.m.hypervisor.optee!.counters(1)).toMatchObject({ threads: 0, sessions: 0 });
  });

  it("b cannot resume a's OP-TEE thread suspended in an RPC; a still can", () => {
    const s = setup();
    const { thread, finish } = suspended(s);
    const other = words(direct(s.b, 2, 0x8000_0001, 0, 0, 0, thread));
    expect(other[0]).not.toBe(0);
    expect(m_counters(s).threads).toBe(1);
    const done = finish();
    expect(done.slice(0, 2)).toEqual([0, 0]);
    const back = decodeMsg(s.a.memory.read(ARG, msgSize(1))!, 1);
    expect([back.ret, back.params[0]!.a]).toEqual([0, 42n]);
    expect(m_counters(s)).toMatchObject({ sessions: 1, threads: 0 });
  });

  function m_counters(s: ReturnType<typeof setup>) {
    return s.m.hypervisor.optee!.counters(1);
  }

  it("UNREGISTER_SHM of the region a suspended call uses is BUSY, RECLAIM of it DENIED; both succeed after the call", () => {
    const s = setup();
    const { h, finish } = suspended(s);
    expect(words(direct(s.a, 1, 3, lo(h), hi(h)))[0]).toBe(FFA_RET.BUSY >>> 0);
    expect(code(s.a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(h), hi(h), 0))).toBe(FFA_RET.DENIED);
    expect(finish().slice(0, 2)).toEqual([0, 0]);
    expect(words(direct(s.a, 1, 3, lo(h), hi(h)))[0]).toBe(0);
    expect(s.a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(h), hi(h), 0).x0).toBe(SUCCESS);
    expect(s.spmc.counters(1)).toMatchObject({ shares: 0, retrieved: 0 });
  });

  it("destroying a VM whose OP-TEE call waits in an RPC leaves OP-TEE, the SPMC and the mediator holding nothing of it", () => {
    const s = setup();
    suspended(s);
    expect(s.m.hypervisor.destroyDomain("a")).toBe(true);
    expect(Object.values(m_counters(s) ?? {}).every((v) => v === 0)).toBe(true);
    expect(s.spmc.counters(1)).toMatchObject({ known: false, shares: 0, retrieved: 0, partitions: 0 });
    expect(s.med.stuck).toEqual([]);
  });

  it("an argument offset past the region, or a region of another VM, is refused without a thread", () => {
    const s = setup();
    up(s.a);
    up(s.b);
    const h = handleOf(send(s.a, desc({ receivers: [{ receiver: OPTEE, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: ARG, pageCount: 1 }] })));
    for (const off of [4090, 4096, 0xffff_ffff]) expect(words(direct(s.a, 1, 0x8000_0000, lo(h), hi(h), off))[0], `offset ${off}`).not.toBe(0);
    expect(words(direct(s.b, 2, 0x8000_0000, lo(h), hi(h), 0))[0]).not.toBe(0);
    expect(m_counters(s).threads).toBe(0);
  });

  it("VM_CREATED / VM_DESTROYED spoofed through the framework bit of a VM's direct request are INVALID_PARAMETERS", () => {
    const { a, b, m } = setup();
    up(a);
    up(b);
    for (const type of [FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ, FFA_FRAMEWORK_MSG.VM_CREATED_REQ]) {
      for (const [sender, target] of [[1, OPTEE], [1, SP]] as const) {
        const r = a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(sender, target), FFA_MSG_FLAG_FRAMEWORK | type, 0, 0, 2);
        expect(code(r)).toBe(FFA_RET.INVALID_PARAMETERS);
      }
      const r64 = a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc64, ffaEndpoints(1, SP), FFA_MSG_FLAG_FRAMEWORK | type, 0, 0, 2);
      expect(code(r64)).toBe(FFA_RET.INVALID_PARAMETERS);
      // With the hypervisor as sender: refused on the sender field first.
      expect(code(a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(0, SP), FFA_MSG_FLAG_FRAMEWORK | type, 0, 0, 2))).toBe(FFA_RET.INVALID_PARAMETERS);
    }
    // b is still a guest of OP-TEE: its blocking GET_API_VERSION (0) answers.
    const v = b.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(2, OPTEE), 0, 0);
    expect(v.x0).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32));
    expect(m.hypervisor.spmc!.counters(2)).toMatchObject({ known: true, partitions: 2 });
  });

  it("a VM's direct request naming another VM as sender is INVALID_PARAMETERS", () => {
    const { a } = setup();
    up(a, V12);
    for (const s of [2, 0, 3, OPTEE]) expect(code(a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(s, OPTEE), 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, ffaEndpoints(2, SP), ...ffaUuidRegsOf(TEST_PARTITION_UUID), TEST_SP_CMD.ECHO))).toBe(FFA_RET.INVALID_PARAMETERS);
  });
});

function ffaUuidRegsOf(uuid: string): [bigint, bigint] {
  const w = ffaUuidWords(uuid).map(BigInt);
  return [w[0]! | (w[1]! << 32n), w[2]! | (w[3]! << 32n)];
}

describe("notifications", () => {
  it("binding for another VM, setting as another VM or toward a partition the VM may not use: INVALID_PARAMETERS", () => {
    const { a, e } = setup();
    up(a);
    up(e);
    const bind = (vm: Vm, w1: number) => code(vm.vcpu(0).smc(F.FFA_NOTIFICATION_BIND.smc32, w1, 0, 1, 0));
    expect(bind(a, ffaEndpoints(SP, 2))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(bind(e, ffaEndpoints(SP, 5))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(bind(a, ffaEndpoints(2, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(a.vcpu(0).smc(F.FFA_NOTIFICATION_SET.smc32, ffaEndpoints(2, SP), 0, 1, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(a.vcpu(0).smc(F.FFA_NOTIFICATION_GET.smc32, 2, FFA_NOTIFICATION.GET_SP))).toBe(FFA_RET.INVALID_PARAMETERS);
  });

  it("INFO_GET tells a VM only of itself: b learns nothing of a's pending notifications, a's are not lost", () => {
    const { a, b } = setup();
    up(a);
    up(b);
    expect(a.vcpu(0).smc(F.FFA_NOTIFICATION_BIND.smc32, ffaEndpoints(SP, 1), 0, 1, 0).x0).toBe(SUCCESS);
    // The partition sets a's notification 0 (NOTIFY: VM ID, bitmap low, high).
    const n = a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(1, SP), 0, TEST_SP_CMD.NOTIFY, 1, 1, 0);
    expect(n.x(3)).toBe(0n);
    const bi = b.vcpu(0).smc(F.FFA_NOTIFICATION_INFO_GET.smc64, 0, 0, 0);
    expect(code(bi)).toBe(FFA_RET.NO_DATA);
    for (let r = 3; r < 8; r++) expect(bi.x(r)).toBe(0n);
    const ai = a.vcpu(0).smc(F.FFA_NOTIFICATION_INFO_GET.smc64, 0, 0, 0);
    expect(ai.x0).toBe(BigInt(F.FFA_SUCCESS.smc64));
    expect(ai.x(3) & 0xffffn).toBe(1n);
    const g = a.vcpu(0).smc(F.FFA_NOTIFICATION_GET.smc32, 1, FFA_NOTIFICATION.GET_SP);
    expect(g.x(2)).toBe(1n);
  });

  // Was a DEFECT (fixed 2026-12-05: the SPMC takes SET, and DENIES it, since no partition here binds a
  // VM's notifications): FFA_FEATURES told a v1.1+ VM that FFA_NOTIFICATION_SET was supported
  // (Notifications.offered, src/mediators/ffa/notifications.ts) and the mediator forwards it, but the
  // modelled SPMC has no NOTIFICATION_SET for the hypervisor's calls (notificationCall in
  // src/firmware/spmc/notification-calls.ts falls to NOT_SUPPORTED), so every SET a VM makes to a partition
  // it may use fails. DEN0077 §13.3: FEATURES reports only what the callee implements; Hafnium's SPMC takes
  // SET from a VM (sender = the VM ID the hypervisor names). Either the SPMC implements it or FEATURES and
  // the README stop offering it.
  it("FFA_NOTIFICATION_SET that FEATURES offers reaches the SPMC: DENIED, since the partition bound nothing of the VM's", () => {
    const { a } = setup();
    up(a);
    expect(a.vcpu(0).smc(F.FFA_FEATURES.smc32, F.FFA_NOTIFICATION_SET.smc32, 0, 0).x0).toBe(SUCCESS);
    expect(code(a.vcpu(0).smc(F.FFA_NOTIFICATION_SET.smc32, ffaEndpoints(1, SP), 0, 1, 0))).toBe(FFA_RET.DENIED);
  });

  it("the partition cannot be made to set notifications for another VM", () => {
    const { a, b } = setup();
    up(a);
    up(b);
    expect(b.vcpu(0).smc(F.FFA_NOTIFICATION_BIND.smc32, ffaEndpoints(SP, 2), 0, 1, 0).x0).toBe(SUCCESS);
    // a asks the test partition to notify b. That is the test partition's own choice (it names the VM);
    // what must hold is that a gets nothing of b's and b's pending state is b's alone.
    a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(1, SP), 0, TEST_SP_CMD.NOTIFY, 2, 1, 0);
    expect(code(a.vcpu(0).smc(F.FFA_NOTIFICATION_INFO_GET.smc64, 0, 0, 0))).toBe(FFA_RET.NO_DATA);
    expect(code(a.vcpu(0).smc(F.FFA_NOTIFICATION_GET.smc32, 2, FFA_NOTIFICATION.GET_SP))).toBe(FFA_RET.INVALID_PARAMETERS);
  });
});

describe("RX/TX", () => {
  it("mapping the heap, another VM's RAM, secure memory or past the end of RAM by IPA is INVALID_PARAMETERS", () => {
    const { m, a, pa } = setup();
    a.vcpu(0).smc(F.FFA_VERSION.smc32, V12);
    const heap = m.hypervisor.heap.base;
    for (const [t, r] of [[heap, RX], [TX, heap], [pa("b"), RX], [IPA + RAM, RX], [0n, RX], [TX, TX + PAGE * 0x1_0000_0000n]] as const) {
      expect(code(a.vcpu(0).smc(F.FFA_RXTX_MAP.smc64, t, r, 1)), `${t.toString(16)} ${r.toString(16)}`).toBe(FFA_RET.INVALID_PARAMETERS);
    }
    // 4 pages ending past RAM.
    expect(code(a.vcpu(0).smc(F.FFA_RXTX_MAP.smc64, IPA + RAM - 2n * PAGE, RX, 4))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(a.vcpu(0).smc(F.FFA_RXTX_MAP.smc64, TX, RX, 64))).toBe(FFA_RET.INVALID_PARAMETERS);
  });

  it("mapping RX/TX over pages shared with a partition is DENIED; unmapping and remapping there too", () => {
    const { a } = setup();
    up(a);
    expect(send(a, desc({ ranges: [{ address: SHARED, pageCount: 2 }] })).x0).toBe(SUCCESS);
    expect(a.vcpu(0).smc(F.FFA_RXTX_UNMAP.smc32, 0).x0).toBe(SUCCESS);
    expect(code(a.vcpu(0).smc(F.FFA_RXTX_MAP.smc64, SHARED + PAGE, RX, 1))).toBe(FFA_RET.DENIED);
    expect(code(a.vcpu(0).smc(F.FFA_RXTX_MAP.smc64, TX, SHARED, 1))).toBe(FFA_RET.DENIED);
  });

  it("RX_RELEASE of an RX the VM does not own, or naming a VM, is refused; a second release is DENIED", () => {
    const { a } = setup();
    up(a);
    expect(code(a.vcpu(0).smc(F.FFA_RX_RELEASE.smc32, 0))).toBe(FFA_RET.DENIED);
    expect(a.vcpu(0).smc(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0).x0).toBe(SUCCESS);
    expect(code(a.vcpu(0).smc(F.FFA_RX_RELEASE.smc32, 2))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(a.vcpu(0).smc(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0))).toBe(FFA_RET.BUSY);
    expect(a.vcpu(0).smc(F.FFA_RX_RELEASE.smc32, 0).x0).toBe(SUCCESS);
    expect(code(a.vcpu(0).smc(F.FFA_RX_RELEASE.smc32, 0))).toBe(FFA_RET.DENIED);
  });

  it("PARTITION_INFO_GET shows a VM only the partitions it may use and its mutual peers", () => {
    const { e } = setup();
    up(e, V12);
    expect(code(e.vcpu(0).smc(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(TEST_PARTITION_UUID), 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(e.vcpu(0).smc(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(OPTEE_FFA_UUID), 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(e.vcpu(0).smc(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(e.vcpu(0).smc(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0, 0, 0))).toBe(FFA_RET.INVALID_PARAMETERS);
  });
});

describe("VM-to-VM messaging", () => {
  it("requests to non-peers, to itself or to a VM without FF-A are INVALID_PARAMETERS; to a peer not waiting BUSY", () => {
    const { a, e, b } = setup();
    up(a);
    up(e);
    up(b);
    for (const to of [5, 1, 3, 0x7fff, 0, 0x8000, 0x8003]) expect(code(a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(1, to), 0, 1)), `to ${to}`).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(e.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(5, 1), 0, 1))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(1, 2), 0, 1))).toBe(FFA_RET.BUSY);
  });

  it("a response from a VM that serves no request, or to the wrong VM, is refused; the sender gets the right answer", async () => {
    const { a, b, d } = setup();
    up(a);
    up(b);
    up(d);
    const wait = b.vcpu(0).callAsync("smc", F.FFA_MSG_WAIT.smc32);
    const req = a.vcpu(0).callAsync("smc", F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(1, 2), 0, 42]);
    expect((await wait).x(3)).toBe(42n);
    // d serves nothing: DENIED; b answers as d, or to d: INVALID_PARAMETERS.
    expect(code(d.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_RESP.smc32, ffaEndpoints(4, 1), 0, 666))).toBe(FFA_RET.DENIED);
    expect(code(b.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_RESP.smc32, ffaEndpoints(4, 1), 0, 666))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(b.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_RESP.smc32, ffaEndpoints(2, 4), 0, 666))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(code(b.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_RESP.smc64, ffaEndpoints(2, 1), 0, 666))).toBe(FFA_RET.INVALID_PARAMETERS);
    void b.vcpu(0).callAsync("smc", F.FFA_MSG_SEND_DIRECT_RESP.smc32, [ffaEndpoints(2, 1), 0, 7]);
    const got = await req;
    expect([got.x0, got.x(3)]).toEqual([BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), 7n]);
  });

  it("destroying the receiver answers the waiting sender ABORTED; destroying a waiting VM leaves no messaging state", async () => {
    const { m, a, b, med } = setup();
    up(a);
    up(b);
    const wait = b.vcpu(0).callAsync("smc", F.FFA_MSG_WAIT.smc32);
    const req = a.vcpu(0).callAsync("smc", F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(1, 2), 0, 1]);
    await wait;
    expect(m.hypervisor.destroyDomain("b")).toBe(true);
    expect(code(await req)).toBe(FFA_RET.ABORTED);
    expect(med.counters("a").messaging).toBe(0);
  });

  // Was a defect (found 2026-12-05): peerRequest kept one `awaiting` peer per VM although every vCPU may
  // send, so a second vCPU's request made the mediator forget the first; destroy or reset then aborted only
  // one. Fixed by refusing a VM's second outstanding peer request (BUSY); Hafnium tracks them per vCPU.
  it("a VM with requests outstanding to two peers from two vCPUs: the second is BUSY, and destroying it aborts the first", async () => {
    const { m, a, b, d, med } = setup();
    up(a);
    up(b);
    up(d);
    expect(a.vcpu(0).smc(0xc400_0003, 1, IPA, 0).x0).toBe(0n); // PSCI CPU_ON of vCPU 1
    const wb = b.vcpu(0).callAsync("smc", F.FFA_MSG_WAIT.smc32);
    const wd = d.vcpu(0).callAsync("smc", F.FFA_MSG_WAIT.smc32);
    const r0 = a.vcpu(0).callAsync("smc", F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(1, 2), 0, 1]);
    const r1 = a.vcpu(1).callAsync("smc", F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(1, 4), 0, 2]);
    await wb;
    void wd; // d keeps waiting: a's second request never reached it
    let settled0 = false;
    void r0.then(() => (settled0 = true), () => (settled0 = true));
    expect(code(await r1)).toBe(FFA_RET.BUSY);
    expect(m.hypervisor.destroyDomain("a")).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    // Both of a's calls were answered at destroy; b's and d's service no longer points at a's calls.
    expect(settled0).toBe(true);
    const serving = (name: string) => (med as unknown as { vm(n: string): { serving: { sender: unknown } | null } }).vm(name)!.serving?.sender ?? null;
    expect(serving("b")).toBeNull();
    expect(serving("d")).toBeNull();
  });

  // The same defect seen from the rebooted VM: b's DIRECT_RESP completed the pre-reset call of a's vCPU 0
  // and the in-process backend wrote b's registers into the new boot's vCPU 0. With one request per VM the
  // reset aborts it (ABORTED lands at the reset itself) and b's late response goes nowhere.
  it("after a reset, a peer's late response does not reach the new boot's vCPU", async () => {
    const { m, a, b, d } = setup();
    up(a);
    up(b);
    up(d);
    expect(a.vcpu(0).smc(0xc400_0003, 1, IPA, 0).x0).toBe(0n); // PSCI CPU_ON of vCPU 1
    const wb = b.vcpu(0).callAsync("smc", F.FFA_MSG_WAIT.smc32, [0, 0]);
    const wd = d.vcpu(0).callAsync("smc", F.FFA_MSG_WAIT.smc32, [0, 0]);
    const old = a.vcpu(0).callAsync("smc", F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(1, 2), 0, 1]);
    void a.vcpu(1).callAsync("smc", F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(1, 4), 0, 2]).catch(() => {});
    await wb;
    void wd;
    await m.hypervisor.resetDomain("a");
    void old.catch(() => {});
    const before = a.vcpu(0).getX(3);
    void b.vcpu(0).callAsync("smc", F.FFA_MSG_SEND_DIRECT_RESP.smc32, [ffaEndpoints(2, 1), 0, 0xdead]).catch(() => {});
    await new Promise((r) => setTimeout(r, 10));
    expect(a.vcpu(0).getX(3)).toBe(before);
    expect(a.vcpu(0).getX(3)).not.toBe(0xdeadn);
  });

  it("MSG_SEND2: a spoofed sender, a size past TX, a non-peer: INVALID_PARAMETERS; a full RX: BUSY", () => {
    const { a, b, e } = setup();
    up(a);
    up(b);
    up(e);
    const msg = (sender: number, receiver: number, offset: number, size: number) => {
      const h = new Uint8Array(40);
      const v = new DataView(h.buffer);
      v.setUint32(8, offset, true);
      v.setUint32(12, ffaEndpoints(sender, receiver), true);
      v.setUint32(16, size, true);
      return h;
    };
    const send2 = (vm: Vm, h: Uint8Array) => {
      vm.memory.write(TX, h);
      return code(vm.vcpu(0).smc(F.FFA_MSG_SEND2.smc32, 0, 0));
    };
    expect(send2(a, msg(2, 1, 40, 8))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(send2(a, msg(1, 2, 40, 4096))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(send2(a, msg(1, 2, 0xffff_fff0, 0x20))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(send2(a, msg(1, 2, 8, 8))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(send2(a, msg(1, 5, 40, 8))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(send2(e, msg(5, 1, 40, 8))).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(send2(a, msg(1, 2, 40, 8))).toBe("ok");
    expect(send2(a, msg(1, 2, 40, 8))).toBe(FFA_RET.BUSY);
  });
});

describe("version games", () => {
  it("v1.0 then v1.2 after the first other call is NOT_SUPPORTED, and the VM keeps v1.0's layouts", () => {
    const { a } = setup();
    up(a, V10);
    expect(Number(BigInt.asIntN(32, a.vcpu(0).smc(F.FFA_VERSION.smc32, V12).x0))).toBe(FFA_RET.NOT_SUPPORTED);
    const info = a.vcpu(0).smc(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(TEST_PARTITION_UUID), 0);
    expect([info.x0, info.x(2), info.x(3)]).toEqual([SUCCESS, 1n, 0n]);
    // v1.1+ calls are not offered to a v1.0 VM.
    expect(code(a.vcpu(0).smc(F.FFA_MSG_SEND2.smc32, 0, 0))).toBe(FFA_RET.NOT_SUPPORTED);
    expect(code(a.vcpu(0).smc(F.FFA_NOTIFICATION_INFO_GET.smc64, 0, 0, 0))).toBe(FFA_RET.NOT_SUPPORTED);
  });

  it("after a reset the VM negotiates again and nothing of its previous boot remains", () => {
    const { m, a, clean } = setup();
    up(a, V10);
    expect(send(a, desc({}, "v1.0")).x0).toBe(SUCCESS);
    m.hypervisor.resetDomain("a");
    clean("a", 0);
    up(a, V12);
    // The page shared before the reset may be shared again (the SPMC dropped it).
    expect(send(a, desc({}, "v1.2")).x0).toBe(SUCCESS);
  });
});

describe("FFA_VERSION's NOT_SUPPORTED", () => {
  // DEFECT (compatibility): src/mediators/ffa/README.md ("Wiring", item 2) asks the router to write
  // FFA_VERSION's NOT_SUPPORTED as -1 over all 64 bits of x0 (Linux 6.1's ffa_version_check compares the
  // unsigned long a0 with FFA_RET_NOT_SUPPORTED), and FfaMediator.version's comment says it does; the
  // router (src/router/router.ts) zero-extends the SMC32 result, so an AArch64 guest reads 0xffffffff.
  it.fails("an unsupported version is -1 in all of x0 for an AArch64 caller", () => {
    const { a } = setup();
    expect(a.vcpu(0).smc(F.FFA_VERSION.smc32, 0x8001_0001).x0).toBe(0xffff_ffff_ffff_ffffn);
  });
});

describe("growth: what refused and accepted calls leave behind", () => {
  it("thousands of refused MEM_SHAREs at new addresses, RETRIEVEs of guessed handles and bad FRAG_TXs leave nothing", () => {
    const { a, b, spmc, clean, med } = setup();
    up(a);
    up(b);
    for (let i = 0; i < 3000; i++) {
      const address = i % 3 === 0 ? IPA + RAM + BigInt(i) * PAGE : i % 3 === 1 ? TX : IPA + BigInt(i % 4096) * PAGE + 8n;
      send(a, desc({ ranges: [{ address, pageCount: 1 + (i % 7) }] }));
      const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: BigInt(i) | (1n << 63n), tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }], ranges: [] }, "v1.1");
      b.memory.write(TX, q);
      b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0);
      a.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, i, 0, 16, 0);
    }
    clean("a", 1);
    clean("b", 1);
    expect(med.stuck).toEqual([]);
    expect(spmc.counters(1)).toMatchObject({ bindings: 0, pendingNotifications: 0 });
  });

  it("share-reclaim cycles and aborted fragments, thousands of times, leave nothing at the mediator or the SPMC", () => {
    const { a, clean } = setup();
    up(a);
    for (let i = 0; i < 500; i++) {
      const r = send(a, desc({ ranges: [{ address: SHARED + BigInt(i % 64) * PAGE, pageCount: 1 }] }));
      expect(r.x0).toBe(SUCCESS);
      const h = handleOf(r);
      expect(a.vcpu(0).smc(F.FFA_MEM_RECLAIM.smc32, lo(h), hi(h), 0).x0).toBe(SUCCESS);
      const bytes = desc({ ranges: scattered(2) });
      const f = send(a, bytes, F.FFA_MEM_LEND.smc32, bytes.length - 16);
      expect(f.x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
      a.vcpu(0).smc(F.FFA_MEM_FRAG_TX.smc32, Number(f.x(1)) ^ 1, Number(f.x(2)), 16, 0);
    }
    clean("a", 1);
  });

  it("the transaction limit is NO_MEMORY, not growth", () => {
    const { a, spmc } = setup();
    up(a);
    let ok = 0;
    for (let i = 0; i < 100; i++) {
      const r = send(a, desc({ ranges: [{ address: SHARED + BigInt(i) * PAGE, pageCount: 1 }] }));
      if (r.x0 === SUCCESS) ok++;
      else expect(code(r)).toBe(FFA_RET.NO_MEMORY);
    }
    expect(ok).toBe(64);
    expect(spmc.counters(1)).toMatchObject({ shares: 64 });
  });

  it("the peer-retrieve limit holds: 64 retrieved by one borrower, RX released between", () => {
    const { a, b, d, med } = setup();
    up(a);
    up(b);
    up(d);
    const handles: bigint[] = [];
    for (let i = 0; i < 64; i++) handles.push(handleOf(send(a, desc({ receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }], ranges: [{ address: SHARED + BigInt(i) * PAGE, pageCount: 1 }] }))));
    for (const h of handles) {
      const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: h, tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }], ranges: [] }, "v1.1");
      b.memory.write(TX, q);
      const r = b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0);
      expect(r.x0, `FFA_ERROR ${code(r)}`).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
      expect(b.vcpu(0).smc(F.FFA_RX_RELEASE.smc32, 0).x0).toBe(SUCCESS);
    }
    expect(med.counters("b").retrieved).toBe(64);
    // A 65th: b must hold 64 already. d's are another VM's.
    const h = handleOf(send(d, desc({ sender: 4, receivers: [{ receiver: 1, permissions: FFA_MEM_PERM.DATA_RO, flags: 0 }] })));
    expect(h).toBeGreaterThan(0n);
  });
});

describe("teardown with everything in flight", () => {
  it("destroy with a share held by OP-TEE, one by the partition, a fragment, a peer loan retrieved, a bound notification and a waiting peer: nothing left anywhere", async () => {
    const { m, a, b, spmc, med } = setup();
    up(a);
    up(b);
    // A share to the test partition, one lent to b and retrieved, one to OP-TEE that OP-TEE retrieves
    // (a yielding call with it as argument region makes OP-TEE hold it until UNREGISTER_SHM).
    expect(send(a, desc()).x0).toBe(SUCCESS);
    const lent = handleOf(send(a, desc({ receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED + PAGE, pageCount: 1 }] }), F.FFA_MEM_LEND.smc32));
    const q = encodeMemTransaction({ sender: 1, attributes: 0, flags: 0, handle: lent, tag: 0n, receivers: [{ receiver: 2, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [] }, "v1.1");
    b.memory.write(TX, q);
    expect(b.vcpu(0).smc(F.FFA_MEM_RETRIEVE_REQ.smc32, q.length, q.length, 0, 0).x0).toBe(BigInt(F.FFA_MEM_RETRIEVE_RESP.smc32));
    const toOptee = handleOf(send(a, desc({ receivers: [{ receiver: OPTEE, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED + 2n * PAGE, pageCount: 1 }] })));
    a.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(1, OPTEE), 0, 0x8000_0000, lo(toOptee), hi(toOptee), 0);
    expect(spmc.counters(1)).toMatchObject({ retrieved: 1 });
    expect(a.vcpu(0).smc(F.FFA_NOTIFICATION_BIND.smc32, ffaEndpoints(SP, 1), 0, 1, 0).x0).toBe(SUCCESS);
    const bytes = desc({ ranges: scattered(3, SHARED + 0x10_0000n) });
    expect(send(a, bytes, F.FFA_MEM_SHARE.smc32, bytes.length - 16).x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    expect(a.vcpu(0).smc(0xc400_0003, 1, IPA, 0).x0).toBe(0n); // PSCI CPU_ON of vCPU 1
    const wait = a.vcpu(1).callAsync("smc", F.FFA_MSG_WAIT.smc32);
    expect(m.hypervisor.destroyDomain("a")).toBe(true);
    expect(code(await wait)).toBe(FFA_RET.ABORTED);
    expect(spmc.counters(1)).toEqual({ known: false, partitions: 0, shares: 0, fragments: 0, pages: 0, retrieved: 0, bitmaps: 0, bindings: 0, pendingNotifications: 0 });
    expect(med.stuck).toEqual([]);
    expect(med.counters("b")).toMatchObject({ retrieved: 0 });
    expect(Object.values(m.hypervisor.optee!.counters(1) ?? {}).every((v) => v === 0)).toBe(true);
  });

  it("reset with the same in flight: the new boot starts from nothing and the SPMC knows the VM afresh", () => {
    const { m, a, b, spmc, clean } = setup();
    up(a);
    up(b);
    expect(send(a, desc()).x0).toBe(SUCCESS);
    expect(a.vcpu(0).smc(F.FFA_NOTIFICATION_BIND.smc32, ffaEndpoints(SP, 1), 0, 1, 0).x0).toBe(SUCCESS);
    const bytes = desc({ ranges: scattered(3, SHARED + 0x10_0000n) });
    expect(send(a, bytes, F.FFA_MEM_SHARE.smc32, bytes.length - 16).x0).toBe(BigInt(F.FFA_MEM_FRAG_RX.smc32));
    m.hypervisor.resetDomain("a");
    clean("a", 0);
    expect(spmc.counters(1)).toMatchObject({ known: true, partitions: 2, bindings: 0, pendingNotifications: 0 });
    // Calls before FFA_VERSION are NOT_SUPPORTED again.
    expect(code(a.vcpu(0).smc(F.FFA_ID_GET.smc32, 0))).toBe(FFA_RET.NOT_SUPPORTED);
  });
});

void FFA_MEM_FLAG;
void FFA_MEM_TRANSACTION;

describe("the fuzzer and FF-A", () => {
  // DEFECT (coverage): `smcvisor fuzz` does not drive FF-A past its first check. Its FF-A calls come from
  // the VMs' claims with the generic attacker's arguments (0, all ones, RAM addresses...), so FFA_VERSION
  // never gets a 1.x version and every other FF-A call is NOT_SUPPORTED "before FFA_VERSION": with the
  // config below and 200,000 calls, about 10,000 reach the mediator and not one is answered with anything
  // but an error. src/fuzz/guest.ts needs a stateful FF-A driver, as it has for OP-TEE's SMC ABI (the
  // report lists what it needs).
  it.fails("a fuzz campaign on an FF-A config gets FFA_VERSION, RXTX_MAP and a memory share answered", async () => {
    const parsed = parseConfigText(CONFIG);
    if (!parsed.ok) throw new Error("config");
    const ok = new Map<number, number>();
    await runCampaign({
      config: parsed.value, calls: 30_000, seed: 7, cwd: process.cwd(), reference: false, locate: false,
      tamper: (machine, role) => {
        if (role !== "subject") return;
        const med = machine.hypervisor.mediators.get("ffa")!;
        const handle = med.handle.bind(med);
        med.handle = (call, res, origin) => {
          const out = handle(call, res, origin);
          const x0 = Number(res.get(0) & 0xffff_ffffn);
          if (x0 !== F.FFA_ERROR.smc32 && x0 !== 0xffff_ffff) ok.set(call.fid >>> 0, (ok.get(call.fid >>> 0) ?? 0) + 1);
          return out;
        };
      },
    });
    expect(ok.get(F.FFA_VERSION.smc32) ?? 0).toBeGreaterThan(0);
    expect((ok.get(F.FFA_RXTX_MAP.smc64) ?? 0) + (ok.get(F.FFA_RXTX_MAP.smc32) ?? 0)).toBeGreaterThan(0);
    expect((ok.get(F.FFA_MEM_SHARE.smc32) ?? 0) + (ok.get(F.FFA_MEM_SHARE.smc64) ?? 0)).toBeGreaterThan(0);
  }, 60_000);
});
