/**
 * SMCCC versions, encoded as SMCCC_VERSION returns them (DEN0028 §7.2): bits 30:16 major, 15:0 minor.
 * What each version adds to the rules smcvisor applies:
 *   1.0 (A)  registers x1-x6 in, x0-x3 out; x4-x17 may be clobbered
 *   1.1 (B)  SMCCC_VERSION, SMCCC_ARCH_FEATURES, SMCCC_ARCH_WORKAROUND_1; x4-x17 preserved
 *   1.2 (C)  SMC64 x1-x17 in and x0-x17 out, SMC32 w1-w7 / w0-w7; SMCCC_ARCH_SOC_ID; Call Count deprecated
 *   1.3 (D)  SVE live-state hint in bit 16; SMCCC_ARCH_WORKAROUND_3
 *   1.4 (E)  non-zero SMC/HVC immediates reserved; SMCCC_ARCH_SOC_ID clarified
 *   1.5 (F)  vendor-specific EL3 monitor owner (OEN 7); SMCCC_ARCH_FEATURE_AVAILABILITY
 *   1.6 (G)  SMCCC_ARCH_SOC_ID type 2 (SoC name, SMC64); SMCCC_ARCH_WORKAROUND_4
 */
export const SMCCC_VERSIONS = {
  "1.0": 0x1_0000,
  "1.1": 0x1_0001,
  "1.2": 0x1_0002,
  "1.3": 0x1_0003,
  "1.4": 0x1_0004,
  "1.5": 0x1_0005,
  "1.6": 0x1_0006,
} as const;

export type SmcccVersionName = keyof typeof SMCCC_VERSIONS;
export type SmcccVersion = (typeof SMCCC_VERSIONS)[SmcccVersionName];

export const SMCCC_1_0 = SMCCC_VERSIONS["1.0"];
export const SMCCC_1_1 = SMCCC_VERSIONS["1.1"];
export const SMCCC_1_2 = SMCCC_VERSIONS["1.2"];
export const SMCCC_1_3 = SMCCC_VERSIONS["1.3"];
export const SMCCC_1_4 = SMCCC_VERSIONS["1.4"];
export const SMCCC_1_5 = SMCCC_VERSIONS["1.5"];
export const SMCCC_1_6 = SMCCC_VERSIONS["1.6"];

export function smcccVersionName(v: number): string {
  return `${(v >>> 16) & 0x7fff}.${v & 0xffff}`;
}

export function isSmcccVersionName(s: string): s is SmcccVersionName {
  return Object.prototype.hasOwnProperty.call(SMCCC_VERSIONS, s);
}
