import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chacha20 } from "./chacha20.js";

const hex = (s: string) => Uint8Array.from(s.replace(/\s/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/**
 * The straightforward implementation the fast one replaced (an array of state words, a quarter-round
 * function, the keystream serialized to bytes and XORed byte by byte): the reference the property test
 * compares against, because it reads like RFC 8439 §2.1-2.4 line by line.
 */
function reference(key: Uint8Array, nonce: Uint8Array, counter: number, input: Uint8Array, output: Uint8Array): void {
  const quarter = (s: Uint32Array, a: number, b: number, c: number, d: number): void => {
    s[a] = (s[a]! + s[b]!) >>> 0; s[d] = s[d]! ^ s[a]!; s[d] = ((s[d]! << 16) | (s[d]! >>> 16)) >>> 0;
    s[c] = (s[c]! + s[d]!) >>> 0; s[b] = s[b]! ^ s[c]!; s[b] = ((s[b]! << 12) | (s[b]! >>> 20)) >>> 0;
    s[a] = (s[a]! + s[b]!) >>> 0; s[d] = s[d]! ^ s[a]!; s[d] = ((s[d]! << 8) | (s[d]! >>> 24)) >>> 0;
    s[c] = (s[c]! + s[d]!) >>> 0; s[b] = s[b]! ^ s[c]!; s[b] = ((s[b]! << 7) | (s[b]! >>> 25)) >>> 0;
  };
  const le32 = (b: Uint8Array, o: number) => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
  const init = new Uint32Array(16);
  init[0] = 0x6170_7865; init[1] = 0x3320_646e; init[2] = 0x7962_2d32; init[3] = 0x6b20_6574;
  for (let i = 0; i < 8; i++) init[4 + i] = le32(key, 4 * i);
  init[12] = counter >>> 0;
  for (let i = 0; i < 3; i++) init[13 + i] = le32(nonce, 4 * i);
  const s = new Uint32Array(16);
  const ks = new Uint8Array(64);
  for (let off = 0; off < input.length; off += 64) {
    s.set(init);
    for (let r = 0; r < 10; r++) {
      quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15);
      quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14);
    }
    for (let i = 0; i < 16; i++) {
      const w = (s[i]! + init[i]!) >>> 0;
      ks[4 * i] = w & 0xff; ks[4 * i + 1] = (w >>> 8) & 0xff; ks[4 * i + 2] = (w >>> 16) & 0xff; ks[4 * i + 3] = w >>> 24;
    }
    const n = Math.min(64, input.length - off);
    const chunk = input.slice(off, off + n); // input and output may be the same buffer
    for (let i = 0; i < n; i++) output[off + i] = chunk[i]! ^ ks[i]!;
    init[12] = (init[12]! + 1) >>> 0;
  }
}

const RFC_KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const SUNSCREEN = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");

describe("ChaCha20 (RFC 8439)", () => {
  it("matches the §2.4.2 encryption test vector, every byte, and decrypts back", () => {
    const nonce = hex("000000000000004a00000000");
    const out = new Uint8Array(SUNSCREEN.length);
    chacha20(RFC_KEY, nonce, 1, SUNSCREEN, out);
    expect(toHex(out)).toBe(
      "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b357" +
        "1639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736" +
        "5af90bbf74a35be6b40b8eedf2785e42874d",
    );
    const back = new Uint8Array(out.length);
    chacha20(RFC_KEY, nonce, 1, out, back);
    expect(back).toEqual(SUNSCREEN);
  });

  it("gives the §2.3.2 block (the keystream of counter 1) and the A.1 #1 block (all-zero key and nonce)", () => {
    const block = new Uint8Array(64);
    chacha20(RFC_KEY, hex("000000090000004a00000000"), 1, new Uint8Array(64), block);
    expect(toHex(block)).toBe(
      "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4ed2826446079faa0914c2d705d98b02a2" +
        "b5129cd1de164eb9cbd083e8a2503c4e",
    );
    chacha20(new Uint8Array(32), new Uint8Array(12), 0, new Uint8Array(64), block);
    expect(toHex(block)).toBe(
      "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7da41597c5157488d7724e03fb8d84a37" +
        "6a43b8f41518a11cc387b669b2ee6586",
    );
  });

  it("refuses a wrong key or nonce size and an output shorter than the input", () => {
    expect(() => chacha20(new Uint8Array(16), new Uint8Array(12), 0, new Uint8Array(1), new Uint8Array(1))).toThrow(RangeError);
    expect(() => chacha20(RFC_KEY, new Uint8Array(8), 0, new Uint8Array(1), new Uint8Array(1))).toThrow(RangeError);
    expect(() => chacha20(RFC_KEY, new Uint8Array(12), 0, new Uint8Array(65), new Uint8Array(64))).toThrow(RangeError);
  });

  it("equals the reference for any key, nonce, counter (the 2^32 wrap included), length and byte offsets of input and output", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.oneof(fc.nat({ max: 0xffff_ffff }), fc.integer({ min: 0xffff_fff0, max: 0xffff_ffff })),
        fc.integer({ min: 0, max: 700 }),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 7 }),
        fc.boolean(),
        (key, nonce, counter, length, inAt, outAt, inPlace) => {
          const data = Uint8Array.from({ length }, (_, i) => (i * 151 + counter) & 0xff);
          const input = new Uint8Array(length + 8);
          input.set(data, inAt);
          const inView = input.subarray(inAt, inAt + length);
          const expected = new Uint8Array(length);
          reference(key, nonce, counter, data, expected);
          if (inPlace) {
            chacha20(key, nonce, counter, inView, inView);
            expect(inView).toEqual(expected);
          } else {
            // Guard bytes on both sides of the output: nothing outside it is written.
            const output = new Uint8Array(length + 16).fill(0xa5);
            const outView = output.subarray(outAt + 4, outAt + 4 + length);
            chacha20(key, nonce, counter, inView, outView);
            expect(outView).toEqual(expected);
            expect(output.subarray(0, outAt + 4).every((b) => b === 0xa5)).toBe(true);
            expect(output.subarray(outAt + 4 + length).every((b) => b === 0xa5)).toBe(true);
            expect(inView).toEqual(data);
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});
