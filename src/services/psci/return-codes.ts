/** PSCI return codes, DEN0022 F.b §5.2.2 (table 6). PSCI 0.1 uses only SUCCESS to DENIED. */
export const PSCI_RET = {
  SUCCESS: 0,
  NOT_SUPPORTED: -1,
  INVALID_PARAMETERS: -2,
  DENIED: -3,
  ALREADY_ON: -4,
  ON_PENDING: -5,
  INTERNAL_FAILURE: -6,
  NOT_PRESENT: -7,
  DISABLED: -8,
  INVALID_ADDRESS: -9,
} as const;

/** AFFINITY_INFO results, DEN0022 §5.7. */
export const AFFINITY = { ON: 0, OFF: 1, ON_PENDING: 2 } as const;
