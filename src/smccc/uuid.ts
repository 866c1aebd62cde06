/**
 * UUIDs in SMCCC registers, DEN0028 §6.2 (Call UID) and TF-A smc_uuid_word / Xen fill_uid: take the 16
 * bytes in string order; Wn is the little-endian u32 of bytes 4n..4n+3. W0 must not be 0xFFFFFFFF.
 */
export function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a UUID: ${uuid}`);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export function uuidToSmcccWords(uuid: string): [number, number, number, number] {
  const b = uuidBytes(uuid);
  const w = (i: number) => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  const words: [number, number, number, number] = [w(0), w(4), w(8), w(12)];
  if (words[0] === 0xffff_ffff) throw new RangeError(`UUID ${uuid} encodes W0 = 0xFFFFFFFF, which means "not supported"`);
  return words;
}

export function smcccWordsToUuid(words: readonly number[]): string {
  const hex = words
    .slice(0, 4)
    .map((w) => [w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff])
    .flat()
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
