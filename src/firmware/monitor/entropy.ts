/**
 * The secure world's entropy source, behind TRNG. The model conditions nothing itself: it draws bytes
 * from a generator the hypervisor injects (the host's CSPRNG in real runs, a seeded PRNG in tests) and
 * can be given a budget, so tests can watch it run dry (TRNG NO_ENTROPY).
 */
import type { EntropySource } from "../../router/ports.js";

/** The model's entropy-source UUID for TRNG_GET_UUID (fixed, version 4). */
export const MODEL_TRNG_UUID = "3d7a8c51-0e2b-4f6c-8a19-5c4b2e7f9d03";

export type ByteGenerator = (out: Uint8Array) => void;

export class ModelEntropy implements EntropySource {
  readonly uuid = MODEL_TRNG_UUID;
  /** Bytes left before the source runs dry; Infinity for a source that never does. */
  budget: number;

  constructor(private readonly generate: ByteGenerator, budget = Infinity) {
    this.budget = budget;
  }

  fill(out: Uint8Array): boolean {
    if (out.length > this.budget) return false;
    this.budget -= out.length;
    this.generate(out);
    return true;
  }
}

/**
 * A deterministic generator (xoshiro128**, Blackman and Vigna 2018) for tests and reproducible runs. Not
 * for secrets: real runs inject the host's CSPRNG.
 */
export function seededGenerator(seed: number): ByteGenerator {
  // SplitMix32 expands the seed into the four state words, none of them zero.
  let x = seed >>> 0;
  const next32 = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let s0 = next32(), s1 = next32(), s2 = next32(), s3 = next32();
  const rotl = (v: number, k: number) => ((v << k) | (v >>> (32 - k))) >>> 0;
  return (out) => {
    for (let i = 0; i < out.length; i += 4) {
      const r = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
      const t = (s1 << 9) >>> 0;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = rotl(s3, 11);
      for (let b = 0; b < 4 && i + b < out.length; b++) out[i + b] = (r >>> (8 * b)) & 0xff;
    }
  };
}
