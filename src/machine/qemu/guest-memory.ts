/**
 * A QEMU VM's RAM through its shared backing file (`memory-backend-file,share=on`): file offset 0 is the
 * VM's first RAM byte. pread/pwrite per access; mediators and services touch little memory per call.
 */
import { closeSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from "node:fs";
import type { GuestMemory } from "../../router/ports.js";

export class FileGuestMemory implements GuestMemory {
  private fd: number | null;

  constructor(readonly path: string, readonly base: bigint, readonly size: bigint) {
    this.fd = openSync(path, "w+", 0o600);
    ftruncateSync(this.fd, Number(size));
  }

  private offset(ipa: bigint, length: number): number | null {
    if (this.fd === null || length < 0 || ipa < this.base || ipa + BigInt(length) > this.base + this.size) return null;
    return Number(ipa - this.base);
  }

  read(ipa: bigint, length: number): Uint8Array | null {
    const off = this.offset(ipa, length);
    if (off === null) return null;
    const out = new Uint8Array(length);
    return readSync(this.fd!, out, 0, length, off) === length ? out : null;
  }

  write(ipa: bigint, data: Uint8Array): boolean {
    const off = this.offset(ipa, data.length);
    if (off === null) return false;
    return writeSync(this.fd!, data, 0, data.length, off) === data.length;
  }

  /** Closes and removes the backing file. */
  dispose(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
