/**
 * SMCCC_ARCH_SOC_ID encodings, DEN0028 §7.4.
 *   type 0 (SoC_ID_version):  bit 31 zero, [30:24] JEP-106 bank index (number of continuation codes),
 *                             [23:16] JEP-106 identification code with its parity bit, [15:0] SoC ID.
 *                             Linux prints "jep106:BBII:SSSS" with the parity dropped (drivers/firmware/smccc/soc_id.c).
 *   type 1 (SoC_ID_revision): bit 31 zero, [30:0] revision
 *   type 2 (SoC_ID_name, v1.6, SMC64 only): NUL-terminated ASCII in x1-x17, 8 bytes per register,
 *           the first character in the least significant byte of x1.
 */
import type { SocId } from "../../policy/platform.js";

export function socIdType0(s: SocId): number {
  return ((s.jep106Bank & 0x7f) << 24) | ((s.jep106Id & 0xff) << 16) | (s.soc & 0xffff);
}

export function socIdType1(s: SocId): number {
  return s.revision & 0x7fff_ffff;
}

/** The name as 17 registers of words (x_n low at [2(n-1)], high at [2(n-1)+1]). */
export function socIdName(name: string): Uint32Array {
  const bytes = new Uint8Array(136);
  for (let i = 0; i < name.length && i < 135; i++) bytes[i] = name.charCodeAt(i) & 0x7f;
  return new Uint32Array(bytes.buffer.slice(0));
}

/** Decodes registers x1-x17 back to the name (for tests and tools). */
export function decodeSocIdName(regs: readonly bigint[]): string {
  let out = "";
  for (let r = 1; r <= 17; r++) {
    const v = regs[r] ?? 0n;
    for (let b = 0n; b < 8n; b++) {
      const c = Number((v >> (8n * b)) & 0xffn);
      if (c === 0) return out;
      out += String.fromCharCode(c);
    }
  }
  return out;
}
