/**
 * ESR_ELx for trapped HVC and SMC, Arm ARM D24.2.45 (ESR_EL2); Linux arch/arm64/include/asm/esr.h.
 *   EC [31:26]  0x12 HVC from AArch32, 0x13 SMC from AArch32, 0x16 HVC from AArch64, 0x17 SMC from AArch64
 *   IL [25]     1 = 32-bit instruction
 *   ISS         imm16 in [15:0] for HVC and AArch64 SMC; AArch32 SMC: CV [24], COND [23:20], CCKNOWNPASS [19]
 */
export const EC_HVC32 = 0x12;
export const EC_SMC32 = 0x13;
export const EC_HVC64 = 0x16;
export const EC_SMC64 = 0x17;

export const ESR_IL = 1 << 25;

export type Conduit = "smc" | "hvc";

export function esrFor(conduit: Conduit, aarch32: boolean, imm = 0): number {
  const ec = aarch32 ? (conduit === "smc" ? EC_SMC32 : EC_HVC32) : conduit === "smc" ? EC_SMC64 : EC_HVC64;
  // An AArch32 SMC has no immediate in the ESR (D24.2.45); a trapped one reports CV = 0 here.
  const iss = aarch32 && conduit === "smc" ? 0 : imm & 0xffff;
  return ((ec << 26) | ESR_IL | iss) >>> 0;
}

export function esrEc(esr: number): number {
  return esr >>> 26;
}

export function esrImm16(esr: number): number {
  return esr & 0xffff;
}

/**
 * Whether a trapped AArch32 SMC would have failed its condition check. An SMC can trap even when its
 * condition fails (Arm ARM D1.17.2); the hypervisor must then skip it (Xen check_conditional_instr).
 * `pstate` supplies NZCV in bits 31:28 (SPSR_EL2 of the trap).
 */
export function aarch32ConditionFailed(esr: number, pstate: number): boolean {
  if (esr & (1 << 19)) return false; // CCKNOWNPASS: the condition is known to have passed
  if (!(esr & (1 << 24))) return false; // CV = 0: condition unknown; treat as AL, like Xen
  return !conditionHolds((esr >>> 20) & 0xf, pstate >>> 28);
}

/** Arm ARM "ConditionHolds()": cond is the 4-bit condition code, nzcv the flags. */
export function conditionHolds(cond: number, nzcv: number): boolean {
  const n = (nzcv >> 3) & 1, z = (nzcv >> 2) & 1, c = (nzcv >> 1) & 1, v = nzcv & 1;
  let result: boolean;
  switch (cond >> 1) {
    case 0: result = z === 1; break; // EQ
    case 1: result = c === 1; break; // CS
    case 2: result = n === 1; break; // MI
    case 3: result = v === 1; break; // VS
    case 4: result = c === 1 && z === 0; break; // HI
    case 5: result = n === v; break; // GE
    case 6: result = n === v && z === 0; break; // GT
    default: result = true; // AL
  }
  return (cond & 1) === 1 && cond !== 0xf ? !result : result;
}
