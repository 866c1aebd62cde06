/** Guest RAM for in-process VMs: an ArrayBuffer at the VM's base IPA. */
import type { GuestMemory } from "../../router/ports.js";

export class ArrayGuestMemory implements GuestMemory {
  readonly bytes: Uint8Array;

  constructor(readonly base: bigint, readonly size: bigint) {
    if (size > BigInt(1 << 30)) throw new RangeError("in-process guest RAM is limited to 1 GiB");
    this.bytes = new Uint8Array(Number(size));
  }

  private offset(ipa: bigint, length: number): number | null {
    if (length < 0 || ipa < this.base || ipa + BigInt(length) > this.base + this.size) return null;
    return Number(ipa - this.base);
  }

  read(ipa: bigint, length: number): Uint8Array | null {
    const o = this.offset(ipa, length);
    return o === null ? null : this.bytes.slice(o, o + length);
  }

  write(ipa: bigint, data: Uint8Array): boolean {
    const o = this.offset(ipa, data.length);
    if (o === null) return false;
    this.bytes.set(data, o);
    return true;
  }

  /** GuestMemory.view: the RAM itself, no copy. */
  view(ipa: bigint, length: number): Uint8Array | null {
    const o = this.offset(ipa, length);
    return o === null ? null : this.bytes.subarray(o, o + length);
  }
}
