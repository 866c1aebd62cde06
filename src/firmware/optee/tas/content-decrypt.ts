/**
 * The content-decryption TA of the DRM-playback use case: it decrypts a shared-memory input buffer into an
 * output buffer with the content key provisioned to the calling VM alone (a VM without one is refused).
 * ChaCha20 (RFC 8439); the 96-bit nonce is value a and b of parameter 2 (as two little-endian u32) plus
 * four zero bytes, and the block counter starts at 0. Long buffers are processed in 256 KiB pieces with a
 * chance for the normal world to take its interrupts between them (a foreign interrupt RPC), as a real TA
 * is preempted by the normal world's interrupts: a piece takes about a millisecond here, a normal-world
 * tick is 4 ms at Linux's usual HZ. (It was 16 KiB when the cipher was ten times slower; a preemption
 * every 40 µs modelled no real interrupt and cost a trip through the guest per piece.)
 *
 * The buffers are usually the guest's shared memory itself (ta.ts): each input byte is read once and only
 * the guest's own plaintext depends on it, so decrypting straight from and into them is safe. Input and
 * output may be the same buffer (in place); buffers that overlap otherwise give that guest garbage, in its
 * own memory only.
 */
import { TEEC } from "../../../smccc/optee/abi.js";
import type { TrustedApp } from "../ta.js";

export const CONTENT_DECRYPT_UUID = "d7a2b9c4-5e61-4f08-a3c7-1b9e2d4f6a58";
export const TA_DECRYPT_CMD_DECRYPT = 0;
export const TA_DECRYPT_CMD_KEY_PRESENT = 1;
/** How much the TA decrypts between chances for the normal world to take its interrupts. */
export const DECRYPT_PIECE = 256 * 1024;
const PIECE = DECRYPT_PIECE;

export const contentDecryptTa: TrustedApp<{ bytes: number }> = {
  uuid: CONTENT_DECRYPT_UUID,
  name: "content_decrypt",
  open: () => ({ result: TEEC.SUCCESS, state: { bytes: 0 } }),
  *invoke(state, cmd, params, env) {
    const key = env.contentKey();
    if (cmd === TA_DECRYPT_CMD_KEY_PRESENT) {
      const p = params[0];
      if (!p || p.type !== "value-out") return { result: TEEC.ERROR_BAD_PARAMETERS };
      p.a = key ? 1 : 0;
      return { result: TEEC.SUCCESS };
    }
    if (cmd !== TA_DECRYPT_CMD_DECRYPT) return { result: TEEC.ERROR_NOT_SUPPORTED };
    const [input, output, iv] = params;
    if (!input || !output || !iv || input.type !== "memref-in" || output.type !== "memref-out" || iv.type !== "value-in") return { result: TEEC.ERROR_BAD_PARAMETERS };
    if (!key) return { result: TEEC.ERROR_ACCESS_DENIED };
    output.size = input.buffer.length;
    if (output.buffer.length < input.buffer.length) return { result: TEEC.ERROR_SHORT_BUFFER };
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setUint32(0, iv.a >>> 0, true);
    new DataView(nonce.buffer).setUint32(4, iv.b >>> 0, true);
    for (let off = 0; off < input.buffer.length; off += PIECE) {
      const end = Math.min(off + PIECE, input.buffer.length);
      env.chacha20(key, nonce, off / 64, input.buffer.subarray(off, end), output.buffer.subarray(off, end));
      if (end < input.buffer.length) yield { kind: "preempt" };
    }
    state.bytes += input.buffer.length;
    return { result: TEEC.SUCCESS };
  },
  close: () => {},
};
