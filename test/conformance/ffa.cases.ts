/**
 * FF-A conformance cases (DEN0077 v1.2): the guest-visible ABI of a VM with `tee: ffa` on a platform whose
 * modelled SPMC runs the test partition (src/firmware/spmc/partitions/test-sp.ts). One case per rule of the
 * specification; where it leaves the choice of error to the implementation, the case expects what
 * src/mediators/ffa/README.md documents, and says so. Section numbers are DEN0077 v1.2's chapter 13 (v1.1:
 * the same ABIs in chapter 13; memory management in the v1.2 Memory Management supplement).
 *
 * FF-A does not depend on the PSCI version, so the cases are generated for PSCI 1.3 only, for both caller
 * widths and both conduits. Every case runs in-process and under QEMU from the bare-metal guest: the TX
 * descriptors and the shared page are in the case's `memory` (loaded with the guest's image), the RX buffer
 * is read at the end (`memoryAfter`), and the handle of a share reaches the next calls as a ResultOf.
 */
import { TEST_SP_CMD, TEST_SP_PROPERTIES } from "../../src/firmware/spmc/partitions/test-sp.js";
import { TEST_PARTITION_UUID } from "../../src/policy/ffa.js";
import { FFA_ID_SPMC, FFA_MEM_ATTR, FFA_MEM_ATTR_NORMAL_WB_IS, FFA_MEM_FLAG, FFA_MEM_PERM, FFA_RET, ffaEndpoints } from "../../src/smccc/ffa/abi.js";
import { encodeMemTransaction, type FfaMemTransaction } from "../../src/smccc/ffa/descriptors.js";
import { encodePartitionInfo, ffaUuidRegs, ffaUuidWords } from "../../src/smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../src/smccc/functions/ffa.js";
import { CASE_DATA_BASE, nativeFid, RAM_BASE, RAM_SIZE, type Case, type MemoryBytes, type Params, type Step } from "./case.js";

/** The VM's endpoint ID (its config ID) and the test partition's. */
const VM_ID = 1;
const SP = 0x8002;
const PLATFORM = { spmc: { partitions: [{ name: "test", id: SP, runs: "test", vms: ["vm0"] }] } };
const FFA_VM = { id: VM_ID, tee: "ffa" };

/** The RX/TX pair, and a page to share, in the part of RAM the guest's image covers (case.ts). */
const TX = CASE_DATA_BASE, RX = CASE_DATA_BASE + 0x1000n, SHARED = CASE_DATA_BASE + 0x1_0000n;

const V1_0 = 0x1_0000, V1_1 = 0x1_0001, V1_2 = 0x1_0002;
const SUCCESS = BigInt(F.FFA_SUCCESS.smc32);
const ERROR = BigInt(F.FFA_ERROR.smc32);
/** An SMCCC call a VM may not make (SMCCC NOT_SUPPORTED). */
const SMCCC_NOT_SUPPORTED = -1;

/**
 * FFA_ERROR with its status in w2 (x2's upper half zero, also for SMC64 calls: README's FFA_ERROR row);
 * w1 and w3-w7 are reserved, MBZ (§13.1, FFA_ERROR).
 */
const error = (code: number) => ({ 0: ERROR, 1: 0n, 2: BigInt(code >>> 0), 3: 0n, 4: 0n, 5: 0n, 6: 0n, 7: 0n });
/** FFA_SUCCESS (the 32-bit form: every call here answers with it) with w2, w3; w1 and w4-w7 MBZ unless used. */
const success = (w2 = 0n, w3 = 0n) => ({ 0: SUCCESS, 1: 0n, 2: w2, 3: w3, 4: 0n, 5: 0n, 6: 0n, 7: 0n });

/** The test partition as a v1.1+ partition information descriptor (DEN0077 v1.2 Table 13.37). */
const TEST_SP_INFO = encodePartitionInfo([{ id: SP, executionContexts: 1, properties: TEST_SP_PROPERTIES, uuid: TEST_PARTITION_UUID }], V1_2);
const UUID = ffaUuidWords(TEST_PARTITION_UUID);
const UNKNOWN = "0badc0de-0000-4000-8000-00000000f00d";
const UNKNOWN_UUID = ffaUuidWords(UNKNOWN);

export function ffaCases(p: Params): Case[] {
  if (p.psci !== "1.3") return [];
  const a64 = !p.aarch32;
  const RXTX_MAP = nativeFid(F.FFA_RXTX_MAP, p);
  const PIG = F.FFA_PARTITION_INFO_GET.smc32;
  const step = (fid: number, args: Step["args"], expect: Partial<Step> = {}): Step => ({ vcpu: 0, fid, args, ...expect });
  const version = (v = V1_2): Step => step(F.FFA_VERSION.smc32, [v], { regs: { 0: BigInt(V1_2) } });
  const map = (tx = TX, rx = RX, pages = 1): Step => step(RXTX_MAP, [tx, rx, pages], { regs: success() });
  const features = (id: number, regs: Step["regs"]): Step => step(F.FFA_FEATURES.smc32, [id], { regs });
  const cases: Case[] = [];
  const add = (c: Case) => cases.push({ platform: PLATFORM, vm: FFA_VM, ...c });

  // FFA_VERSION (§13.2): the callee's version in w0, or NOT_SUPPORTED (-1) in w0 itself; never FFA_ERROR.
  add({
    name: "DEN0077 FFA_VERSION: 1.0, 1.1 and 1.2 callers are all answered 1.2 (same major version, §13.2.1)",
    steps: [version(V1_0), version(V1_1), version(V1_2), step(F.FFA_VERSION.smc32, [0x1_0003], { regs: { 0: BigInt(V1_2) } })],
  });
  add({
    name: "DEN0077 FFA_VERSION: major version 2 is NOT_SUPPORTED in w0",
    steps: [step(F.FFA_VERSION.smc32, [0x2_0000], { ret: FFA_RET.NOT_SUPPORTED })],
  });
  add({
    name: "DEN0077 FFA_VERSION: bit 31 of the input (MBZ) set is NOT_SUPPORTED in w0, the only error FFA_VERSION has",
    steps: [step(F.FFA_VERSION.smc32, [0x8001_0002], { ret: FFA_RET.NOT_SUPPORTED }), version()],
  });
  add({
    name: "DEN0077 FFA_VERSION: the version is fixed by the first other call: another is NOT_SUPPORTED after it, the same one still answered",
    steps: [version(V1_1), step(F.FFA_ID_GET.smc32, [], { regs: success(BigInt(VM_ID)) }), step(F.FFA_VERSION.smc32, [V1_0], { ret: FFA_RET.NOT_SUPPORTED }), version(V1_1)],
  });
  add({
    name: "smcvisor FF-A: a call before FFA_VERSION is FFA_ERROR(NOT_SUPPORTED) (src/mediators/ffa/README.md, as Xen)",
    steps: [step(F.FFA_ID_GET.smc32, [], { regs: error(FFA_RET.NOT_SUPPORTED) }), version(), step(F.FFA_ID_GET.smc32, [], { regs: success(BigInt(VM_ID)) })],
  });

  // FFA_FEATURES (§13.3).
  add({
    name: "DEN0077 FFA_FEATURES: implemented functions are FFA_SUCCESS with their properties in w2",
    steps: [
      version(),
      ...[F.FFA_ERROR, F.FFA_SUCCESS, F.FFA_INTERRUPT, F.FFA_VERSION, F.FFA_FEATURES, F.FFA_RX_RELEASE, F.FFA_RXTX_UNMAP, F.FFA_PARTITION_INFO_GET, F.FFA_ID_GET, F.FFA_SPM_ID_GET, F.FFA_MSG_SEND_DIRECT_REQ, F.FFA_MEM_RECLAIM].map((d) => features(d.smc32!, success())),
      // RXTX_MAP (§13.3, Table 13.13): w2[1:0] 0 = 4 KiB minimum, v1.2 callers get the maximum pages (4) in [31:16].
      features(F.FFA_RXTX_MAP.smc32, success(4n << 16n)),
      ...(a64 ? [features(F.FFA_RXTX_MAP.smc64, success(4n << 16n)), features(F.FFA_MSG_SEND_DIRECT_REQ.smc64, success()), features(F.FFA_MSG_SEND_DIRECT_REQ2.smc64, success()), features(F.FFA_PARTITION_INFO_GET_REGS.smc64, success())] : []),
      // MEM_SHARE/LEND: w2 bit 0 clear, no dynamically allocated buffers (the descriptor is in TX only).
      features(F.FFA_MEM_SHARE.smc32, success()),
      features(F.FFA_MEM_LEND.smc32, success()),
      // RETRIEVE_REQ: w2 bit 1, the NS bit in retrieve responses (v1.1+); RETRIEVE_RESP with it.
      features(F.FFA_MEM_RETRIEVE_REQ.smc32, success(2n)),
      features(F.FFA_MEM_RETRIEVE_RESP.smc32, success()),
    ],
  });
  add({
    name: "DEN0077 FFA_FEATURES: functions not offered to a VM, and unknown function IDs, are FFA_ERROR(NOT_SUPPORTED)",
    steps: [
      version(),
      // Deprecated or refused (README feature table).
      ...[F.FFA_MSG_POLL, F.FFA_MSG_SEND, F.FFA_YIELD, F.FFA_MEM_DONATE, F.FFA_MEM_OP_PAUSE, F.FFA_NORMAL_WORLD_RESUME, F.FFA_MEM_PERM_GET, F.FFA_CONSOLE_LOG].map((d) => features(d.smc32!, error(FFA_RET.NOT_SUPPORTED))),
      // The hypervisor's and the secure world's own ABIs.
      ...[F.FFA_NOTIFICATION_BITMAP_CREATE, F.FFA_NOTIFICATION_BITMAP_DESTROY, F.FFA_RX_ACQUIRE, F.FFA_EL3_INTR_HANDLE].map((d) => features(d.smc32!, error(FFA_RET.NOT_SUPPORTED))),
      features(F.FFA_SECONDARY_EP_REGISTER.smc64!, error(FFA_RET.NOT_SUPPORTED)),
      features(0x8400_00ff, error(FFA_RET.NOT_SUPPORTED)),
      features(0x8400_0000, error(FFA_RET.NOT_SUPPORTED)),
      // An SMC64 ID of a function that has only an SMC32 form.
      features(0xc400_0063, error(FFA_RET.NOT_SUPPORTED)),
    ],
  });
  if (p.aarch32) {
    add({
      name: "DEN0077 FFA_FEATURES: SMC64 functions are NOT_SUPPORTED for an AArch32 VM, and calling one is SMCCC NOT_SUPPORTED",
      steps: [
        version(),
        // Every SMC64 function ID of the ABI but FFA_SUCCESS_64 (the case below).
        ...Object.values(F).flatMap((d) => ("smc64" in d && d.smc64 !== undefined && d !== F.FFA_SUCCESS ? [features(d.smc64, error(FFA_RET.NOT_SUPPORTED))] : [])),
        step(F.FFA_MSG_SEND_DIRECT_REQ.smc64, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.ECHO], { ret: SMCCC_NOT_SUPPORTED }),
      ],
    });
  }
  if (p.aarch32) {
    add({
      name: "DEN0077 FFA_FEATURES: FFA_SUCCESS_64 is NOT_SUPPORTED for an AArch32 VM (an SMC64 ID no AArch32 caller can be given)",
      steps: [version(), features(F.FFA_SUCCESS.smc64!, error(FFA_RET.NOT_SUPPORTED))],
    });
  }
  add({
    name: "DEN0077 FFA_FEATURES: feature IDs (w1 bit 31 clear) NPI, SRI, MEI are FFA_ERROR(NOT_SUPPORTED): no interrupts to give (README)",
    steps: [version(), features(1, error(FFA_RET.NOT_SUPPORTED)), features(2, error(FFA_RET.NOT_SUPPORTED)), features(3, error(FFA_RET.NOT_SUPPORTED))],
  });
  add({
    name: "DEN0077 FF-A: calling a function not offered is FFA_ERROR(NOT_SUPPORTED), never the SMCCC unknown value",
    steps: [
      version(),
      ...[F.FFA_MSG_POLL, F.FFA_MEM_DONATE, F.FFA_NOTIFICATION_BITMAP_CREATE, F.FFA_RX_ACQUIRE, F.FFA_MEM_FRAG_RX].map((d) => step(d.smc32!, [], { regs: error(FFA_RET.NOT_SUPPORTED) })),
      step(0x8400_00ff, [], { regs: error(FFA_RET.NOT_SUPPORTED) }),
    ],
  });

  // Identities.
  add({ name: "DEN0077 FFA_ID_GET: FFA_SUCCESS with the VM's endpoint ID (its config ID) in w2", steps: [version(), step(F.FFA_ID_GET.smc32, [], { regs: success(BigInt(VM_ID)) })] });
  add({ name: "DEN0077 FFA_SPM_ID_GET: FFA_SUCCESS with the SPMC's ID (0x8000) in w2", steps: [version(), step(F.FFA_SPM_ID_GET.smc32, [], { regs: success(BigInt(FFA_ID_SPMC)) })] });
  add({ name: "DEN0077 FFA_SPM_ID_GET: NOT_SUPPORTED for a v1.0 caller (a v1.1 ABI)", steps: [version(V1_0), step(F.FFA_SPM_ID_GET.smc32, [], { regs: error(FFA_RET.NOT_SUPPORTED) })] });

  // RX/TX buffers (§13.6-13.8).
  add({
    name: "DEN0077 FFA_RXTX_MAP: a buffer address not aligned to the 4 KiB minimum is INVALID_PARAMETERS",
    steps: [version(), step(RXTX_MAP, [TX + 0x800n, RX, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(RXTX_MAP, [TX, RX + 0x10n, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) }), map()],
  });
  add({
    name: "DEN0077 FFA_RXTX_MAP: a buffer outside the VM's RAM is INVALID_PARAMETERS (README), nothing mapped",
    steps: [version(), step(RXTX_MAP, [RAM_BASE + RAM_SIZE, RX, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(RXTX_MAP, [TX, 0x1000n, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) }), map()],
  });
  add({
    name: "DEN0077 FFA_RXTX_MAP: TX and RX overlapping is INVALID_PARAMETERS",
    steps: [version(), step(RXTX_MAP, [TX, TX, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(RXTX_MAP, [TX, TX + 0x1000n, 2], { regs: error(FFA_RET.INVALID_PARAMETERS) }), map()],
  });
  add({
    name: "DEN0077 FFA_RXTX_MAP: 0 pages, or more than FEATURES's maximum (4), is INVALID_PARAMETERS",
    steps: [version(), step(RXTX_MAP, [TX, RX + 0x1_0000n, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(RXTX_MAP, [TX, RX + 0x1_0000n, 5], { regs: error(FFA_RET.INVALID_PARAMETERS) }), map(TX, RX + 0x1_0000n, 4)],
  });
  add({
    name: "DEN0077 FFA_RXTX_MAP: a second pair while one is mapped is DENIED",
    steps: [version(), map(), step(RXTX_MAP, [TX + 0x2000n, RX + 0x2000n, 1], { regs: error(FFA_RET.DENIED) })],
  });
  add({
    name: "DEN0077 FFA_RXTX_UNMAP: unmaps the pair (FFA_SUCCESS), after which a new pair maps; with none mapped it is INVALID_PARAMETERS",
    steps: [
      version(),
      step(F.FFA_RXTX_UNMAP.smc32, [0], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      map(),
      step(F.FFA_RXTX_UNMAP.smc32, [0], { regs: success() }),
      step(PIG, [...UUID, 0], { regs: error(FFA_RET.DENIED) }),
      map(TX + 0x2000n, RX + 0x2000n),
    ],
  });
  add({
    name: "DEN0077 FFA_RXTX_UNMAP: an ID in w1[31:16] that is neither 0 nor the caller's, or w1[15:0] (MBZ) set, is INVALID_PARAMETERS",
    steps: [version(), map(), step(F.FFA_RXTX_UNMAP.smc32, [2 << 16], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(F.FFA_RXTX_UNMAP.smc32, [1], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(F.FFA_RXTX_UNMAP.smc32, [VM_ID << 16], { regs: success() })],
  });
  add({
    name: "DEN0077 FFA_RX_RELEASE: without an RX buffer the caller owns is DENIED",
    steps: [version(), step(F.FFA_RX_RELEASE.smc32, [], { regs: error(FFA_RET.DENIED) }), map(), step(F.FFA_RX_RELEASE.smc32, [], { regs: error(FFA_RET.DENIED) })],
  });

  // FFA_PARTITION_INFO_GET (§13.9).
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: by the test partition's UUID: count 1 in w2, descriptor size 24 in w3, its descriptor in RX",
    steps: [version(), map(), step(PIG, [...UUID, 0], { regs: success(1n, 24n) })],
    memoryAfter: [{ at: RX, bytes: TEST_SP_INFO }],
  });
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: the nil UUID lists every partition the VM may use",
    steps: [version(), map(), step(PIG, [0, 0, 0, 0, 0], { regs: success(1n, 24n) })],
    memoryAfter: [{ at: RX, bytes: TEST_SP_INFO }],
  });
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: the count-only flag (w5 bit 0) returns the count, w3 = 0 (MBZ), RX untouched and not owned",
    steps: [version(), step(PIG, [...UUID, 1], { regs: success(1n, 0n) }), map(), step(PIG, [0, 0, 0, 0, 1], { regs: success(1n, 0n) }), step(F.FFA_RX_RELEASE.smc32, [], { regs: error(FFA_RET.DENIED) })],
    memoryAfter: [{ at: RX, bytes: new Uint8Array(24) }],
  });
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: an unknown UUID is INVALID_PARAMETERS",
    steps: [version(), map(), step(PIG, [...UNKNOWN_UUID, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(PIG, [...UNKNOWN_UUID, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: before FFA_RXTX_MAP (no RX buffer) is DENIED (README; Hafnium answers BUSY)",
    steps: [version(), step(PIG, [...UUID, 0], { regs: error(FFA_RET.DENIED) })],
  });
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: while the caller owns its RX buffer it is BUSY; FFA_RX_RELEASE gives it back (once); then it succeeds again",
    steps: [
      version(),
      map(),
      step(PIG, [...UUID, 0], { regs: success(1n, 24n) }),
      step(PIG, [...UUID, 0], { regs: error(FFA_RET.BUSY) }),
      step(F.FFA_RX_RELEASE.smc32, [], { regs: success() }),
      step(F.FFA_RX_RELEASE.smc32, [], { regs: error(FFA_RET.DENIED) }),
      step(PIG, [...UUID, 0], { regs: success(1n, 24n) }),
    ],
  });
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: a v1.0 caller gets 8-byte descriptors and w3 = 0",
    steps: [version(V1_0), map(), step(PIG, [...UUID, 0], { regs: success(1n, 0n) })],
    // v1.0 Table 8.25: ID, execution contexts, properties (bits 0-3 only in v1.0); no UUID.
    memoryAfter: [{ at: RX, bytes: encodePartitionInfo([{ id: SP, executionContexts: 1, properties: TEST_SP_PROPERTIES & 0xf, uuid: TEST_PARTITION_UUID }], V1_0) }],
  });

  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: w5 is MBZ for a v1.0 caller (no count-only flag before v1.1): INVALID_PARAMETERS",
    steps: [version(V1_0), map(), step(PIG, [...UUID, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });

  // Direct messaging (§15.2-15.3): to the test partition's echo (it answers the payload unchanged).
  const echo32 = [TEST_SP_CMD.ECHO, 0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444];
  add({
    name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ (SMC32): the partition's FFA_MSG_SEND_DIRECT_RESP, endpoints swapped in w1, w2 = 0, w3-w7 its answer",
    steps: [
      version(),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, ...echo32], {
        regs: { 0: BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), 1: BigInt(ffaEndpoints(SP, VM_ID)), 2: 0n, ...Object.fromEntries(echo32.map((v, i) => [3 + i, BigInt(v)])) },
      }),
    ],
  });
  if (a64) {
    const echo64 = [BigInt(TEST_SP_CMD.ECHO), 0x1111_1111_aaaa_aaaan, 0x2222_2222_bbbb_bbbbn, 0x3333_3333_cccc_ccccn, 0x4444_4444_dddd_ddddn];
    add({
      name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ (SMC64): the 64-bit response, x3-x7 with all 64 bits",
      steps: [
        version(),
        step(F.FFA_MSG_SEND_DIRECT_REQ.smc64!, [ffaEndpoints(VM_ID, SP), 0, ...echo64], {
          regs: { 0: BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc64!), 1: BigInt(ffaEndpoints(SP, VM_ID)), 2: 0n, ...Object.fromEntries(echo64.map((v, i) => [3 + i, v])) },
        }),
      ],
    });
  }
  add({
    name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ: to an endpoint the VM does not know is INVALID_PARAMETERS",
    steps: [
      version(),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, 0x8003), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, FFA_ID_SPMC), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, 2), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
    ],
  });
  add({
    name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ: a sender field (w1[31:16]) other than the caller's ID is INVALID_PARAMETERS",
    steps: [
      version(),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(2, SP), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(0, SP), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
    ],
  });
  add({
    name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ: w2 flags set (a framework message, the hypervisor's) is INVALID_PARAMETERS",
    steps: [version(), step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0x8000_0002, 0, 0, VM_ID], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });

  // Memory management (v1.2 Memory Management supplement): a page shared with the test partition, whose
  // checksum service retrieves it, sums its bytes and relinquishes it.
  const shareTx: FfaMemTransaction = { sender: VM_ID, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED, pageCount: 1 }] };
  const share: MemoryBytes[] = [
    { at: TX, bytes: encodeMemTransaction(shareTx, "v1.2") },
    { at: SHARED, bytes: new Uint8Array(4096).fill(3) },
  ];
  const len = share[0]!.bytes.length;
  const v10len = encodeMemTransaction(shareTx, "v1.0").length;
  const MEM_SHARE = F.FFA_MEM_SHARE.smc32;
  add({
    name: "DEN0077 FFA_MEM_SHARE: one page with its descriptor in TX: FFA_SUCCESS with the handle in w2/w3; the partition reads the page; FFA_MEM_RECLAIM returns it",
    memory: share,
    steps: [
      version(),
      map(),
      // The handle's bit 63 (w3 bit 31) is the allocator: 0, the SPMC's, for a transaction with a partition.
      step(MEM_SHARE, [len, len, 0, 0], { regs: { 0: SUCCESS, 1: 0n }, clearBits: { 3: 0x8000_0000n } }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.CHECKSUM, { step: 2, reg: 2 }, { step: 2, reg: 3 }], {
        regs: { 0: BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), 1: BigInt(ffaEndpoints(SP, VM_ID)), 3: 0n, 4: 3n * 4096n, 5: 1n },
      }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: success() }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
    ],
  });
  add({
    name: "DEN0077 FFA_MEM_SHARE: a page already shared is DENIED",
    memory: share,
    steps: [version(), map(), step(MEM_SHARE, [len, len, 0, 0], { regs: { 0: SUCCESS } }), step(MEM_SHARE, [len, len, 0, 0], { regs: error(FFA_RET.DENIED) })],
  });
  add({
    name: "DEN0077 FFA_MEM_SHARE: without an RX/TX pair is DENIED (README)",
    memory: share,
    steps: [version(), step(MEM_SHARE, [len, len, 0, 0], { regs: error(FFA_RET.DENIED) })],
  });
  add({
    name: "DEN0077 FFA_MEM_SHARE: a fragment length greater than the total length is INVALID_PARAMETERS",
    memory: share,
    steps: [version(), map(), step(MEM_SHARE, [len, len + 16, 0, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(MEM_SHARE, [len, len, 0, 0], { regs: { 0: SUCCESS } })],
  });
  add({
    name: "DEN0077 FFA_MEM_RECLAIM: a handle the VM never got is INVALID_PARAMETERS",
    steps: [version(), step(F.FFA_MEM_RECLAIM.smc32, [0x1234, 0, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(F.FFA_MEM_RECLAIM.smc32, [0xffff_ffff, 0xffff_ffff, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });

  add({
    name: "SMCCC 1.3 FF-A: a function ID with the SVE hint (bit 16) is the same call",
    vm: { ...FFA_VM, smccc: "1.3" },
    steps: [
      step(F.FFA_VERSION.smc32 | 0x1_0000, [V1_2], { regs: { 0: BigInt(V1_2) } }),
      step(F.FFA_ID_GET.smc32 | 0x1_0000, [], { regs: success(BigInt(VM_ID)) }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32 | 0x1_0000, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.ECHO, 9], { regs: { 0: BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), 1: BigInt(ffaEndpoints(SP, VM_ID)), 3: BigInt(TEST_SP_CMD.ECHO), 4: 9n } }),
    ],
  });
  add({
    name: "DEN0077 FFA_RXTX_MAP: a buffer that runs past the end of the VM's RAM is INVALID_PARAMETERS (README)",
    steps: [version(), step(RXTX_MAP, [TX, RAM_BASE + RAM_SIZE - 0x1000n, 2], { regs: error(FFA_RET.INVALID_PARAMETERS) }), map()],
  });

  // Reserved fields and versions.
  add({
    name: "DEN0077 FFA_FEATURES: RXTX_MAP's maximum buffer size ([31:16]) is for v1.2 callers: a v1.1 caller gets w2 = 0",
    steps: [version(V1_1), features(F.FFA_RXTX_MAP.smc32, success())],
  });
  add({
    name: "DEN0077 FFA_FEATURES: a v1.0 caller is not offered the v1.1 ABIs (SPM_ID_GET, MSG_SEND2, NOTIFICATION_BIND)",
    steps: [version(V1_0), ...[F.FFA_SPM_ID_GET, F.FFA_MSG_SEND2, F.FFA_NOTIFICATION_BIND].map((d) => features(d.smc32!, error(FFA_RET.NOT_SUPPORTED)))],
  });
  add({
    name: "DEN0077 FFA_RXTX_MAP: w3[31:6] (reserved, MBZ) set is INVALID_PARAMETERS",
    steps: [version(), step(RXTX_MAP, [TX, RX, 1 | (1 << 6)], { regs: error(FFA_RET.INVALID_PARAMETERS) }), map()],
  });
  add({
    name: "DEN0077 FFA_PARTITION_INFO_GET: flags w5[31:1] (reserved, MBZ) set is INVALID_PARAMETERS",
    steps: [version(), map(), step(PIG, [...UUID, 2], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(PIG, [...UUID, 0], { regs: success(1n, 24n) })],
  });
  add({
    name: "DEN0077 FFA_RX_RELEASE: w1 (a VM ID only the hypervisor's instance takes) non-zero from a VM is INVALID_PARAMETERS",
    steps: [version(), map(), step(PIG, [...UUID, 0], { regs: success(1n, 24n) }), step(F.FFA_RX_RELEASE.smc32, [VM_ID], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(F.FFA_RX_RELEASE.smc32, [], { regs: success() })],
  });
  add({
    name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ: to the caller itself is INVALID_PARAMETERS",
    steps: [version(), step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, VM_ID), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });
  add({
    name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ: to a partition that does not serve this VM is INVALID_PARAMETERS; PARTITION_INFO_GET does not show it",
    platform: { spmc: { partitions: [{ ...PLATFORM.spmc.partitions[0]!, vms: [] }] } },
    steps: [version(), map(), step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(PIG, [...UUID, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });
  if (a64) {
    const upper = 0xdead_beef_0000_0000n;
    add({
      name: "SMCCC FF-A SMC32 calls from AArch64: the callee reads W registers only, and the upper halves of the results are zero",
      steps: [
        step(F.FFA_VERSION.smc32, [upper | BigInt(V1_2)], { regs: { 0: BigInt(V1_2) } }),
        step(F.FFA_RXTX_MAP.smc32, [upper | TX, upper | RX, upper | 1n], { regs: success() }),
        step(PIG, [...UUID.map((w) => upper | BigInt(w)), upper], { regs: success(1n, 24n) }),
        step(F.FFA_RX_RELEASE.smc32, [upper], { regs: success() }),
        step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [upper | BigInt(ffaEndpoints(VM_ID, SP)), upper, upper | BigInt(TEST_SP_CMD.ECHO), upper | 5n], {
          regs: { 0: BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), 1: BigInt(ffaEndpoints(SP, VM_ID)), 2: 0n, 3: BigInt(TEST_SP_CMD.ECHO), 4: 5n },
        }),
      ],
    });
    const [ulo, uhi] = ffaUuidRegs(TEST_PARTITION_UUID);
    const payload = Array.from({ length: 13 }, (_, i) => 0x0101_0101_0101_0101n * BigInt(i + 1));
    add({
      name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ2 (v1.2): to the test partition by its UUID: FFA_MSG_SEND_DIRECT_RESP2, x4-x17 its answer",
      steps: [
        version(),
        step(F.FFA_MSG_SEND_DIRECT_REQ2.smc64!, [ffaEndpoints(VM_ID, SP), ulo, uhi, TEST_SP_CMD.ECHO, ...payload], {
          regs: { 0: BigInt(F.FFA_MSG_SEND_DIRECT_RESP2.smc64!), 1: BigInt(ffaEndpoints(SP, VM_ID)), 4: BigInt(TEST_SP_CMD.ECHO), ...Object.fromEntries(payload.map((v, i) => [5 + i, v])) },
        }),
      ],
    });
    const [nlo, nhi] = ffaUuidRegs(UNKNOWN);
    add({
      name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ2: a UUID the receiver does not have is INVALID_PARAMETERS",
      steps: [version(), step(F.FFA_MSG_SEND_DIRECT_REQ2.smc64!, [ffaEndpoints(VM_ID, SP), nlo, nhi, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
    });
    add({
      name: "DEN0077 FFA_MSG_SEND_DIRECT_REQ2: NOT_SUPPORTED for a v1.1 caller (a v1.2 ABI)",
      steps: [version(V1_1), step(F.FFA_MSG_SEND_DIRECT_REQ2.smc64!, [ffaEndpoints(VM_ID, SP), ulo, uhi, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.NOT_SUPPORTED) })],
    });
    const SUCCESS64 = BigInt(F.FFA_SUCCESS.smc64!);
    add({
      name: "DEN0077 FFA_PARTITION_INFO_GET_REGS (v1.2): FFA_SUCCESS (SMC64), x2 = last index, current index, tag 0, size 24; x3-x5 the test partition",
      steps: [
        version(),
        step(F.FFA_PARTITION_INFO_GET_REGS.smc64!, [ulo, uhi, 0], {
          regs: { 0: SUCCESS64, 1: 0n, 2: 24n << 48n, 3: BigInt(SP) | (1n << 16n) | (BigInt(TEST_SP_PROPERTIES) << 32n), 4: ulo, 5: uhi, 6: 0n },
        }),
        step(F.FFA_PARTITION_INFO_GET_REGS.smc64!, [0, 0, 0], { regs: { 0: SUCCESS64, 2: 24n << 48n, 3: BigInt(SP) | (1n << 16n) | (BigInt(TEST_SP_PROPERTIES) << 32n) } }),
      ],
    });
    add({
      name: "DEN0077 FFA_PARTITION_INFO_GET_REGS: a start index past the last, or an unknown UUID, is INVALID_PARAMETERS",
      steps: [version(), step(F.FFA_PARTITION_INFO_GET_REGS.smc64!, [ulo, uhi, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(F.FFA_PARTITION_INFO_GET_REGS.smc64!, [nlo, nhi, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
    });
    add({
      name: "DEN0077 FFA_MEM_SHARE (SMC64): one page, FFA_SUCCESS with a handle FFA_MEM_RECLAIM takes",
      memory: share,
      steps: [version(), map(), step(F.FFA_MEM_SHARE.smc64!, [len, len, 0, 0], { regs: { 0: SUCCESS, 1: 0n } }), step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: success() })],
    });
  }

  add({
    name: "DEN0077 FFA_MEM_SHARE: a v1.0 caller's descriptor (32-byte header, 16-byte access descriptors) is understood",
    memory: [{ at: TX, bytes: encodeMemTransaction({ ...shareTx, flags: 0 }, "v1.0") }, share[1]!],
    steps: [
      version(V1_0),
      map(),
      step(MEM_SHARE, [v10len, v10len, 0, 0], { regs: { 0: SUCCESS, 1: 0n } }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.CHECKSUM, { step: 2, reg: 2 }, { step: 2, reg: 3 }], { regs: { 3: 0n, 4: 3n * 4096n, 5: 1n } }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: success() }),
    ],
  });
  add({
    name: "DEN0077 FFA_MEM_RECLAIM: flags w3[31:2] (reserved, MBZ) set is INVALID_PARAMETERS, and the region stays shared",
    memory: share,
    steps: [
      version(),
      map(),
      step(MEM_SHARE, [len, len, 0, 0], { regs: { 0: SUCCESS } }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 4], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: success() }),
    ],
  });

  add({
    name: "DEN0077 FFA_MEM_RECLAIM: the zero-memory flag (w3 bit 0) on a shared region is INVALID_PARAMETERS (zeroing is for lent or donated memory), and the page keeps its contents",
    memory: share,
    steps: [
      version(),
      map(),
      step(MEM_SHARE, [len, len, 0, 0], { regs: { 0: SUCCESS } }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: success() }),
    ],
    memoryAfter: [{ at: SHARED, bytes: new Uint8Array(64).fill(3) }],
  });

  // Memory transaction descriptors a VM may not send (each needs its own TX contents).
  const descriptor = (o: { sender?: number; receiver?: number; address?: bigint; pages?: number }): MemoryBytes => ({
    at: TX,
    bytes: encodeMemTransaction({ sender: o.sender ?? VM_ID, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: o.receiver ?? SP, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: o.address ?? SHARED, pageCount: o.pages ?? 1 }] }, "v1.2"),
  });
  const raw = (tx: Partial<FfaMemTransaction>): MemoryBytes => ({ at: TX, bytes: encodeMemTransaction({ ...shareTx, ...tx }, "v1.2") });
  const rx = (permissions: number, flags = 0) => [{ receiver: SP, permissions, flags }];
  const refused = (name: string, d: MemoryBytes, code: number) =>
    add({ name, memory: [d], steps: [version(), map(), step(MEM_SHARE, [d.bytes.length, d.bytes.length, 0, 0], { regs: error(code) }), step(F.FFA_RX_RELEASE.smc32, [], { regs: error(FFA_RET.DENIED) })] });
  refused("DEN0077 FFA_MEM_SHARE: a sender ID in the descriptor other than the caller's is INVALID_PARAMETERS", descriptor({ sender: 2 }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: a receiver the VM does not know is INVALID_PARAMETERS", descriptor({ receiver: 0x8003 }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: the VM itself as the receiver is INVALID_PARAMETERS", descriptor({ receiver: VM_ID }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: a page outside the VM's RAM is DENIED (README)", descriptor({ address: RAM_BASE + RAM_SIZE }), FFA_RET.DENIED);
  refused("DEN0077 FFA_MEM_SHARE: a page of the VM's own RX/TX buffers is DENIED (README)", descriptor({ address: RX }), FFA_RET.DENIED);
  refused("DEN0077 FFA_MEM_SHARE: a constituent not 4 KiB aligned is INVALID_PARAMETERS", descriptor({ address: SHARED + 0x800n }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: no receiver is INVALID_PARAMETERS", raw({ receivers: [] }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: the same receiver twice is INVALID_PARAMETERS", raw({ receivers: [...rx(FFA_MEM_PERM.DATA_RW), ...rx(FFA_MEM_PERM.DATA_RW)] }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: device memory is INVALID_PARAMETERS (a share is of normal memory)", raw({ attributes: FFA_MEM_ATTR.TYPE_DEVICE | FFA_MEM_ATTR.DEVICE_nGnRE }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: the NS bit (attributes bit 6) set by the sender is INVALID_PARAMETERS", raw({ attributes: FFA_MEM_ATTR_NORMAL_WB_IS | FFA_MEM_ATTR.NS }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: the zero-memory flag (MBZ for a share) is INVALID_PARAMETERS", raw({ flags: FFA_MEM_FLAG.CLEAR }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: flags bits [31:2] set are INVALID_PARAMETERS", raw({ flags: 1 << 4 }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: a handle in the sender's descriptor (MBZ) is INVALID_PARAMETERS", raw({ handle: 5n }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: reserved data access permission (3) is INVALID_PARAMETERS", raw({ receivers: rx(FFA_MEM_PERM.DATA_RESERVED) }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: executable (instruction access X) is INVALID_PARAMETERS for a share", raw({ receivers: rx(FFA_MEM_PERM.DATA_RW | FFA_MEM_PERM.INSTR_X) }), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: the non-retrieval borrower flag (the hypervisor's) is INVALID_PARAMETERS", raw({ receivers: rx(FFA_MEM_PERM.DATA_RW, 1) }), FFA_RET.INVALID_PARAMETERS);
  /** The one-page share's descriptor with a u32 at `offset` replaced (v1.2 layout: 48-byte header, 32-byte access descriptor). */
  const patched = (offset: number, value: number): MemoryBytes => {
    const bytes = encodeMemTransaction(shareTx, "v1.2");
    new DataView(bytes.buffer).setUint32(offset, value, true);
    return { at: TX, bytes };
  };
  const COMPOSITE = 48 + 32;
  refused("DEN0077 FFA_MEM_SHARE: a composite's total page count other than its constituents' sum is INVALID_PARAMETERS", patched(COMPOSITE, 2), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: a composite's range count beyond the descriptor is INVALID_PARAMETERS", patched(COMPOSITE + 4, 2), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: a composite offset past the descriptor's end is INVALID_PARAMETERS", patched(48 + 4, 0x1000), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: an endpoint memory access descriptor size that is no version's (24; 16 or 32) is INVALID_PARAMETERS", patched(24, 24), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: an access descriptor array offset not 16-byte aligned is INVALID_PARAMETERS", patched(32, 40), FFA_RET.INVALID_PARAMETERS);
  refused("DEN0077 FFA_MEM_SHARE: a constituent of 0 pages is INVALID_PARAMETERS", patched(COMPOSITE + 16 + 8, 0), FFA_RET.INVALID_PARAMETERS);
  add({
    name: "DEN0077 FFA_MEM_SHARE: the descriptor at an address in x3/w4 instead of TX is NOT_SUPPORTED (README: no dynamically allocated buffers, FEATURES w2 bit 0 clear)",
    memory: share,
    steps: [version(), map(), step(MEM_SHARE, [len, len, SHARED, 1], { regs: error(FFA_RET.NOT_SUPPORTED) })],
  });
  add({
    name: "DEN0077 FFA_MEM_SHARE: a total length of 0, or longer than the fragment in TX holds, is INVALID_PARAMETERS",
    memory: share,
    steps: [version(), map(), step(MEM_SHARE, [0, 0, 0, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(MEM_SHARE, [len, 8192, 0, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });

  add({
    name: "DEN0077 FFA_MEM_SHARE: overlapping constituents are INVALID_PARAMETERS",
    memory: [{ at: TX, bytes: encodeMemTransaction({ ...shareTx, ranges: [{ address: SHARED, pageCount: 2 }, { address: SHARED + 0x1000n, pageCount: 1 }] }, "v1.2") }],
    steps: [version(), map(), step(MEM_SHARE, [len + 16, len + 16, 0, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });
  add({
    name: "DEN0077 FFA_RXTX_MAP: a page the VM has shared is DENIED as a buffer (README)",
    memory: share,
    steps: [version(), map(), step(MEM_SHARE, [len, len, 0, 0], { regs: { 0: SUCCESS } }), step(F.FFA_RXTX_UNMAP.smc32, [0], { regs: success() }), step(RXTX_MAP, [SHARED, RX, 1], { regs: error(FFA_RET.DENIED) })],
  });
  add({
    name: "DEN0077 FFA_MSG_WAIT: w1 (MBZ) or w2 bits other than 0 set is INVALID_PARAMETERS",
    steps: [version(), step(F.FFA_MSG_WAIT.smc32, [1, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }), step(F.FFA_MSG_WAIT.smc32, [0, 2], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });

  const two = { ...shareTx, ranges: [{ address: SHARED, pageCount: 1 }, { address: SHARED + 0x2000n, pageCount: 1 }] };
  const twoLen = encodeMemTransaction(two, "v1.2").length;
  add({
    name: "DEN0077 FFA_MEM_SHARE: two constituents apart: the partition reads both pages (w4-w7 of FFA_SUCCESS MBZ)",
    memory: [{ at: TX, bytes: encodeMemTransaction(two, "v1.2") }, { at: SHARED, bytes: new Uint8Array(4096).fill(1) }, { at: SHARED + 0x2000n, bytes: new Uint8Array(4096).fill(2) }],
    steps: [
      version(),
      map(),
      step(MEM_SHARE, [twoLen, twoLen, 0, 0], { regs: { 0: SUCCESS, 1: 0n, 4: 0n, 5: 0n, 6: 0n, 7: 0n } }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.CHECKSUM, { step: 2, reg: 2 }, { step: 2, reg: 3 }], { regs: { 3: 0n, 4: 3n * 4096n, 5: 2n } }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: success() }),
    ],
  });
  add({
    name: "DEN0077 FFA_MEM_LEND: one page lent to the partition, which reads it; FFA_MEM_RECLAIM returns it; a share of it meanwhile is DENIED",
    memory: share,
    steps: [
      version(),
      map(),
      step(F.FFA_MEM_LEND.smc32, [len, len, 0, 0], { regs: { 0: SUCCESS, 1: 0n } }),
      step(MEM_SHARE, [len, len, 0, 0], { regs: error(FFA_RET.DENIED) }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.CHECKSUM, { step: 2, reg: 2 }, { step: 2, reg: 3 }], { regs: { 3: 0n, 4: 3n * 4096n, 5: 1n } }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 2, reg: 2 }, { step: 2, reg: 3 }, 0], { regs: success() }),
      step(MEM_SHARE, [len, len, 0, 0], { regs: { 0: SUCCESS } }),
    ],
  });
  if (a64) {
    add({
      name: "DEN0077 FFA_ERROR for SMC64 calls: the status in w2, x2's upper half zero (DIRECT_REQ_64, MEM_SHARE_64, NOTIFICATION_INFO_GET_64, PARTITION_INFO_GET_REGS)",
      memory: share,
      steps: [
        version(),
        step(F.FFA_MSG_SEND_DIRECT_REQ.smc64!, [ffaEndpoints(VM_ID, 0x8003), 0, TEST_SP_CMD.ECHO], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
        step(F.FFA_MEM_SHARE.smc64!, [len, len, 0, 0], { regs: error(FFA_RET.DENIED) }),
        step(F.FFA_NOTIFICATION_INFO_GET.smc64!, [], { regs: error(FFA_RET.NO_DATA) }),
        step(F.FFA_PARTITION_INFO_GET_REGS.smc64!, [0, 0, 5], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      ],
    });
  }

  // Fragmented transactions: the first fragment in TX, FFA_MEM_FRAG_RX, the rest written to TX for FRAG_TX.
  const twoBytes = encodeMemTransaction(two, "v1.2");
  const first = twoLen - 16;
  const FRAG_RX = BigInt(F.FFA_MEM_FRAG_RX.smc32), FRAG_TX = F.FFA_MEM_FRAG_TX.smc32;
  const pages = [{ at: SHARED, bytes: new Uint8Array(4096).fill(1) }, { at: SHARED + 0x2000n, bytes: new Uint8Array(4096).fill(2) }];
  const rest = { at: TX, bytes: twoBytes.slice(first) };
  add({
    name: "DEN0077 FFA_MEM_FRAG_TX: a descriptor in two fragments: FFA_MEM_FRAG_RX with the bytes received in w3, then FFA_SUCCESS with the handle; the partition reads both pages",
    memory: [{ at: TX, bytes: twoBytes }, ...pages],
    steps: [
      version(),
      map(),
      // FFA_MEM_FRAG_RX: w1/w2 the handle, w3 the bytes received, w4 (a sender ID only at the SPMC's instance) 0.
      step(MEM_SHARE, [twoLen, first, 0, 0], { regs: { 0: FRAG_RX, 3: BigInt(first), 4: 0n, 5: 0n, 6: 0n, 7: 0n } }),
      // The handle of the last answer is the one FRAG_RX gave.
      step(FRAG_TX, [{ step: 2, reg: 1 }, { step: 2, reg: 2 }, 16, 0], { write: rest, regs: { 0: SUCCESS, 1: 0n }, same: { 2: { step: 2, reg: 1 }, 3: { step: 2, reg: 2 } } }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.CHECKSUM, { step: 3, reg: 2 }, { step: 3, reg: 3 }], { regs: { 3: 0n, 4: 3n * 4096n, 5: 2n } }),
      step(F.FFA_MEM_RECLAIM.smc32, [{ step: 3, reg: 2 }, { step: 3, reg: 3 }, 0], { regs: success() }),
    ],
  });
  add({
    name: "DEN0077 FFA_MEM_FRAG_TX: a handle other than the transaction's is INVALID_PARAMETERS and ends the transaction; a new share then succeeds",
    memory: [{ at: TX, bytes: twoBytes }, ...pages],
    steps: [
      version(),
      map(),
      step(MEM_SHARE, [twoLen, first, 0, 0], { regs: { 0: FRAG_RX } }),
      step(FRAG_TX, [0x1234, 0, 16, 0], { write: rest, regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(FRAG_TX, [{ step: 2, reg: 1 }, { step: 2, reg: 2 }, 16, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(MEM_SHARE, [len, len, 0, 0], { write: share[0], regs: { 0: SUCCESS } }),
    ],
  });
  add({
    name: "DEN0077 FFA_MEM_SHARE: another transaction while one's fragments are still arriving is BUSY (README)",
    memory: [{ at: TX, bytes: twoBytes }, ...pages],
    steps: [
      version(),
      map(),
      step(MEM_SHARE, [twoLen, first, 0, 0], { regs: { 0: FRAG_RX } }),
      step(MEM_SHARE, [len, len, 0, 0], { write: share[0], regs: error(FFA_RET.BUSY) }),
      step(FRAG_TX, [{ step: 2, reg: 1 }, { step: 2, reg: 2 }, 16, 0], { write: rest, regs: { 0: SUCCESS } }),
    ],
  });
  add({
    name: "DEN0077 FFA_MEM_FRAG_TX: a fragment longer than what remains of the total is INVALID_PARAMETERS",
    memory: [{ at: TX, bytes: twoBytes }, ...pages],
    steps: [
      version(),
      map(),
      step(MEM_SHARE, [twoLen, first, 0, 0], { regs: { 0: FRAG_RX } }),
      step(FRAG_TX, [{ step: 2, reg: 1 }, { step: 2, reg: 2 }, 32, 0], { write: rest, regs: error(FFA_RET.INVALID_PARAMETERS) }),
    ],
  });

  // Notifications (§10, §13.x NOTIFICATION_*): the test partition sets what the VM bound.
  const BIND = F.FFA_NOTIFICATION_BIND.smc32, GET = F.FFA_NOTIFICATION_GET.smc32, INFO_GET = F.FFA_NOTIFICATION_INFO_GET.smc32;
  add({
    name: "DEN0077 FFA_NOTIFICATION_BIND/GET: a notification the VM bound to the partition, set by it, is in GET's w2 (partitions' bitmap) once, then clear",
    steps: [
      version(),
      step(BIND, [ffaEndpoints(SP, VM_ID), 0, 0b100, 0], { regs: success() }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.NOTIFY, VM_ID, 0b100, 0], { regs: { 0: BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), 3: 0n } }),
      step(GET, [VM_ID, 1], { regs: { 0: SUCCESS, 1: 0n, 2: 0b100n, 3: 0n } }),
      step(GET, [VM_ID, 1], { regs: { 0: SUCCESS, 2: 0n, 3: 0n } }),
    ],
  });
  add({
    name: "DEN0077 FFA_NOTIFICATION_BIND: a sender that is not a partition the VM may use, or a receiver other than the caller, is INVALID_PARAMETERS",
    steps: [
      version(),
      step(BIND, [ffaEndpoints(0x8003, VM_ID), 0, 1, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
      step(BIND, [ffaEndpoints(SP, 2), 0, 1, 0], { regs: error(FFA_RET.INVALID_PARAMETERS) }),
    ],
  });
  add({
    name: "DEN0077 FFA_NOTIFICATION_GET: a receiver other than the caller is INVALID_PARAMETERS",
    steps: [version(), step(GET, [2, 1], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });
  add({
    name: "DEN0077 FFA_NOTIFICATION_INFO_GET: NO_DATA with nothing pending; with one pending, FFA_SUCCESS listing the VM's ID",
    steps: [
      version(),
      step(INFO_GET, [], { regs: error(FFA_RET.NO_DATA) }),
      step(BIND, [ffaEndpoints(SP, VM_ID), 0, 1, 0], { regs: success() }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(VM_ID, SP), 0, TEST_SP_CMD.NOTIFY, VM_ID, 1, 0], { regs: { 3: 0n } }),
      // w2: bit 0 no more pending, [11:7] one list, [13:12] of 0 vCPU IDs; w3[15:0] the VM's ID.
      step(INFO_GET, [], { regs: { 0: SUCCESS, 1: 0n, 2: 1n << 7n, 3: BigInt(VM_ID) } }),
      step(GET, [VM_ID, 1], { regs: { 0: SUCCESS, 2: 1n } }),
      step(INFO_GET, [], { regs: error(FFA_RET.NO_DATA) }),
    ],
  });
  add({
    name: "DEN0077 FFA_NOTIFICATION_SET: offered by FFA_FEATURES, so implemented: a notification the partition has not bound for the VM is DENIED",
    steps: [version(), features(F.FFA_NOTIFICATION_SET.smc32, success()), step(F.FFA_NOTIFICATION_SET.smc32, [ffaEndpoints(VM_ID, SP), 0, 1, 0], { regs: error(FFA_RET.DENIED) })],
  });
  add({
    name: "DEN0077 FFA_NOTIFICATION_GET: flags w2[31:4] (reserved, MBZ) set is INVALID_PARAMETERS",
    steps: [version(), step(GET, [VM_ID, 0x11], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });
  add({
    name: "DEN0077 FFA_RUN: offered by FFA_FEATURES; a vCPU index beyond the partition's execution contexts is INVALID_PARAMETERS",
    knownGap:
      "the modelled SPMC implements no FFA_RUN (src/firmware/spmc/spmc.ts has no case for it), so the mediator's forward is answered NOT_SUPPORTED while its FEATURES offers FFA_RUN (DEN0077 §13.3, §14.2; Hafnium's api_ffa_run: a vCPU index past the partition's count is INVALID_PARAMETERS)",
    steps: [version(), features(F.FFA_RUN.smc32, success()), step(F.FFA_RUN.smc32, [(SP << 16) | 5], { regs: error(FFA_RET.INVALID_PARAMETERS) })],
  });
  add({
    name: "DEN0077 FFA_NOTIFICATION_BIND: NOT_SUPPORTED for a v1.0 caller (a v1.1 ABI)",
    steps: [version(V1_0), step(BIND, [ffaEndpoints(SP, VM_ID), 0, 1, 0], { regs: error(FFA_RET.NOT_SUPPORTED) })],
  });

  // A VM without FF-A (no `tee: ffa`): its FF-A calls are denied by policy, SMCCC NOT_SUPPORTED.
  cases.push({
    name: "smcvisor FF-A: a VM without tee: ffa gets SMCCC NOT_SUPPORTED (-1) for every FF-A call",
    // The same platform, its partition serving no VM (a partition may only name FF-A VMs).
    platform: { spmc: { partitions: [{ ...PLATFORM.spmc.partitions[0]!, vms: [] }] } },
    vm: { id: 2 },
    steps: [
      step(F.FFA_VERSION.smc32, [V1_2], { ret: SMCCC_NOT_SUPPORTED }),
      step(F.FFA_ID_GET.smc32, [], { ret: SMCCC_NOT_SUPPORTED }),
      step(F.FFA_FEATURES.smc32, [F.FFA_VERSION.smc32], { ret: SMCCC_NOT_SUPPORTED }),
      step(RXTX_MAP, [TX, RX, 1], { ret: SMCCC_NOT_SUPPORTED }),
      step(F.FFA_MSG_SEND_DIRECT_REQ.smc32, [ffaEndpoints(2, SP), 0, TEST_SP_CMD.ECHO], { ret: SMCCC_NOT_SUPPORTED }),
    ],
  });
  return cases;
}
