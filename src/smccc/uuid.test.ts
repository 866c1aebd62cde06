import { describe, expect, it } from "vitest";
import { smcccWordsToUuid, uuidToSmcccWords } from "./uuid.js";

describe("UUIDs in W0-W3 (SMCCC §6.2, TF-A smc_uuid_word)", () => {
  it.each([
    ["5b908d10-63f8-e847-ae2d-c0fb5641f6e2", [0x108d905b, 0x47e8f863, 0xfbc02dae, 0xe2f64156]],
    ["28b46fb6-2ec5-11e9-a9ca-4b564d003a74", [0xb66fb428, 0xe911c52e, 0x564bcaa9, 0x743a004d]],
    ["a71812dc-c698-4369-9acf-79d18ddee667", [0xdc1218a7, 0x694398c6, 0xd179cf9a, 0x67e6de8d]],
    ["0d21e000-4384-11eb-8070-5244554e5a4c", [0x00e0210d, 0xeb118443, 0x44527080, 0x4c5a4e55]],
  ])("%s encodes as the reference words", (uuid, words) => {
    expect(uuidToSmcccWords(uuid)).toEqual(words);
    expect(smcccWordsToUuid(words)).toBe(uuid);
  });

  it("refuses a UUID whose W0 would read as NOT_SUPPORTED", () => {
    expect(() => uuidToSmcccWords("ffffffff-0000-0000-0000-000000000000")).toThrow(/0xFFFFFFFF/);
  });
});
