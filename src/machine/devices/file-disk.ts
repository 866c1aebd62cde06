/**
 * A disk image file as a virtio-blk BlockSource: opened read-only once, read with positioned reads (the
 * file is never mapped whole, whatever its size). The adapter between the pure device and the host.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { BlockSource } from "./virtio-blk.js";
import { SECTOR } from "./virtio-blk.js";

export class FileDisk implements BlockSource {
  private fd: number | null;
  readonly size: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, "r");
    const size = fstatSync(this.fd).size;
    if (size === 0 || size % SECTOR !== 0) {
      closeSync(this.fd);
      this.fd = null;
      throw new Error(`${path}: a disk image is a non-zero multiple of ${SECTOR} bytes (this one has ${size})`);
    }
    this.size = size;
  }

  read(at: number, into: Uint8Array): void {
    if (this.fd === null) throw new Error(`${this.path}: closed`);
    for (let done = 0; done < into.length; ) {
      const n = readSync(this.fd, into, done, into.length - done, at + done);
      // A file that shrank under us reads as zeros past its end.
      if (n === 0) {
        into.fill(0, done);
        return;
      }
      done += n;
    }
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
