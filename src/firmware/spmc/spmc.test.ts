import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FFA_FRAMEWORK_MSG,
  FFA_MSG_FLAG_FRAMEWORK,
  FFA_RET,
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  ffaEndpoints,
  ffaVersion,
} from "../../smccc/ffa/abi.js";
import { decodePartitionInfo, ffaUuidRegs, ffaUuidWords } from "../../smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { FakeSpmcMemory, smc } from "./harness.js";
import { TEST_SP_CMD, TEST_SP_PROPERTIES, TestPartition } from "./partitions/test-sp.js";
import { SpmcModel } from "./spmc.js";
import { SPMC_FEATURES } from "./features.js";
import {
  HYP_HEAP,
  RAM_A,
  RX,
  SP1,
  SP2,
  SP3,
  SP4,
  TX,
  UUID1,
  UUID2,
  VM_A,
  VM_B,
  VM_C,
  ZERO_COUNTERS,
  expectError,
  expectOk,
  world,
} from "./spmc-fixture.js";

const W = (x: bigint) => Number(x & 0xffff_ffffn);

describe("FFA_VERSION (DEN0077 v1.2 §13.2)", () => {
  it("answers its own version in w0; bit 31 set is NOT_SUPPORTED in all 64 bits (Linux 6.1 compares them all)", () => {
    const { call } = world({ version: FFA_VERSION_1_0 });
    expect(call(F.FFA_VERSION.smc32, 0x8001_0000)[0]).toBe(0xffff_ffff_ffff_ffffn);
    expect(call(F.FFA_VERSION.smc32, FFA_VERSION_1_1)[0]).toBe(BigInt(FFA_VERSION_1_2));
  });

  it("negotiates the caller's version up to 1.2, and a later minor down to 1.2; another major leaves it", () => {
    expect(world({ version: FFA_VERSION_1_1 }).spmc.negotiatedVersion).toBe(FFA_VERSION_1_1);
    expect(world({ version: ffaVersion(1, 7) }).spmc.negotiatedVersion).toBe(FFA_VERSION_1_2);
    expect(world({ version: ffaVersion(2, 0) }).spmc.negotiatedVersion).toBe(FFA_VERSION_1_0);
  });

  it("after the first other call the version is final: the same one is answered, another is NOT_SUPPORTED", () => {
    const { call, spmc } = world({ version: FFA_VERSION_1_1 });
    expectOk(call(F.FFA_ID_GET.smc32));
    expect(call(F.FFA_VERSION.smc32, FFA_VERSION_1_1)[0]).toBe(BigInt(FFA_VERSION_1_2));
    expect(call(F.FFA_VERSION.smc32, FFA_VERSION_1_0)[0]).toBe(0xffff_ffff_ffff_ffffn);
    expect(spmc.negotiatedVersion).toBe(FFA_VERSION_1_1);
  });

  it("a later request that would negotiate the same version is answered (1.7 after 1.2 was settled)", () => {
    const { call } = world({ version: ffaVersion(1, 7) });
    expectOk(call(F.FFA_ID_GET.smc32));
    expect(call(F.FFA_VERSION.smc32, ffaVersion(1, 9))[0]).toBe(BigInt(FFA_VERSION_1_2));
    expect(call(F.FFA_VERSION.smc32, ffaVersion(2, 0))[0]).toBe(0xffff_ffff_ffff_ffffn);
  });
});

describe("who may call: the hypervisor only", () => {
  it("a VM's call is FFA_ERROR(NOT_SUPPORTED) and changes nothing", () => {
    const { spmc, call } = world();
    const vm = { vmId: VM_A, vmName: "a", vcpu: 0 };
    expectError(smc(spmc, F.FFA_RXTX_MAP.smc64, [TX, RX, 1], vm), FFA_RET.NOT_SUPPORTED);
    expectError(smc(spmc, F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(0, SP1), FFA_MSG_FLAG_FRAMEWORK | 4, 0, 0, VM_A], vm), FFA_RET.NOT_SUPPORTED);
    expectError(smc(spmc, F.FFA_VERSION.smc32, [FFA_VERSION_1_0], vm), FFA_RET.NOT_SUPPORTED);
    expect(spmc.rxState().mapped).toBe(false);
    expect(spmc.counters(VM_A)).toEqual(ZERO_COUNTERS);
    expectOk(call(F.FFA_RXTX_MAP.smc64, TX, RX, 1));
  });
});

describe("FFA_FEATURES (§13.3): exactly what is implemented", () => {
  it("every offered function succeeds at 1.2; RXTX_MAP gives 4 KiB minimum and its maximum pages", () => {
    const { call, spmc } = world();
    for (const fid of SPMC_FEATURES.keys()) expectOk(call(F.FFA_FEATURES.smc32, fid));
    expect(W(call(F.FFA_FEATURES.smc32, F.FFA_RXTX_MAP.smc64)[2]!)).toBe(spmc.limits.maxRxTxPages << 16);
    expect(W(call(F.FFA_FEATURES.smc32, F.FFA_MEM_SHARE.smc64)[2]!)).toBe(0);
  });

  it.each([
    ["FFA_MEM_DONATE", F.FFA_MEM_DONATE.smc32],
    ["FFA_MEM_RETRIEVE_REQ", F.FFA_MEM_RETRIEVE_REQ.smc64],
    ["FFA_MEM_FRAG_RX", F.FFA_MEM_FRAG_RX.smc32],
    ["FFA_MSG_SEND2", F.FFA_MSG_SEND2.smc32],
    ["FFA_RUN", F.FFA_RUN.smc32],
    ["FFA_MSG_SEND_DIRECT_RESP", F.FFA_MSG_SEND_DIRECT_RESP.smc32],
    ["an unassigned number", 0x8400_00ff],
  ])("%s is not offered, and calling it is NOT_SUPPORTED", (_name, fid) => {
    const { call } = world();
    expectError(call(F.FFA_FEATURES.smc32, fid), FFA_RET.NOT_SUPPORTED);
    expectError(call(fid, 0, 0, 0, 0), FFA_RET.NOT_SUPPORTED);
  });

  it("at 1.0: no notifications, SPM_ID_GET, DIRECT_REQ2 or INFO_GET_REGS, and RXTX_MAP without a maximum", () => {
    const { call } = world({ version: FFA_VERSION_1_0 });
    for (const fid of [F.FFA_NOTIFICATION_BITMAP_CREATE.smc32, F.FFA_SPM_ID_GET.smc32, F.FFA_MSG_SEND_DIRECT_REQ2.smc64, F.FFA_PARTITION_INFO_GET_REGS.smc64]) {
      expectError(call(F.FFA_FEATURES.smc32, fid), FFA_RET.NOT_SUPPORTED);
      expectError(call(fid, 1, 1), FFA_RET.NOT_SUPPORTED);
    }
    expect(W(call(F.FFA_FEATURES.smc32, F.FFA_RXTX_MAP.smc32)[2]!)).toBe(0);
  });

  it("feature IDs: the schedule receiver interrupt's ID; NPI, MEI, unknown IDs and MBZ bits are NOT_SUPPORTED", () => {
    const { call } = world();
    const sri = call(F.FFA_FEATURES.smc32, 2);
    expectOk(sri);
    expect(W(sri[2]!)).toBe(8);
    for (const id of [1, 3, 4, 0x102]) expectError(call(F.FFA_FEATURES.smc32, id), FFA_RET.NOT_SUPPORTED);
  });
});

describe("IDs", () => {
  it("ID_GET is the hypervisor's (0); SPM_ID_GET the SPMC's (0x8000)", () => {
    const { call } = world();
    expect(W(call(F.FFA_ID_GET.smc32)[2]!)).toBe(0);
    expect(W(call(F.FFA_SPM_ID_GET.smc32)[2]!)).toBe(0x8000);
  });
});

describe("FFA_RXTX_MAP / UNMAP: the hypervisor's own pages", () => {
  it.each([
    ["misaligned TX", TX + 8n, RX, 1, FFA_RET.INVALID_PARAMETERS],
    ["misaligned RX", TX, RX + 0x800n, 1, FFA_RET.INVALID_PARAMETERS],
    ["no pages", TX, RX, 0, FFA_RET.INVALID_PARAMETERS],
    ["more pages than FEATURES says", HYP_HEAP, RX, 17, FFA_RET.INVALID_PARAMETERS],
    ["w3 bits [31:6] set", TX, RX, 0x41, FFA_RET.INVALID_PARAMETERS],
    ["TX and RX overlapping", HYP_HEAP, HYP_HEAP + 0x1000n, 2, FFA_RET.INVALID_PARAMETERS],
    ["a VM's page as TX", RAM_A, RX, 1, FFA_RET.DENIED],
    ["unowned memory as RX", TX, 0x9000_0000n, 1, FFA_RET.DENIED],
    ["buffers that run past 2^64", 0xffff_ffff_ffff_f000n, RX, 2, FFA_RET.INVALID_PARAMETERS],
  ])("%s: refused, nothing mapped", (_what, tx, rx, pages, code) => {
    const { call, spmc } = world();
    expectError(call(F.FFA_RXTX_MAP.smc64, tx, rx, pages), code);
    expect(spmc.rxState()).toEqual({ mapped: false, busy: false });
  });

  it("maps once (DENIED again), unmaps only its own (w1 = 0), then maps again; SMC32 takes 32-bit addresses", () => {
    const { call, spmc } = world();
    expectOk(call(F.FFA_RXTX_MAP.smc32, TX, RX, 1));
    expectError(call(F.FFA_RXTX_MAP.smc64, TX, RX, 1), FFA_RET.DENIED);
    expectError(call(F.FFA_RXTX_UNMAP.smc32, VM_A << 16), FFA_RET.INVALID_PARAMETERS);
    expectError(call(F.FFA_RXTX_UNMAP.smc32, 1), FFA_RET.INVALID_PARAMETERS);
    expectOk(call(F.FFA_RXTX_UNMAP.smc32, 0));
    expect(spmc.rxState().mapped).toBe(false);
    expectError(call(F.FFA_RXTX_UNMAP.smc32, 0), FFA_RET.INVALID_PARAMETERS);
    expectOk(call(F.FFA_RXTX_MAP.smc64, HYP_HEAP, HYP_HEAP + 0x2000n, 2));
  });
});

describe("FFA_PARTITION_INFO_GET and the RX buffer", () => {
  it("all partitions, v1.1+ layout, then the RX buffer is the hypervisor's until RX_RELEASE (BUSY before)", () => {
    const { call, map, mem, spmc } = world();
    map();
    const r = call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0);
    expectOk(r);
    expect([W(r[2]!), W(r[3]!)]).toEqual([4, 24]);
    const infos = decodePartitionInfo(mem.peek(RX, 96), 4, 24)!;
    expect(infos[0]).toEqual({ id: SP1, executionContexts: 1, properties: TEST_SP_PROPERTIES, uuid: UUID1 });
    expect(infos.map((p) => p.id)).toEqual([SP1, SP2, SP3, SP4]);
    expect(spmc.rxState()).toEqual({ mapped: true, busy: true });
    expectError(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0), FFA_RET.BUSY);
    expectOk(call(F.FFA_RX_RELEASE.smc32, 0));
    expectError(call(F.FFA_RX_RELEASE.smc32, 0), FFA_RET.DENIED);
    expectOk(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0));
  });

  it("by UUID (Linux's words); count only writes nothing; unknown UUID and flag MBZ bits are INVALID_PARAMETERS", () => {
    const { call, map, mem, spmc } = world({ version: FFA_VERSION_1_1 });
    map();
    const r = call(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(UUID2), 1);
    expect([r[0], W(r[2]!), W(r[3]!)]).toEqual([BigInt(F.FFA_SUCCESS.smc32), 1, 0]); // w3 MBZ with the count flag
    expect(spmc.rxState().busy).toBe(false);
    expect(mem.log.some((a) => a.op === "write")).toBe(false);
    expectError(call(F.FFA_PARTITION_INFO_GET.smc32, 1, 2, 3, 4, 0), FFA_RET.INVALID_PARAMETERS);
    expectError(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 2), FFA_RET.INVALID_PARAMETERS);
    const one = call(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(UUID2), 0);
    expect(W(one[2]!)).toBe(1);
    expect(decodePartitionInfo(mem.peek(RX, 24), 1, 24)![0]!.id).toBe(SP2);
  });

  it("v1.0: 8-byte descriptors, w3 zero, no count-only flag", () => {
    const { call, map, mem } = world({ version: FFA_VERSION_1_0 });
    map();
    const r = call(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(UUID1), 0);
    expect([W(r[2]!), W(r[3]!)]).toEqual([1, 0]);
    expect(decodePartitionInfo(mem.peek(RX, 8), 1, 8)![0]!.id).toBe(SP1);
    expectError(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 1), FFA_RET.INVALID_PARAMETERS);
  });

  it("without an RX buffer: DENIED; RX_RELEASE for a known VM frees it, for an unknown one or with w1[31:16] is refused", () => {
    const { call, map, create } = world();
    expectError(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0), FFA_RET.DENIED);
    expectError(call(F.FFA_RX_RELEASE.smc32, 0), FFA_RET.DENIED);
    map();
    create(VM_A);
    expectOk(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0));
    expectError(call(F.FFA_RX_RELEASE.smc32, VM_C), FFA_RET.INVALID_PARAMETERS);
    expectError(call(F.FFA_RX_RELEASE.smc32, 0x1_0000), FFA_RET.INVALID_PARAMETERS);
    expectOk(call(F.FFA_RX_RELEASE.smc32, VM_A));
  });

  it("PARTITION_INFO_GET_REGS (v1.2): indexes, size 24 and the descriptors in registers", () => {
    const { call } = world();
    const r = call(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0n, 0n, 1n);
    expect(r[0]).toBe(BigInt(F.FFA_SUCCESS.smc64));
    expect(r[2]).toBe(3n | (3n << 16n) | (24n << 48n));
    expect(r[3]).toBe(BigInt(SP2) | (1n << 16n) | (BigInt(0x101) << 32n));
    expect([r[4], r[5]]).toEqual(ffaUuidRegs(UUID2));
    const [lo, hi] = ffaUuidRegs(UUID1);
    const one = call(F.FFA_PARTITION_INFO_GET_REGS.smc64, lo, hi, 0n);
    expect(one[2]! & 0xffff_ffffn).toBe(0n);
    expectError(call(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0n, 0n, 4n), FFA_RET.INVALID_PARAMETERS);
    expectError(call(F.FFA_PARTITION_INFO_GET_REGS.smc64, 0n, 0n, 1n << 32n), FFA_RET.INVALID_PARAMETERS);
    expectError(call(F.FFA_PARTITION_INFO_GET_REGS.smc64, 5n, 0n, 0n), FFA_RET.INVALID_PARAMETERS);
  });
});

describe("direct messages (§15)", () => {
  it("DIRECT_REQ_32 from a created VM: the partition's response, endpoints swapped, payload cut to 32 bits", () => {
    const { create, direct } = world();
    create(VM_A);
    const r = direct(VM_A, SP1, [TEST_SP_CMD.ECHO, 0x1_2345_6789n, 3, 4, 5], F.FFA_MSG_SEND_DIRECT_REQ.smc32);
    expect(r[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32));
    expect(W(r[1]!)).toBe(ffaEndpoints(SP1, VM_A));
    expect(r.slice(2, 8)).toEqual([0n, 1n, 0x2345_6789n, 3n, 4n, 5n]);
  });

  it("DIRECT_REQ_64 keeps 64-bit values", () => {
    const { create, direct } = world();
    create(VM_A);
    const r = direct(VM_A, SP1, [TEST_SP_CMD.ECHO, 0xdead_beef_0000_0001n]);
    expect(r[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc64));
    expect(r[4]).toBe(0xdead_beef_0000_0001n);
  });

  it.each([
    ["a VM the SPMC was not told of", VM_C, SP1, 0, FFA_RET.INVALID_PARAMETERS],
    ["the hypervisor itself", 0, SP1, 0, FFA_RET.INVALID_PARAMETERS],
    ["a secure endpoint as sender", SP2, SP1, 0, FFA_RET.INVALID_PARAMETERS],
    ["no such partition", VM_A, 0x8009, 0, FFA_RET.INVALID_PARAMETERS],
    ["a VM as receiver", VM_A, VM_B, 0, FFA_RET.INVALID_PARAMETERS],
    ["a partition that does not list the VM", VM_B, SP2, 0, FFA_RET.DENIED],
    ["a partition that takes no direct requests", VM_A, SP3, 0, FFA_RET.DENIED],
    ["w2 not zero", VM_A, SP1, 0x10, FFA_RET.INVALID_PARAMETERS],
    ["x1[63:32] set", VM_A, SP1, 0, FFA_RET.INVALID_PARAMETERS, 1n << 40n],
  ] as [string, number, number, number, number, bigint?][])("from %s: refused", (_what, sender, receiver, w2, code, high = 0n) => {
    const { create, call } = world();
    create(VM_A);
    create(VM_B);
    expectError(call(F.FFA_MSG_SEND_DIRECT_REQ.smc64, high | BigInt(ffaEndpoints(sender, receiver)), w2, TEST_SP_CMD.ECHO), code);
  });

  it("a partition's refusal is the sender's FFA_ERROR", () => {
    const { create, direct } = world();
    create(VM_A);
    expectError(direct(VM_A, SP1, [99]), FFA_RET.INVALID_PARAMETERS);
  });

  it("DIRECT_REQ2 (v1.2): by the partition's UUID or the nil UUID, payload x4-x17 and back in RESP2", () => {
    const { create, call } = world();
    create(VM_A);
    const payload = Array.from({ length: 14 }, (_, i) => (i === 0 ? BigInt(TEST_SP_CMD.ECHO) : BigInt(i) << 40n));
    for (const [lo, hi] of [ffaUuidRegs(UUID1), [0n, 0n]] as const) {
      const r = call(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, ffaEndpoints(VM_A, SP1), lo, hi, ...payload);
      expect(r[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP2.smc64));
      expect(r[1]).toBe(BigInt(ffaEndpoints(SP1, VM_A)));
      expect(r.slice(4, 18)).toEqual(payload);
    }
    const [lo, hi] = ffaUuidRegs(UUID2);
    expectError(call(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, ffaEndpoints(VM_A, SP1), lo, hi, 1), FFA_RET.INVALID_PARAMETERS);
    expectError(call(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, ffaEndpoints(VM_A, SP2), 0, 0, 1), FFA_RET.DENIED);
    expectError(call(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, (1n << 32n) | BigInt(ffaEndpoints(VM_A, SP1)), 0, 0, 1), FFA_RET.INVALID_PARAMETERS);
  });
});

describe("VM_CREATED / VM_DESTROYED framework messages (§18.2)", () => {
  it("reach a subscribed partition with the VM ID from w5 and answer the framework response", () => {
    const { vmMessage, sp1, spmc } = world();
    const r = vmMessage(SP1, VM_A, FFA_FRAMEWORK_MSG.VM_CREATED_REQ);
    expect([r[0], W(r[1]!), W(r[2]!), W(r[3]!)]).toEqual([BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), ffaEndpoints(SP1, 0), (FFA_MSG_FLAG_FRAMEWORK | 5) >>> 0, 0]);
    expect([...sp1.vms]).toEqual([VM_A]);
    expect(spmc.counters(VM_A)).toMatchObject({ known: true, partitions: 1 });
    const again = vmMessage(SP1, VM_A, FFA_FRAMEWORK_MSG.VM_CREATED_REQ, true);
    expect(again[0]).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc64));
    expect(W(again[3]!) | 0).toBe(FFA_RET.INVALID_PARAMETERS);
    const gone = vmMessage(SP1, VM_A, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ);
    expect(W(gone[2]!)).toBe((FFA_MSG_FLAG_FRAMEWORK | 7) >>> 0);
    expect(W(gone[3]!)).toBe(0);
    expect(sp1.vms.size).toBe(0);
    expect(spmc.counters(VM_A)).toEqual(ZERO_COUNTERS);
    expect(W(vmMessage(SP1, VM_A, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ)[3]!) | 0).toBe(FFA_RET.INVALID_PARAMETERS);
  });

  it.each([
    ["to a partition that did not subscribe", ffaEndpoints(0, SP2), FFA_MSG_FLAG_FRAMEWORK | 4, VM_A],
    ["to no partition", ffaEndpoints(0, 0x8009), FFA_MSG_FLAG_FRAMEWORK | 4, VM_A],
    ["from a VM", ffaEndpoints(VM_B, SP1), FFA_MSG_FLAG_FRAMEWORK | 4, VM_A],
    ["for VM 0", ffaEndpoints(0, SP1), FFA_MSG_FLAG_FRAMEWORK | 4, 0],
    ["for a secure ID", ffaEndpoints(0, SP1), FFA_MSG_FLAG_FRAMEWORK | 4, 0x8005],
    ["with w5[31:16] set", ffaEndpoints(0, SP1), FFA_MSG_FLAG_FRAMEWORK | 4, 0x1_0001],
    ["of type PSCI", ffaEndpoints(0, SP1), FFA_MSG_FLAG_FRAMEWORK | FFA_FRAMEWORK_MSG.PSCI, VM_A],
    ["of a response type", ffaEndpoints(0, SP1), FFA_MSG_FLAG_FRAMEWORK | 5, VM_A],
    ["with w2[30:8] set", ffaEndpoints(0, SP1), FFA_MSG_FLAG_FRAMEWORK | 0x100 | 4, VM_A],
  ])("%s: INVALID_PARAMETERS and no VM known", (_what, w1, w2, w5) => {
    const { call, spmc, sp1 } = world();
    expectError(call(F.FFA_MSG_SEND_DIRECT_REQ.smc32, w1, w2, 0, 0, w5), FFA_RET.INVALID_PARAMETERS);
    expect(spmc.counters(VM_A)).toEqual(ZERO_COUNTERS);
    expect(sp1.vms.size).toBe(0);
  });

  it("at most maxVms VMs: the next VM_CREATED answers NO_MEMORY and is not kept", () => {
    const { vmMessage, spmc, create } = world({ limits: { maxVms: 2 } });
    create(VM_A);
    create(VM_B);
    expect(W(vmMessage(SP1, VM_C, FFA_FRAMEWORK_MSG.VM_CREATED_REQ)[3]!) | 0).toBe(FFA_RET.NO_MEMORY);
    expect(spmc.counters(VM_C).known).toBe(false);
    create(VM_A, SP4);
  });

  it("a VM told to two partitions is forgotten when the last of them is told it is gone", () => {
    const { create, destroy, spmc } = world();
    create(VM_A, SP1);
    create(VM_A, SP4);
    destroy(VM_A, SP1);
    expect(spmc.counters(VM_A)).toMatchObject({ known: true, partitions: 1 });
    destroy(VM_A, SP4);
    expect(spmc.counters(VM_A)).toEqual(ZERO_COUNTERS);
  });
});

describe("VM availability messages a partition answers with an error", () => {
  it("RETRY, INTERRUPTED or BUSY to VM_DESTROYED: the partition still knows the VM, and the message can be sent again", () => {
    const { create, vmMessage, sp4, spmc } = world();
    create(VM_A, SP4);
    for (const code of [FFA_RET.RETRY, FFA_RET.INTERRUPTED, FFA_RET.BUSY]) {
      sp4.onVmDestroyed = () => code;
      expect(W(vmMessage(SP4, VM_A, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ)[3]!) | 0).toBe(code);
      expect(spmc.counters(VM_A)).toMatchObject({ known: true, partitions: 1 });
    }
    sp4.onVmDestroyed = () => 0;
    expect(W(vmMessage(SP4, VM_A, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ)[3]!)).toBe(0);
    expect(spmc.counters(VM_A)).toEqual(ZERO_COUNTERS);
  });

  it("any other failure to VM_DESTROYED still ends the VM there; a failed VM_CREATED leaves the VM unknown", () => {
    const { create, vmMessage, sp4, spmc } = world();
    create(VM_A, SP4);
    sp4.onVmDestroyed = () => FFA_RET.ABORTED;
    expect(W(vmMessage(SP4, VM_A, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ)[3]!) | 0).toBe(FFA_RET.ABORTED);
    expect(spmc.counters(VM_A)).toEqual(ZERO_COUNTERS);
    sp4.onVmCreated = () => FFA_RET.NO_MEMORY;
    expect(W(vmMessage(SP4, VM_B, FFA_FRAMEWORK_MSG.VM_CREATED_REQ)[3]!) | 0).toBe(FFA_RET.NO_MEMORY);
    expect(spmc.counters(VM_B)).toEqual(ZERO_COUNTERS);
  });
});

describe("robustness", () => {
  it("any registers to any FF-A function never throw, and x0 is an FF-A answer", () => {
    const { spmc, map, create } = world();
    map();
    create(VM_A);
    const answers = new Set<bigint>(
      [F.FFA_ERROR.smc32, F.FFA_SUCCESS.smc32, F.FFA_SUCCESS.smc64, F.FFA_MEM_FRAG_RX.smc32, F.FFA_MSG_SEND_DIRECT_RESP.smc32, F.FFA_MSG_SEND_DIRECT_RESP.smc64, F.FFA_MSG_SEND_DIRECT_RESP2.smc64].map(BigInt),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0x60, max: 0xff }),
        fc.boolean(),
        fc.array(fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, BigInt(ffaEndpoints(VM_A, SP1)), BigInt(SP1), BigInt(VM_A))), { maxLength: 17 }),
        (fn, is64, args) => {
          const fid = ((is64 ? 0xc400_0000 : 0x8400_0000) | fn) >>> 0;
          if (fid === F.FFA_VERSION.smc32) return;
          const r = smc(spmc, fid, args);
          expect(answers.has(r[0]!)).toBe(true);
        },
      ),
      { numRuns: 3000 },
    );
    // Whatever was tried, the SPMC holds nothing it was not asked to keep for VM A.
    expect(spmc.counters(VM_B)).toEqual(ZERO_COUNTERS);
  });
});

describe("partitions the SPMC is given (invariants the config loader guarantees)", () => {
  const make = (id: number, uuid = UUID1) => ({ partition: new TestPartition({ id, uuid }), vms: [VM_A] });
  it.each([
    ["a normal-world ID", [make(0x0001)], /not a secure partition ID/],
    ["the SPMC's ID", [make(0x8000)], /not a secure partition ID/],
    ["the SPMD's ID", [make(0xffff)], /not a secure partition ID/],
    ["an ID twice", [make(0x8001), make(0x8001, UUID2)], /taken/],
    ["a UUID twice", [make(0x8001), make(0x8002)], /taken/],
    ["an upper-case UUID", [make(0x8001, UUID1.toUpperCase())], /canonical/],
    ["the nil UUID", [make(0x8001, "00000000-0000-0000-0000-000000000000")], /canonical/],
  ])("%s throws", (_what, partitions, message) => {
    expect(() => new SpmcModel({ memory: new FakeSpmcMemory(), partitions })).toThrow(message);
  });
});

describe("PARTITION_INFO_GET beyond the RX buffer", () => {
  it("more descriptors than one RX page holds: NO_MEMORY, the buffer stays the SPMC's; count only still answers", () => {
    const memory = new FakeSpmcMemory();
    memory.give(TX, 2, 0);
    const partitions = Array.from({ length: 200 }, (_, i) => ({
      partition: new TestPartition({ id: 0x8001 + i, uuid: `00000000-0000-4000-8000-${(i + 1).toString(16).padStart(12, "0")}` }),
      vms: [VM_A],
    }));
    const spmc = new SpmcModel({ memory, partitions });
    const call = (fid: number, ...args: (number | bigint)[]) => smc(spmc, fid, args);
    call(F.FFA_VERSION.smc32, FFA_VERSION_1_1);
    expectOk(call(F.FFA_RXTX_MAP.smc64, TX, RX, 1));
    expectError(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 0), FFA_RET.NO_MEMORY);
    expect(spmc.rxState()).toEqual({ mapped: true, busy: false });
    expect(W(call(F.FFA_PARTITION_INFO_GET.smc32, 0, 0, 0, 0, 1)[2]!)).toBe(200);
  });
});
