/**
 * A QEMU VM's RAM as the hypervisor reaches it: through the mapping of the shared RAM file (shared-ram.ts),
 * without a system call per access. Only the guest's own RAM is reachable this way, by IPA; the shim's region
 * at the start of the file is not (layout.ts).
 */
import type { GuestMemory } from "../../router/ports.js";
import { SHIM_SIZE } from "./layout.js";
import type { SharedRam } from "./shared-ram.js";

export class MappedGuestMemory implements GuestMemory {
  constructor(private readonly ram: SharedRam, readonly base: bigint, readonly size: bigint) {
    if (ram.size < Number(SHIM_SIZE + size)) throw new Error("the RAM file is smaller than the guest's RAM");
  }

  /** The file offset of [ipa, ipa + length), or -1 when any of it is outside the guest's RAM. */
  private offset(ipa: bigint, length: number): number {
    if (!this.ram.mapped || length < 0 || ipa < this.base || ipa + BigInt(length) > this.base + this.size) return -1;
    return Number(ipa - this.base + SHIM_SIZE);
  }

  read(ipa: bigint, length: number): Uint8Array | null {
    const off = this.offset(ipa, length);
    return off < 0 ? null : this.ram.bytes.slice(off, off + length);
  }

  /** The guest's bytes in place (no copy): they change under the caller as the guest writes them. */
  view(ipa: bigint, length: number): Uint8Array | null {
    const off = this.offset(ipa, length);
    return off < 0 ? null : this.ram.bytes.subarray(off, off + length);
  }

  /** GuestMemory.clear: the guest's RAM (never the shim's region) zeroed in place. */
  clear(): void {
    const off = this.offset(this.base, 0);
    if (off >= 0) this.ram.bytes.fill(0, off, off + Number(this.size));
  }

  write(ipa: bigint, data: Uint8Array): boolean {
    const off = this.offset(ipa, data.length);
    if (off < 0) return false;
    this.ram.bytes.set(data, off);
    return true;
  }
}
