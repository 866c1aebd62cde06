/**
 * OP-TEE's SMC and message ABI: optee_os core/arch/arm/include/sm/optee_smc.h, core/include/optee_msg.h;
 * Linux drivers/tee/optee/optee_smc.h, optee_msg.h. Values only: no behaviour here.
 */
import { OPTEE_FUNCTIONS } from "../functions/optee.js";

/** OPTEE_SMC_<NAME> of the ABI reference (functions/optee.ts) as OPTEE_SMC.<NAME>. */
type ShortName<K> = K extends `OPTEE_SMC_${infer S}` ? S : never;

/**
 * The OP-TEE function IDs by their short names (OPTEE_SMC.CALL_WITH_ARG), derived from the one table of
 * them, `OPTEE_FUNCTIONS` in functions/optee.ts (the ABI reference `smcvisor decode` names IDs from):
 * the values are written once.
 */
export const OPTEE_SMC = Object.freeze(
  Object.fromEntries(Object.entries(OPTEE_FUNCTIONS).map(([name, def]) => [name.slice("OPTEE_SMC_".length), def.smc32])),
) as { readonly [K in keyof typeof OPTEE_FUNCTIONS as ShortName<K>]: (typeof OPTEE_FUNCTIONS)[K]["smc32"] };

/** a0 return values (optee_smc.h OPTEE_SMC_RETURN_*). */
export const OPTEE_RET = {
  OK: 0,
  ETHREAD_LIMIT: 1,
  EBUSY: 2,
  ERESUME: 3,
  EBADADDR: 4,
  EBADCMD: 5,
  ENOMEM: 6,
  ENOTAVAIL: 7,
  UNKNOWN_FUNCTION: 0xffff_ffff,
} as const;

export const OPTEE_RPC_PREFIX = 0xffff_0000;

/**
 * The UUID OP-TEE's FF-A partition is found by (FFA_PARTITION_INFO_GET; Linux drivers/tee/optee/ffa_abi.c
 * optee_ffa_device_id, and optee_os's partition manifest).
 */
export const OPTEE_FFA_UUID = "486178e0-e7f8-11e3-bc5e-0002a5d5c51b";
/** RPC functions returned as a0 = OPTEE_RPC_PREFIX | func. */
export const OPTEE_RPC_FUNC = { ALLOC: 0, FREE: 2, FOREIGN_INTR: 4, CMD: 5 } as const;

export function isRpc(a0: number): boolean {
  return (a0 & 0xffff_0000) >>> 0 === OPTEE_RPC_PREFIX && a0 >>> 0 !== OPTEE_RET.UNKNOWN_FUNCTION;
}

/** Secure-world capabilities (EXCHANGE_CAPABILITIES a1). */
export const SEC_CAP = {
  HAVE_RESERVED_SHM: 1 << 0,
  UNREGISTERED_SHM: 1 << 1,
  DYNAMIC_SHM: 1 << 2,
  VIRTUALIZATION: 1 << 3,
  MEMREF_NULL: 1 << 4,
  ASYNC_NOTIF: 1 << 5,
  RPC_ARG: 1 << 6,
} as const;
export const NSEC_CAP_UNIPROCESSOR = 1;

/** OP-TEE's message-API UID and OS UUID words (passed through verbatim: big-endian words of the string). */
export const OPTEE_MSG_UID = [0x384f_b3e0, 0xe7f8_11e3, 0xaf63_0002, 0xa5d5_c51b] as const;
export const OPTEE_OS_UUID = [0x4861_78e0, 0xe7f8_11e3, 0xbc5e_0002, 0xa5d5_c51b] as const;
export const OPTEE_MSG_REVISION = { major: 2, minor: 0 } as const;

/** optee_msg_arg commands. */
export const MSG_CMD = {
  OPEN_SESSION: 0,
  INVOKE_COMMAND: 1,
  CLOSE_SESSION: 2,
  CANCEL: 3,
  REGISTER_SHM: 4,
  UNREGISTER_SHM: 5,
  DO_BOTTOM_HALF: 6,
  STOP_ASYNC_NOTIF: 7,
} as const;

/** Parameter attribute types (attr bits 7:0). */
export const ATTR = {
  NONE: 0,
  VALUE_INPUT: 1,
  VALUE_OUTPUT: 2,
  VALUE_INOUT: 3,
  RMEM_INPUT: 5,
  RMEM_OUTPUT: 6,
  RMEM_INOUT: 7,
  TMEM_INPUT: 9,
  TMEM_OUTPUT: 0xa,
  TMEM_INOUT: 0xb,
} as const;
export const ATTR_TYPE_MASK = 0xff;
export const ATTR_META = 1 << 8;
export const ATTR_NONCONTIG = 1 << 9;

/** TEE result codes (GlobalPlatform TEE Client API) and origins. */
export const TEEC = {
  SUCCESS: 0,
  ERROR_GENERIC: 0xffff_0000,
  ERROR_ACCESS_DENIED: 0xffff_0001,
  ERROR_CANCEL: 0xffff_0002,
  ERROR_BAD_FORMAT: 0xffff_0005,
  ERROR_BAD_PARAMETERS: 0xffff_0006,
  ERROR_BAD_STATE: 0xffff_0007,
  ERROR_ITEM_NOT_FOUND: 0xffff_0008,
  ERROR_NOT_SUPPORTED: 0xffff_000a,
  ERROR_OUT_OF_MEMORY: 0xffff_000c,
  ERROR_BUSY: 0xffff_000d,
  ERROR_COMMUNICATION: 0xffff_000e,
  ERROR_SHORT_BUFFER: 0xffff_0010,
  ERROR_TARGET_DEAD: 0xffff_3024,
} as const;
export const ORIGIN = { API: 1, COMMS: 2, TEE: 3, TRUSTED_APP: 4 } as const;

/** Commands the normal world serves for OP-TEE (optee_rpc_cmd.h), passed by RPC CMD. */
export const RPC_CMD = { LOAD_TA: 0, RPMB: 1, FS: 2, GET_TIME: 3, NOTIFICATION: 4, SUSPEND: 5, SHM_ALLOC: 6, SHM_FREE: 7 } as const;
/** RPC ALLOC/shm types. */
export const RPC_SHM_TYPE = { APPL: 0, KERNEL: 1, GLOBAL: 2 } as const;

export const MSG_HEADER_SIZE = 32;
export const MSG_PARAM_SIZE = 32;
/** Parameters that fit a 4 KiB page with the header (optee_msg.h OPTEE_MSG_GET_ARG_SIZE). */
export const MAX_PARAMS = 127;
/** A non-contiguous page list page: 511 page addresses, then the next list page's address. */
export const PAGELIST_ENTRIES = 511;
export const PAGE_SIZE = 4096;
