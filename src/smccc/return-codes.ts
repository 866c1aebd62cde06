/** SMCCC return codes for Arm Architecture calls, DEN0028 §7.1 (table 7-1). Other interfaces have their own. */
export const SMCCC_RET = {
  SUCCESS: 0,
  NOT_SUPPORTED: -1,
  NOT_REQUIRED: -2,
  INVALID_PARAMETER: -3,
} as const;

/** -1 as the caller reads it from a W register. */
export const NOT_SUPPORTED_W = 0xffff_ffff;
