/**
 * OP-TEE's message protocol over FF-A direct messages (optee_os core/arch/arm/include/optee_ffa.h, Linux
 * drivers/tee/optee/optee_ffa.h): the service ID is w3 of FFA_MSG_SEND_DIRECT_REQ, w4-w7 its arguments,
 * and the answer is w3-w7 of the direct response. Bit 31 of the service ID marks a yielding call (one that
 * runs on an OP-TEE thread and may return to the normal world with an RPC before it completes).
 */
import { msgSize } from "../../smccc/optee/msg.js";

export { OPTEE_FFA_UUID } from "../../smccc/optee/abi.js";

/** OPTEE_FFA_VERSION_MAJOR/MINOR: the API version GET_API_VERSION answers (Linux wants major 1, minor ≥ 0). */
export const OPTEE_FFA_VERSION = { major: 1, minor: 0 } as const;

export const OPTEE_FFA_YIELDING_CALL_BIT = 0x8000_0000;

/** Service IDs (w3 of the request). */
export const OPTEE_FFA = {
  GET_API_VERSION: 0,
  GET_OS_VERSION: 1,
  EXCHANGE_CAPABILITIES: 2,
  UNREGISTER_SHM: 3,
  /** Not offered: the model has no asynchronous notifications (no SEC_CAP ASYNC_NOTIF). */
  ENABLE_ASYNC_NOTIF: 5,
  /** Not offered: no protected memory. */
  RELEASE_PROTMEM: 8,
  YIELDING_CALL_WITH_ARG: (OPTEE_FFA_YIELDING_CALL_BIT | 0) >>> 0,
  YIELDING_CALL_RESUME: (OPTEE_FFA_YIELDING_CALL_BIT | 1) >>> 0,
} as const;

/** w4 of a yielding call's answer: completed, or an RPC the normal world serves before it resumes the thread (w7). */
export const OPTEE_FFA_YIELDING_CALL_RETURN = { DONE: 0, RPC_CMD: 1, INTERRUPT: 2 } as const;

/** EXCHANGE_CAPABILITIES w5 bits. */
export const OPTEE_FFA_SEC_CAP = { ARG_OFFSET: 1 << 0, ASYNC_NOTIF: 1 << 1, RPMB_PROBE: 1 << 2, PROTMEM: 1 << 3 } as const;

/**
 * Parameters of the RPC argument, which the normal world places right after the call's own argument in
 * the same shared memory (thread_spmc.c yielding_call_with_arg: THREAD_RPC_MAX_NUM_PARAMS); what
 * EXCHANGE_CAPABILITIES announces in w4 bits 7:0, and what Linux reserves (optee->rpc_param_count).
 */
export const THREAD_RPC_MAX_NUM_PARAMS = 4;
export const RPC_ARG_SIZE = msgSize(THREAD_RPC_MAX_NUM_PARAMS);

/** fmem.global_id of a null memref (optee_msg.h OPTEE_MSG_FMEM_INVALID_GLOBAL_ID). */
export const OPTEE_MSG_FMEM_INVALID_GLOBAL_ID = 0xffff_ffff_ffff_ffffn;

/**
 * struct optee_msg_param_fmem in the parameter's value union: offs_low (u32) and offs_high (u16) make the
 * offset into the region, internal_offs (u16) is where in its first page the region starts; then size and
 * global_id (u64 each) where value b and c are.
 */
export const FMEM_OFFS_HIGH = 4;
export const FMEM_INTERNAL_OFFS = 6;

/** TEE results thread_spmc.c and entry_std.c give that the SMC ABI's table lacks (tee_api_defines.h). */
export const TEE_ERROR_NOT_IMPLEMENTED = 0xffff_0009;
export const TEE_ERROR_SECURITY = 0xffff_800f;
