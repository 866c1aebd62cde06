/**
 * A read-only virtio block device (virtio spec v1.2 §5.2) behind the virtio-mmio transport: one request
 * queue; requests IN (read), GET_ID; OUT and FLUSH answer VIRTIO_BLK_S_IOERR / S_OK as a read-only medium
 * would (VIRTIO_BLK_F_RO is offered, so a driver does not send writes); anything else VIRTIO_BLK_S_UNSUPP.
 * The disk's bytes come from a BlockSource (a file in the machine, an array in tests). Pure.
 */
import type { GuestMemory } from "../../router/ports.js";
import type { Chain, Segment } from "./virtqueue.js";
import type { VirtioDevice } from "./virtio-mmio.js";

export const VIRTIO_ID_BLOCK = 2;
export const SECTOR = 512;
/** Feature bits (§5.2.3). */
export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
export const VIRTIO_BLK_F_RO = 1n << 5n;
export const VIRTIO_BLK_F_BLK_SIZE = 1n << 6n;
/** Request types and status values (§5.2.6). */
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
/** The request header: type, reserved, sector (§5.2.6). */
const HEADER = 16;
/** GET_ID's answer is 20 bytes (VIRTIO_BLK_ID_BYTES). */
const ID_BYTES = 20;
export const QUEUE_MAX = 128;
/** Bytes one request may read at most: 1 GiB, as much as UEFI's driver sends in one request (it fails larger ones itself). */
export const REQUEST_MAX_BYTES = 1 << 30;

export interface BlockSource {
  /** Size in bytes: a multiple of SECTOR. */
  readonly size: number;
  /** Copies `into.length` bytes from offset `at` (within the disk) into `into`. */
  read(at: number, into: Uint8Array): void;
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_BLOCK;
  readonly features = VIRTIO_BLK_F_RO | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_SEG_MAX;
  readonly queueMax = QUEUE_MAX;
  readonly queues = 1;
  readonly config: Uint8Array;
  /** Sectors read, for the hypervisor's figures. */
  sectorsRead = 0;

  constructor(private readonly source: BlockSource, private readonly serial = "smcvisor-disk") {
    if (source.size % SECTOR !== 0 || source.size === 0) throw new Error(`a disk is a non-zero multiple of ${SECTOR} bytes (this one has ${source.size})`);
    // virtio_blk_config (§5.2.4): capacity in 512-byte sectors, size_max, seg_max, geometry, blk_size.
    this.config = new Uint8Array(24);
    const v = new DataView(this.config.buffer);
    v.setBigUint64(0, BigInt(source.size / SECTOR), true);
    v.setUint32(12, QUEUE_MAX - 2, true);
    v.setUint32(20, SECTOR, true);
  }

  serve(mem: GuestMemory, _queue: number, chain: Chain): number | string {
    const out = chain.segments.filter((s) => !s.writable);
    const into = chain.segments.filter((s) => s.writable);
    const header = gather(mem, out, HEADER);
    if (!header) return `request ${chain.head}: its header is not ${HEADER} readable bytes`;
    const writable = into.reduce((n, s) => n + s.len, 0);
    if (writable < 1) return `request ${chain.head}: no writable status byte`;
    const hv = new DataView(header.buffer);
    const type = hv.getUint32(0, true);
    const sector = hv.getBigUint64(8, true);
    const dataLen = writable - 1;
    let status = VIRTIO_BLK_S_OK;
    let produced = 0;
    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const capacity = BigInt(this.source.size / SECTOR);
        if (dataLen % SECTOR !== 0 || dataLen > REQUEST_MAX_BYTES || sector + BigInt(dataLen / SECTOR) > capacity) {
          status = VIRTIO_BLK_S_IOERR;
          break;
        }
        // Streamed through a bounded buffer: a request's size never decides what the hypervisor allocates.
        let at = Number(sector) * SECTOR;
        const ok = forEachData(into, dataLen, (addr, len) => {
          for (let done = 0; done < len; ) {
            const n = Math.min(CHUNK, len - done);
            const buf = this.chunk.subarray(0, n);
            this.source.read(at, buf);
            if (!mem.write(addr + BigInt(done), buf)) return false;
            at += n;
            done += n;
          }
          return true;
        });
        if (!ok) return `request ${chain.head}: its writable buffers are not guest RAM`;
        produced = dataLen;
        this.sectorsRead += dataLen / SECTOR;
        break;
      }
      case VIRTIO_BLK_T_GET_ID: {
        const id = new Uint8Array(ID_BYTES);
        id.set(new TextEncoder().encode(this.serial).subarray(0, ID_BYTES));
        produced = Math.min(ID_BYTES, dataLen);
        let from = 0;
        const ok = forEachData(into, produced, (addr, len) => {
          const w = mem.write(addr, id.subarray(from, from + len));
          from += len;
          return w;
        });
        if (!ok) return `request ${chain.head}: its writable buffers are not guest RAM`;
        break;
      }
      case VIRTIO_BLK_T_OUT:
        status = VIRTIO_BLK_S_IOERR;
        break;
      case VIRTIO_BLK_T_FLUSH:
        break;
      default:
        status = VIRTIO_BLK_S_UNSUPP;
    }
    // The status byte is the last writable byte (§5.2.6).
    const last = into[into.length - 1]!;
    let statusAt = last.addr + BigInt(last.len - 1);
    if (last.len === 0) {
      const nonEmpty = into.filter((x) => x.len > 0);
      const l = nonEmpty[nonEmpty.length - 1]!;
      statusAt = l.addr + BigInt(l.len - 1);
    }
    if (!mem.write(statusAt, Uint8Array.of(status))) return `request ${chain.head}: its status byte is not guest RAM`;
    return produced + 1;
  }

  private readonly chunk = new Uint8Array(CHUNK);
}

/** Copy granule between the disk and guest RAM. */
const CHUNK = 1 << 20;

/** Calls `f` for the first `n` bytes of the writable segments, piece by piece, in order; false if `f` failed. */
function forEachData(segs: readonly Segment[], n: number, f: (addr: bigint, len: number) => boolean): boolean {
  let left = n;
  for (const s of segs) {
    if (left === 0) break;
    const len = Math.min(s.len, left);
    if (len > 0 && !f(s.addr, len)) return false;
    left -= len;
  }
  return true;
}

/** The first `n` bytes of the readable segments, copied out, or null when they hold fewer. */
function gather(mem: GuestMemory, segs: readonly Segment[], n: number): Uint8Array | null {
  const out = new Uint8Array(n);
  let at = 0;
  for (const s of segs) {
    if (at === n) break;
    const take = Math.min(s.len, n - at);
    const b = mem.read(s.addr, take);
    if (!b) return null;
    out.set(b, at);
    at += take;
  }
  return at === n ? out : null;
}
