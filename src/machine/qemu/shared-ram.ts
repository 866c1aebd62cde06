/**
 * A QEMU VM's RAM file, mapped into the hypervisor process: QEMU maps the same file
 * (`memory-backend-file,share=on`), so both see the same bytes. File offset 0 is machine physical address
 * 0x40000000: the shim's region first, the guest's RAM after it (layout.ts). The mapping comes from the
 * small Node-API addon in native/shared-memory (mmap/munmap; Node itself cannot map a file).
 *
 * The file is created here (never an existing one: O_EXCL, mode 0600) and never shrinks while mapped (that
 * would make QEMU and this process fault). dispose() unmaps, closes and removes it; every view of the
 * mapping then has length 0, so a late access reads nothing rather than unmapped memory.
 */
import { closeSync, constants, ftruncateSync, openSync, unlinkSync } from "node:fs";
import { createRequire } from "node:module";

interface SharedMemoryAddon {
  map(fd: number, length: number, offset: number, writable: boolean): ArrayBuffer;
  unmap(buffer: ArrayBuffer): boolean;
}

const addon = createRequire(import.meta.url)("@smcvisor/shared-memory") as SharedMemoryAddon;

/** The largest RAM file one mapping covers (the addon's and Node's limit for one ArrayBuffer). */
export const MAX_SHARED_RAM = 4 * 1024 * 1024 * 1024;

export class SharedRam {
  private fd: number | null;
  private buffer: ArrayBuffer | null;
  /** The whole file as bytes (length 0 once disposed). */
  readonly bytes: Uint8Array;

  constructor(readonly path: string, readonly size: number) {
    if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_SHARED_RAM || size % 4096 !== 0) {
      throw new Error(`a shared RAM file is a multiple of 4 KiB up to 4 GiB (asked for ${size} bytes)`);
    }
    this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      ftruncateSync(this.fd, size);
      this.buffer = addon.map(this.fd, size, 0, true);
    } catch (e) {
      closeSync(this.fd);
      unlinkSync(path);
      throw e;
    }
    this.bytes = new Uint8Array(this.buffer);
  }

  get mapped(): boolean {
    return this.buffer !== null;
  }

  /** A view of [offset, offset + length): for the channel's mailboxes and the host page. */
  view(offset: number, length: number): Uint8Array {
    if (offset < 0 || length < 0 || offset + length > this.size) throw new RangeError(`0x${offset.toString(16)}+${length} is outside the RAM file`);
    return new Uint8Array(this.bytes.buffer, offset, length);
  }

  /** Unmaps, closes and removes the file. Safe to call more than once. */
  dispose(): void {
    if (this.buffer) addon.unmap(this.buffer);
    this.buffer = null;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}
