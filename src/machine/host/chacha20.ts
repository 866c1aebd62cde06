/**
 * ChaCha20 (RFC 8439 §2.4) through the host's OpenSSL (`node:crypto`), for hosts that have it: the same
 * function as the secure world's own `chacha20` (src/firmware/optee/chacha20.ts), which stays the portable
 * one (the browser and any host without OpenSSL use it). OpenSSL's vectorised code is about 2.5x the pure
 * TypeScript on a 64 KiB buffer here (docs/performance.md).
 *
 * OpenSSL's "chacha20" takes a 16-byte IV: the 32-bit block counter (little-endian) then the 96-bit nonce.
 * When the counter passes 2^32 OpenSSL carries into the nonce's first word, where RFC 8439 wraps the
 * counter alone; a buffer that would cross that point goes to the portable code, so both always agree.
 */
import { createCipheriv } from "node:crypto";
import { chacha20 as portableChaCha20 } from "../../firmware/optee/chacha20.js";

/** Below this many bytes the portable code is faster than setting up an OpenSSL context. */
const OPENSSL_FROM = 1024;
const BLOCK = 64;

export function hostChaCha20(key: Uint8Array, nonce: Uint8Array, counter: number, input: Uint8Array, output: Uint8Array): void {
  if (key.length !== 32 || nonce.length !== 12) throw new RangeError("ChaCha20 needs a 32-byte key and a 12-byte nonce");
  if (output.length < input.length) throw new RangeError(`ChaCha20 output (${output.length} bytes) is shorter than its input (${input.length})`);
  const first = counter >>> 0;
  const blocks = Math.ceil(input.length / BLOCK);
  if (input.length < OPENSSL_FROM || first + blocks > 2 ** 32) return portableChaCha20(key, nonce, counter, input, output);
  const iv = new Uint8Array(16);
  new DataView(iv.buffer).setUint32(0, first, true);
  iv.set(nonce, 4);
  const cipher = createCipheriv("chacha20", key, iv);
  // update() answers in a buffer of its own; one copy into the output (in place included) is ~3% of the cipher.
  output.set(cipher.update(input));
  cipher.final();
}
