import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chacha20 } from "../../firmware/optee/chacha20.js";
import { hostChaCha20 } from "./chacha20.js";

const hex = (s: string) => Uint8Array.from(s.replace(/\s/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

describe("ChaCha20 through the host's OpenSSL", () => {
  it("matches the portable cipher on random keys, nonces, counters and lengths, in place too", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 12, maxLength: 12 }),
        fc.oneof(fc.nat(1000), fc.constantFrom(0xffff_ffff, 0xffff_fff0, 0xffff_ff00)),
        fc.integer({ min: 0, max: 20_000 }),
        fc.boolean(),
        (key, nonce, counter, length, inPlace) => {
          const input = Uint8Array.from({ length }, (_, i) => (i * 131 + counter) & 0xff);
          const want = new Uint8Array(length);
          chacha20(key, nonce, counter, input, want);
          const got = inPlace ? input : new Uint8Array(length);
          hostChaCha20(key, nonce, counter, input, got);
          expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("gives RFC 8439 §2.4.2's ciphertext when the buffer is long enough for OpenSSL", () => {
    // The RFC's sunscreen plaintext (114 bytes) repeated; its first 114 bytes of ciphertext are the RFC's.
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const nonce = hex("000000000000004a00000000");
    const text = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const input = new Uint8Array(4096);
    input.set(text);
    const out = new Uint8Array(input.length);
    hostChaCha20(key, nonce, 1, input, out);
    expect(Buffer.from(out.subarray(0, 16)).toString("hex")).toBe("6e2e359a2568f98041ba0728dd0d6981");
    expect(Buffer.from(out.subarray(96, 114)).toString("hex")).toBe("5af90bbf74a35be6b40b8eedf2785e42874d");
  });

  it("refuses what the portable cipher refuses", () => {
    expect(() => hostChaCha20(new Uint8Array(16), new Uint8Array(12), 0, new Uint8Array(2048), new Uint8Array(2048))).toThrow(RangeError);
    expect(() => hostChaCha20(new Uint8Array(32), new Uint8Array(12), 0, new Uint8Array(2048), new Uint8Array(100))).toThrow(RangeError);
  });
});
