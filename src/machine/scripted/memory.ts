/**
 * Guest RAM for in-process VMs, at the VM's base IPA. Up to 1 GiB it is one buffer (a view of any range
 * is then possible); a larger VM's RAM is kept in 64 MiB chunks made when first written (or viewed), so a
 * 16 GiB VM costs what its guest touches, and a read of a chunk never written gives zeros. A view of a
 * range that crosses a chunk boundary is null (GuestMemory.view allows it: users then copy).
 */
import type { GuestMemory } from "../../router/ports.js";

/** The largest RAM kept in one buffer. */
export const SINGLE_BUFFER_MAX = 1n << 30n;
/** Chunk size for larger RAM. */
export const CHUNK_BYTES = 64 << 20;
/** The largest in-process VM: the IPA space of a 40-bit stage 2 (1 TiB), far beyond any test. */
export const IN_PROCESS_RAM_MAX = 1n << 40n;

export class ArrayGuestMemory implements GuestMemory {
  /** The RAM of a VM of up to 1 GiB; null for a larger one (see chunks). */
  private readonly single: Uint8Array | null;
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(readonly base: bigint, readonly size: bigint) {
    if (size < 0n || size > IN_PROCESS_RAM_MAX) throw new RangeError(`in-process guest RAM is at most 1 TiB, not ${size} bytes`);
    this.single = size <= SINGLE_BUFFER_MAX ? new Uint8Array(Number(size)) : null;
  }

  /** The RAM as one buffer, for VMs of up to 1 GiB (tests read it directly). */
  get bytes(): Uint8Array {
    if (this.single === null) throw new RangeError("the RAM of a VM above 1 GiB is kept in chunks: use read()");
    return this.single;
  }

  /** Chunks of RAM in use (VMs above 1 GiB), for tests. */
  get chunkCount(): number {
    return this.chunks.size;
  }

  private offset(ipa: bigint, length: number): number | null {
    if (!Number.isSafeInteger(length) || length < 0 || ipa < this.base || ipa + BigInt(length) > this.base + this.size) return null;
    return Number(ipa - this.base);
  }

  private chunk(index: number, create: boolean): Uint8Array | undefined {
    let c = this.chunks.get(index);
    if (c === undefined && create) {
      c = new Uint8Array(CHUNK_BYTES);
      this.chunks.set(index, c);
    }
    return c;
  }

  read(ipa: bigint, length: number): Uint8Array | null {
    const o = this.offset(ipa, length);
    if (o === null) return null;
    if (this.single !== null) return this.single.slice(o, o + length);
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      const at = o + done;
      const within = at % CHUNK_BYTES;
      const n = Math.min(length - done, CHUNK_BYTES - within);
      const c = this.chunk(Math.floor(at / CHUNK_BYTES), false);
      if (c !== undefined) out.set(c.subarray(within, within + n), done);
      done += n;
    }
    return out;
  }

  write(ipa: bigint, data: Uint8Array): boolean {
    const o = this.offset(ipa, data.length);
    if (o === null) return false;
    if (this.single !== null) {
      this.single.set(data, o);
      return true;
    }
    for (let done = 0; done < data.length; ) {
      const at = o + done;
      const within = at % CHUNK_BYTES;
      const n = Math.min(data.length - done, CHUNK_BYTES - within);
      this.chunk(Math.floor(at / CHUNK_BYTES), true)!.set(data.subarray(done, done + n), within);
      done += n;
    }
    return true;
  }

  /**
   * GuestMemory.clear: zeros in place. Chunks never made stay unmade (they read as zero already), so a
   * 1 TiB VM's wipe costs what its guest touched; chunks are zeroed rather than dropped, so a view given
   * earlier still shows this VM's RAM.
   */
  clear(): void {
    if (this.single !== null) this.single.fill(0);
    for (const c of this.chunks.values()) c.fill(0);
  }

  /** GuestMemory.view: the RAM itself, no copy; null across a chunk boundary. */
  view(ipa: bigint, length: number): Uint8Array | null {
    const o = this.offset(ipa, length);
    if (o === null) return null;
    if (this.single !== null) return this.single.subarray(o, o + length);
    const within = o % CHUNK_BYTES;
    if (within + length > CHUNK_BYTES) return null;
    return this.chunk(Math.floor(o / CHUNK_BYTES), true)!.subarray(within, within + length);
  }
}
