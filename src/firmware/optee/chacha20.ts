/**
 * ChaCha20 (RFC 8439 §2.4), the stream cipher of the content-decryption TA: the secure world's own
 * implementation, pure and deterministic. 256-bit key, 96-bit nonce, 32-bit block counter.
 */
function quarter(s: Uint32Array, a: number, b: number, c: number, d: number): void {
  s[a] = (s[a]! + s[b]!) >>> 0; s[d] = s[d]! ^ s[a]!; s[d] = ((s[d]! << 16) | (s[d]! >>> 16)) >>> 0;
  s[c] = (s[c]! + s[d]!) >>> 0; s[b] = s[b]! ^ s[c]!; s[b] = ((s[b]! << 12) | (s[b]! >>> 20)) >>> 0;
  s[a] = (s[a]! + s[b]!) >>> 0; s[d] = s[d]! ^ s[a]!; s[d] = ((s[d]! << 8) | (s[d]! >>> 24)) >>> 0;
  s[c] = (s[c]! + s[d]!) >>> 0; s[b] = s[b]! ^ s[c]!; s[b] = ((s[b]! << 7) | (s[b]! >>> 25)) >>> 0;
}

function le32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** XORs `input` with the ChaCha20 keystream into `output` (same length), starting at block `counter`. */
export function chacha20(key: Uint8Array, nonce: Uint8Array, counter: number, input: Uint8Array, output: Uint8Array): void {
  if (key.length !== 32 || nonce.length !== 12) throw new RangeError("ChaCha20 needs a 32-byte key and a 12-byte nonce");
  const init = new Uint32Array(16);
  init[0] = 0x6170_7865; init[1] = 0x3320_646e; init[2] = 0x7962_2d32; init[3] = 0x6b20_6574;
  for (let i = 0; i < 8; i++) init[4 + i] = le32(key, 4 * i);
  init[12] = counter >>> 0;
  for (let i = 0; i < 3; i++) init[13 + i] = le32(nonce, 4 * i);
  const s = new Uint32Array(16);
  const ks = new Uint8Array(64);
  const ksWords = new Uint32Array(ks.buffer);
  for (let off = 0; off < input.length; off += 64) {
    s.set(init);
    for (let r = 0; r < 10; r++) {
      quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15);
      quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14);
    }
    for (let i = 0; i < 16; i++) ksWords[i] = (s[i]! + init[i]!) >>> 0; // little-endian host, as ks is read bytewise
    const n = Math.min(64, input.length - off);
    for (let i = 0; i < n; i++) output[off + i] = input[off + i]! ^ ks[i]!;
    init[12] = (init[12]! + 1) >>> 0;
  }
}
