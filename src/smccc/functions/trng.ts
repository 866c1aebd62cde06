import type { FunctionTable } from "./table.js";

/** True Random Number Generator firmware interface (DEN0098 1.0) §2. */
export const TRNG_FUNCTIONS = {
  TRNG_VERSION: { smc32: 0x8400_0050 },
  TRNG_FEATURES: { smc32: 0x8400_0051 },
  TRNG_GET_UUID: { smc32: 0x8400_0052 },
  TRNG_RND32: { smc32: 0x8400_0053 },
  TRNG_RND64: { smc64: 0xc400_0053 },
} as const satisfies FunctionTable;
