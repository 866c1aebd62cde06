import type { FunctionTable } from "./table.js";

/**
 * OP-TEE SMC interface: optee_os core/arch/arm/include/sm/optee_smc.h. All calls are SMC32; fast
 * calls use OEN 50 (0xB2...), yielding calls 0x32..., API queries OEN 63 (0xBF00FFxx).
 */
export const OPTEE_FUNCTIONS = {
  OPTEE_SMC_CALLS_COUNT: { smc32: 0xbf00_ff00 },
  OPTEE_SMC_CALLS_UID: { smc32: 0xbf00_ff01 },
  OPTEE_SMC_CALLS_REVISION: { smc32: 0xbf00_ff03 },
  OPTEE_SMC_CALL_GET_OS_UUID: { smc32: 0xb200_0000 },
  OPTEE_SMC_CALL_GET_OS_REVISION: { smc32: 0xb200_0001 },
  OPTEE_SMC_RETURN_FROM_RPC: { smc32: 0x3200_0003 },
  OPTEE_SMC_CALL_WITH_ARG: { smc32: 0x3200_0004 },
  OPTEE_SMC_GET_SHM_CONFIG: { smc32: 0xb200_0007 },
  OPTEE_SMC_L2CC_MUTEX: { smc32: 0xb200_0008 },
  OPTEE_SMC_EXCHANGE_CAPABILITIES: { smc32: 0xb200_0009 },
  OPTEE_SMC_DISABLE_SHM_CACHE: { smc32: 0xb200_000a },
  OPTEE_SMC_ENABLE_SHM_CACHE: { smc32: 0xb200_000b },
  OPTEE_SMC_BOOT_SECONDARY: { smc32: 0xb200_000c },
  OPTEE_SMC_VM_CREATED: { smc32: 0xb200_000d },
  OPTEE_SMC_VM_DESTROYED: { smc32: 0xb200_000e },
  OPTEE_SMC_GET_THREAD_COUNT: { smc32: 0xb200_000f },
  OPTEE_SMC_ENABLE_ASYNC_NOTIF: { smc32: 0xb200_0010 },
  OPTEE_SMC_GET_ASYNC_NOTIF_VALUE: { smc32: 0xb200_0011 },
  OPTEE_SMC_CALL_WITH_RPC_ARG: { smc32: 0x3200_0012 },
  OPTEE_SMC_CALL_WITH_REGD_ARG: { smc32: 0x3200_0013 },
  OPTEE_SMC_GET_PROTMEM_CONFIG: { smc32: 0xb200_0014 },
} as const satisfies FunctionTable;
