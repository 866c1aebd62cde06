import { describe, expect, it } from "vitest";
import { chacha20 } from "./chacha20.js";

const hex = (s: string) => Uint8Array.from(s.replace(/\s/g, "").match(/../g)!.map((b) => parseInt(b, 16)));

describe("ChaCha20 (RFC 8439)", () => {
  it("matches the §2.4.2 encryption test vector", () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    const nonce = hex("000000000000004a00000000");
    const plain = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const out = new Uint8Array(plain.length);
    chacha20(key, nonce, 1, plain, out);
    expect(Buffer.from(out.subarray(0, 16)).toString("hex")).toBe("6e2e359a2568f98041ba0728dd0d6981");
    expect(Buffer.from(out.subarray(out.length - 10)).toString("hex")).toBe("b40b8eedf2785e42874d");
    const back = new Uint8Array(out.length);
    chacha20(key, nonce, 1, out, back);
    expect(back).toEqual(plain);
  });
});
