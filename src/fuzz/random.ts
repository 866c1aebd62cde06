/**
 * The campaign's only source of randomness: a small seeded generator (sfc32, Chris Doty-Humphrey's
 * "small fast chaotic" generator from PractRand), so that a seed and a call count replay a campaign
 * exactly. Not for anything secret.
 */

/** A seed as the command line takes it: a decimal or 0x-hex integer below 2^53. */
export function parseSeed(text: string): number | null {
  const t = text.replace(/_/g, "");
  if (!/^(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(t)) return null;
  const v = Number(t);
  return Number.isSafeInteger(v) ? v : null;
}

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // The seed's two halves and a constant; 15 rounds to mix them, as sfc32's author advises.
    this.a = seed >>> 0;
    this.b = Math.floor(seed / 0x1_0000_0000) >>> 0;
    this.c = 0x9e37_79b9;
    this.d = 1;
    for (let i = 0; i < 15; i++) this.u32();
  }

  /** 32 random bits, as an unsigned number. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n), n ≤ 2^32. */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() < p * 0x1_0000_0000;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** 64 random bits as a bigint (allocates: for arguments, not for the loop's bookkeeping). */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}
