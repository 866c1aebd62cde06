/**
 * Platform profiles: what the (modelled) host answers for the Spectre-class workaround queries, the
 * way KVM and Xen answer SMCCC_ARCH_FEATURES from host state. Values are the FEATURES results of
 * DEN0028 §7.5-7.8 (SMCCC_ARCH_WORKAROUND_1..4), named.
 */
export const WA1_ANSWERS = { absent: -1, required: 0, "not-required": 1 } as const;
export const WA2_ANSWERS = { absent: -1, "not-required-any": -2, dynamic: 0, "not-required": 1 } as const;
export const WA3_ANSWERS = WA1_ANSWERS;
export const WA4_ANSWERS = { absent: -1, mitigated: 0 } as const;

export interface Workarounds {
  readonly wa1: keyof typeof WA1_ANSWERS;
  readonly wa2: keyof typeof WA2_ANSWERS;
  readonly wa3: keyof typeof WA3_ANSWERS;
  readonly wa4: keyof typeof WA4_ANSWERS;
}

/**
 * CPU profiles. Facts: TF-A lib/cpus/aarch64/<cpu>.S (check_wa_cve_2017_5715, _2018_3639, _2022_23960)
 * and Linux arch/arm64/kernel/proton-pack.c (which cores are affected by what).
 */
export const CPU_PROFILES = {
  /** QEMU's default for the shim: Spectre-v2 and SSB affected, BHB mitigated by the WA1 sequence. */
  "cortex-a57": { wa1: "required", wa2: "dynamic", wa3: "required", wa4: "absent" },
  "cortex-a72": { wa1: "required", wa2: "dynamic", wa3: "required", wa4: "absent" },
  /** In-order core: no speculation issues. */
  "cortex-a53": { wa1: "not-required", wa2: "not-required-any", wa3: "not-required", wa4: "absent" },
  /** CSV2 core: not Spectre-v2 affected, but SSB and BHB affected. */
  "cortex-a76": { wa1: "not-required", wa2: "dynamic", wa3: "required", wa4: "absent" },
  "neoverse-n1": { wa1: "not-required", wa2: "dynamic", wa3: "required", wa4: "absent" },
  /** Firmware that predates the workaround calls: every query answers "not implemented". */
  "legacy-firmware": { wa1: "absent", wa2: "absent", wa3: "absent", wa4: "absent" },
} as const satisfies Record<string, Workarounds>;

export type CpuProfileName = keyof typeof CPU_PROFILES;

/**
 * Consistency rules between the workaround answers. Returns a message per broken rule, keyed by the
 * workaround it concerns.
 */
export function workaroundProblems(w: Workarounds): { key: keyof Workarounds; message: string }[] {
  const problems: { key: keyof Workarounds; message: string }[] = [];
  // DEN0028 §7.8: WORKAROUND_3 also mitigates CVE-2017-5715, so firmware that offers it offers WA1 too;
  // Linux falls back to WA1 when WA3 is absent, never the other way round.
  if (w.wa3 !== "absent" && w.wa1 === "absent") {
    problems.push({ key: "wa3", message: "SMCCC_ARCH_WORKAROUND_3 is offered but SMCCC_ARCH_WORKAROUND_1 is absent; firmware that implements WA3 implements WA1" });
  }
  // WA3 covers Spectre-v2 as well: a PE that needs WA1 and has WA3 must need WA3.
  if (w.wa1 === "required" && w.wa3 === "not-required") {
    problems.push({ key: "wa3", message: "SMCCC_ARCH_WORKAROUND_1 is required, so SMCCC_ARCH_WORKAROUND_3 (which also covers CVE-2017-5715) cannot be 'not-required'" });
  }
  return problems;
}

export interface SocId {
  /** JEP-106 bank index: the number of 0x7F continuation codes (Arm Ltd: 4), bits 30:24 of type 0. */
  readonly jep106Bank: number;
  /** JEP-106 identification code with its parity bit (Arm Ltd: 0x3B), bits 23:16 of type 0. */
  readonly jep106Id: number;
  /** Implementation-defined SoC ID, bits 15:0 of type 0. */
  readonly soc: number;
  /** SoC revision, bits 30:0 of type 1. */
  readonly revision: number;
  /** SoC name for type 2 (SMCCC 1.6, SMC64 only), at most 135 bytes of ASCII. */
  readonly name?: string | undefined;
}
