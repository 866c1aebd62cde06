/**
 * FF-A (DEN0077 v1.0-v1.2) constants shared by both sides of the ABI: the hypervisor's mediator
 * (src/mediators/ffa/) and the modelled SPMC (src/firmware/spmc/). Function IDs live in
 * src/smccc/functions/ffa.ts; this module holds everything else a register or a descriptor carries.
 *
 * Checked against Linux include/linux/arm_ffa.h, Xen xen/arch/arm/tee/ffa_private.h, Hafnium
 * inc/vmapi/hf/ffa.h and TF-A include/services/ffa_svc.h (values only; nothing copied).
 */
import { FFA_FUNCTIONS } from "../functions/ffa.js";

/** FFA_ERROR status codes (DEN0077, FFA_ERROR): signed 32-bit values in w2. */
export const FFA_RET = {
  NOT_SUPPORTED: -1,
  INVALID_PARAMETERS: -2,
  NO_MEMORY: -3,
  BUSY: -4,
  INTERRUPTED: -5,
  DENIED: -6,
  RETRY: -7,
  ABORTED: -8,
  NO_DATA: -9,
  /** v1.2 only (Hafnium's FFA_NOT_READY): a partition has not finished its initialisation. */
  NOT_READY: -10,
} as const;
export type FfaError = (typeof FFA_RET)[keyof typeof FFA_RET];

/** FFA_SUCCESS's own status value (w2 of the few calls that return a status, such as framework responses). */
export const FFA_RET_OK = 0;

/** The name of an FFA_ERROR code ("FFA_INVALID_PARAMETERS"), for traces and test messages. */
export function ffaErrorName(code: number): string {
  for (const [name, value] of Object.entries(FFA_RET)) if (value === code) return `FFA_${name}`;
  return `FFA_ERROR(${code})`;
}

// ---------------------------------------------------------------------------------------------------
// Versions (DEN0077, FFA_VERSION): a 31-bit value, major in [30:16], minor in [15:0], bit 31 MBZ.

export const FFA_VERSION_MBZ = 0x8000_0000;
export const FFA_VERSION_MAJOR_SHIFT = 16;
export const FFA_VERSION_MAJOR_MASK = 0x7fff;
export const FFA_VERSION_MINOR_MASK = 0xffff;

export function ffaVersion(major: number, minor: number): number {
  return ((major & FFA_VERSION_MAJOR_MASK) << FFA_VERSION_MAJOR_SHIFT) | (minor & FFA_VERSION_MINOR_MASK);
}
export function ffaVersionMajor(version: number): number {
  return (version >>> FFA_VERSION_MAJOR_SHIFT) & FFA_VERSION_MAJOR_MASK;
}
export function ffaVersionMinor(version: number): number {
  return version & FFA_VERSION_MINOR_MASK;
}
/** A caller's FFA_VERSION argument is well formed when bit 31 is zero. */
export function ffaVersionValid(version: number): boolean {
  return (version & FFA_VERSION_MBZ) === 0;
}
/**
 * Whether a caller that asked for `caller` can talk to a callee of version `callee` (FFA_VERSION: same
 * major version and the caller's minor not above the callee's).
 */
export function ffaVersionCompatible(caller: number, callee: number): boolean {
  return ffaVersionMajor(caller) === ffaVersionMajor(callee) && ffaVersionMinor(caller) <= ffaVersionMinor(callee);
}

export const FFA_VERSION_1_0 = 0x1_0000;
export const FFA_VERSION_1_1 = 0x1_0001;
export const FFA_VERSION_1_2 = 0x1_0002;

// ---------------------------------------------------------------------------------------------------
// Endpoint IDs (DEN0077, partition identification): u16; bit 15 set for the secure world by the convention Linux, Xen and
// Hafnium follow; 0 is the hypervisor at the physical FF-A instance.

export const FFA_ID_HYPERVISOR = 0;
/** The SPMC's own ID, as TF-A's and Hafnium's manifests give it (FFA_SPM_ID_GET). */
export const FFA_ID_SPMC = 0x8000;
export const FFA_ID_SECURE_BIT = 0x8000;
export const FFA_ID_MASK = 0xffff;

export function ffaIdIsSecure(id: number): boolean {
  return (id & FFA_ID_SECURE_BIT) !== 0;
}

/** w1 of messaging calls: sender in [31:16], receiver in [15:0]. */
export function ffaSenderOf(w1: number): number {
  return (w1 >>> 16) & FFA_ID_MASK;
}
export function ffaReceiverOf(w1: number): number {
  return w1 & FFA_ID_MASK;
}
export function ffaEndpoints(sender: number, receiver: number): number {
  return (((sender & FFA_ID_MASK) << 16) | (receiver & FFA_ID_MASK)) >>> 0;
}

// ---------------------------------------------------------------------------------------------------
// Partition properties (DEN0077 v1.1 Table 13.34 and v1.2, the partition information descriptor's
// properties; Hafnium inc/vmapi/hf/ffa.h, Xen ffa_private.h).

export const FFA_PARTITION_PROP = {
  /** Bit 0: receives direct requests (DIRECT_REQ). */
  DIRECT_REQ_RECV: 1 << 0,
  /** Bit 1: sends direct requests. */
  DIRECT_REQ_SEND: 1 << 1,
  /** Bit 2: sends and receives indirect messages. */
  INDIRECT_MSG: 1 << 2,
  /** Bit 3: receives notifications. */
  NOTIFICATION_RECV: 1 << 3,
  /** Bits [5:4]: what the ID names: 0 a PE endpoint, 1 a SEPID independent, 2 SEPID dependent, 3 auxiliary. */
  ID_TYPE_MASK: 3 << 4,
  ID_TYPE_PE: 0 << 4,
  ID_TYPE_SEPID_INDEP: 1 << 4,
  ID_TYPE_SEPID_DEP: 2 << 4,
  ID_TYPE_AUX: 3 << 4,
  /** Bit 6: wants a VM_CREATED framework message for each VM the hypervisor creates. */
  VM_CREATED_MSG: 1 << 6,
  /** Bit 7: wants a VM_DESTROYED framework message for each VM the hypervisor destroys. */
  VM_DESTROYED_MSG: 1 << 7,
  /** Bit 8: runs in AArch64 state. */
  AARCH64: 1 << 8,
  /** Bit 9 (v1.2): receives DIRECT_REQ2. */
  DIRECT_REQ2_RECV: 1 << 9,
  /** Bit 10 (v1.2): sends DIRECT_REQ2. */
  DIRECT_REQ2_SEND: 1 << 10,
} as const;

/** FFA_PARTITION_INFO_GET w5 bit 0: return the count only, write nothing to the RX buffer (v1.1+). */
export const FFA_PARTITION_INFO_GET_COUNT_FLAG = 1;

// ---------------------------------------------------------------------------------------------------
// Framework messages (DEN0077 v1.1+, direct messaging): DIRECT_REQ/RESP w2 bit 31 marks a framework
// message, [7:0] its type, [30:8] MBZ. VM availability messages carry the VM ID in w5, the response's
// status in w3 (Xen xen/arch/arm/tee/ffa.c ffa_direct_req_send_vm).

export const FFA_MSG_FLAG_FRAMEWORK = 0x8000_0000;
export const FFA_MSG_TYPE_MASK = 0xff;
/** w2 bits [30:8] of a framework message: MBZ. */
export const FFA_MSG_FRAMEWORK_MBZ = 0x7fff_ff00;
export const FFA_FRAMEWORK_MSG = {
  PSCI: 0x0,
  VM_CREATED_REQ: 0x4,
  VM_CREATED_RESP: 0x5,
  VM_DESTROYED_REQ: 0x6,
  VM_DESTROYED_RESP: 0x7,
} as const;
/** The argument register (x5) that carries the VM ID of a VM availability message. */
export const FFA_VM_AVAIL_VM_ID_REG = 5;
/** The argument register (x3) that carries a framework response's status. */
export const FFA_FRAMEWORK_RESP_STATUS_REG = 3;

// ---------------------------------------------------------------------------------------------------
// Memory management (DEN0077 v1.1 chapter 10 and the ABIs; in v1.2 the memory management supplement).

/** FF-A counts memory in 4 KiB pages whatever the translation granule (DEN0077; Linux FFA_PAGE_SIZE). */
export const FFA_PAGE_SIZE = 4096;

/**
 * Memory region attributes (DEN0077 v1.1 Table 10.18): u8 in v1.0, u16 in v1.1+ where bit 6 is the NS bit
 * (only a relayer sets it, in a retrieve response) and [15:7] are MBZ.
 */
export const FFA_MEM_ATTR = {
  SHAREABILITY_MASK: 0x3,
  NON_SHAREABLE: 0x0,
  OUTER_SHAREABLE: 0x2,
  INNER_SHAREABLE: 0x3,
  /** [3:2]: cacheability for normal memory (1 non-cacheable, 3 write-back), or the device attributes. */
  CACHEABILITY_MASK: 0x3 << 2,
  NON_CACHEABLE: 0x1 << 2,
  WRITE_BACK: 0x3 << 2,
  DEVICE_nGnRnE: 0x0 << 2,
  DEVICE_nGnRE: 0x1 << 2,
  DEVICE_nGRE: 0x2 << 2,
  DEVICE_GRE: 0x3 << 2,
  /** [5:4]: memory type. */
  TYPE_MASK: 0x3 << 4,
  TYPE_NOT_SPECIFIED: 0x0 << 4,
  TYPE_DEVICE: 0x1 << 4,
  TYPE_NORMAL: 0x2 << 4,
  /** Bit 6 (v1.1+): non-secure memory, set by the relayer in retrieve responses only. */
  NS: 1 << 6,
  /** v1.1+: bits [15:7] MBZ (the attributes field is u16). v1.0: the field is u8, bits [7:6] reserved. */
  MBZ_V1_1: 0xff80,
  MBZ_V1_0: 0xc0,
} as const;

/** Normal, write-back, inner shareable: what Linux and Xen share (Xen FFA_NORMAL_MEM_REG_ATTR). */
export const FFA_MEM_ATTR_NORMAL_WB_IS =
  FFA_MEM_ATTR.TYPE_NORMAL | FFA_MEM_ATTR.WRITE_BACK | FFA_MEM_ATTR.INNER_SHAREABLE;

/**
 * Memory access permissions (DEN0077 v1.1 Table 10.15): [1:0] data access (0 not specified, 1 RO, 2 RW,
 * 3 reserved), [3:2] instruction access (0 not specified, 1 NX, 2 X, 3 reserved), [7:4] MBZ.
 */
export const FFA_MEM_PERM = {
  DATA_MASK: 0x3,
  DATA_NOT_SPECIFIED: 0x0,
  DATA_RO: 0x1,
  DATA_RW: 0x2,
  DATA_RESERVED: 0x3,
  INSTR_MASK: 0x3 << 2,
  INSTR_NOT_SPECIFIED: 0x0 << 2,
  INSTR_NX: 0x1 << 2,
  INSTR_X: 0x2 << 2,
  INSTR_RESERVED: 0x3 << 2,
  MBZ: 0xf0,
} as const;

/** Endpoint memory access descriptor flags (DEN0077 v1.1 Table 10.16): bit 0 non-retrieval borrower (hypervisor use); [7:1] MBZ. */
export const FFA_MEM_ACCESS_FLAG = {
  NON_RETRIEVAL_BORROWER: 1 << 0,
  MBZ: 0xfe,
} as const;

/**
 * Flags of a memory transaction descriptor (DEN0077 v1.1 §10.11.4, flags usage). Their meaning depends on the
 * call: for FFA_MEM_SHARE/LEND/DONATE only bits [1:0] exist; a retrieve request adds [10:2].
 */
export const FFA_MEM_FLAG = {
  /** Bit 0: zero the memory before mapping it in the receivers (MBZ for MEM_SHARE). */
  CLEAR: 1 << 0,
  /** Bit 1: the relayer may time-slice the operation. */
  TIME_SLICE: 1 << 1,
  /** Bit 2 (retrieve): zero the memory after the receiver relinquishes it. */
  CLEAR_RELINQUISH: 1 << 2,
  /** Bits [4:3] (retrieve): the transaction type the receiver expects. */
  TRANSACTION_TYPE_SHIFT: 3,
  TRANSACTION_TYPE_MASK: 0x3 << 3,
  /** Bits [8:5] (retrieve): address range alignment hint, bit 9 says it is valid. */
  ALIGN_HINT_MASK: 0xf << 5,
  ALIGN_HINT_VALID: 1 << 9,
  /** Bit 10 (v1.2, retrieve by the hypervisor): bypass the multiple borrower identifier check. */
  BYPASS_BORROWER_CHECK: 1 << 10,
  /** MEM_SHARE/LEND/DONATE: bits [31:2] MBZ. */
  MBZ_SEND: 0xffff_fffc,
  /** Retrieve request (v1.1): bits [31:10] MBZ; v1.2 frees bit 10. */
  MBZ_RETRIEVE_V1_1: 0xffff_fc00,
  MBZ_RETRIEVE_V1_2: 0xffff_f800,
} as const;

/** The transaction type in retrieve flags [4:3]: 0 lets the response say which one it was. */
export const FFA_MEM_TRANSACTION = {
  UNSPECIFIED: 0,
  SHARE: 1,
  LEND: 2,
  DONATE: 3,
} as const;
export type FfaMemTransactionType = (typeof FFA_MEM_TRANSACTION)[keyof typeof FFA_MEM_TRANSACTION];

/** FFA_MEM_RELINQUISH descriptor flags (DEN0077, FFA_MEM_RELINQUISH): bit 0 zero after relinquish, bit 1 time slice. */
export const FFA_MEM_RELINQUISH_FLAG = {
  CLEAR: 1 << 0,
  TIME_SLICE: 1 << 1,
  MBZ: 0xffff_fffc,
} as const;

/** FFA_MEM_RECLAIM w3 (DEN0077, FFA_MEM_RECLAIM): bit 0 zero the memory, bit 1 time slice, [31:2] MBZ. */
export const FFA_MEM_RECLAIM_FLAG = {
  CLEAR: 1 << 0,
  TIME_SLICE: 1 << 1,
  MBZ: 0xffff_fffc,
} as const;

/** Memory region handle (DEN0077 v1.1 §10.9.2): bit 63 names the allocator, 1 the hypervisor, 0 the SPMC. */
export const FFA_HANDLE_ALLOCATOR_HYPERVISOR = 1n << 63n;
export const FFA_HANDLE_INVALID = 0xffff_ffff_ffff_ffffn;

/** A handle from the two 32-bit halves registers carry it in (low word first). */
export function ffaHandle(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
export function ffaHandleLo(handle: bigint): number {
  return Number(handle & 0xffff_ffffn);
}
export function ffaHandleHi(handle: bigint): number {
  return Number((handle >> 32n) & 0xffff_ffffn);
}

// ---------------------------------------------------------------------------------------------------
// FFA_FEATURES (DEN0077, FFA_FEATURES).

/** w1 bit 31 clear: a feature ID in [7:0], [30:8] MBZ; bit 31 set: a function ID. */
export const FFA_FEATURES_FUNCTION_BIT = 0x8000_0000;
export const FFA_FEATURES_FEATURE_MBZ = 0x7fff_ff00;
export const FFA_FEATURE_ID = {
  /** Notification pending interrupt: SUCCESS w2 = its interrupt ID. */
  NPI: 0x1,
  /** Schedule receiver interrupt. */
  SRI: 0x2,
  /** Managed exit interrupt. */
  MEI: 0x3,
} as const;

/** FFA_RXTX_MAP's properties: [1:0] minimum buffer size and alignment; v1.2: [31:16] maximum pages (0: no limit). */
export const FFA_FEATURES_RXTX_MAP = {
  MIN_SIZE_4K: 0x0,
  MIN_SIZE_64K: 0x1,
  MIN_SIZE_16K: 0x2,
  MIN_SIZE_MASK: 0x3,
  MAX_PAGES_SHIFT: 16,
} as const;

/** FFA_MEM_SHARE/LEND/DONATE/RETRIEVE_REQ properties (FFA_FEATURES; v1.2 memory management supplement Table 3.1). */
export const FFA_FEATURES_MEM = {
  /** Bit 0: descriptors in a dynamically allocated buffer (w3/w4 address and pages) are accepted. */
  DYNAMIC_BUFFER: 1 << 0,
  /** Bit 1 (RETRIEVE_REQ, v1.1+): the NS bit is set in retrieve responses; also the input property a caller passes. */
  NS_BIT: 1 << 1,
  /** Bit 2 (RETRIEVE_REQ, v1.2): the hypervisor may retrieve on behalf of a VM. */
  HYPERVISOR_RETRIEVE: 1 << 2,
} as const;

/** FFA_NOTIFICATION_* (DEN0077 v1.1+, notifications): flags and bitmap selectors used by the hypervisor and VMs. */
export const FFA_NOTIFICATION = {
  /** BIND flags bit 0: per-vCPU notifications. */
  FLAG_PER_VCPU: 1 << 0,
  /** GET flags: which bitmaps to read and clear. */
  GET_SP: 1 << 0,
  GET_VM: 1 << 1,
  GET_SPM: 1 << 2,
  GET_HYP: 1 << 3,
  /** SET flags bit 1: delay the schedule receiver interrupt; bit 0: per-vCPU. */
  SET_DELAY_SRI: 1 << 1,
  /** INFO_GET: w2 bit 0 more pending, [11:7] ID count, [13:12]... per-list counts from bit 12 (2 bits each). */
  INFO_GET_MORE_PENDING: 1 << 0,
  INFO_GET_LIST_COUNT_SHIFT: 7,
  INFO_GET_LIST_COUNT_MASK: 0x1f,
  INFO_GET_ID_COUNTS_SHIFT: 12,
} as const;

/** Whether a function ID is an FF-A one (OEN 4, function numbers 0x60-0xFF). */
export function isFfaFunction(fid: number): boolean {
  return (fid & 0x3f00_0000) === 0x0400_0000 && (fid & 0xffff) >= 0x60 && (fid & 0xffff) <= 0xff;
}

/** The FF-A function name of a function ID ("FFA_MEM_SHARE_64"), or undefined. */
export function ffaFunctionName(fid: number): string | undefined {
  for (const [name, ids] of Object.entries(FFA_FUNCTIONS)) {
    const id = ids as { smc32?: number; smc64?: number };
    if (id.smc32 === fid >>> 0) return "smc64" in id ? `${name}_32` : name;
    if (id.smc64 === fid >>> 0) return "smc32" in id ? `${name}_64` : name;
  }
  return undefined;
}
