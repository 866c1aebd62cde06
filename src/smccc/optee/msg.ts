/**
 * struct optee_msg_arg and struct optee_msg_param, read from and written to bytes (little-endian):
 *   header: u32 cmd, func, session, cancel_id, pad, ret, ret_origin, num_params
 *   param:  u64 attr, then a 24-byte union: value {u64 a, b, c} | tmem {u64 buf_ptr, size, shm_ref}
 *           | rmem {u64 offs, size, shm_ref}
 */
import { MAX_PARAMS, MSG_HEADER_SIZE, MSG_PARAM_SIZE } from "./abi.js";

export interface MsgParam {
  attr: bigint;
  /** value.a / tmem.buf_ptr / rmem.offs */
  a: bigint;
  /** value.b / tmem.size / rmem.size */
  b: bigint;
  /** value.c / tmem.shm_ref / rmem.shm_ref */
  c: bigint;
}

export interface MsgArg {
  cmd: number;
  func: number;
  session: number;
  cancelId: number;
  ret: number;
  retOrigin: number;
  params: MsgParam[];
}

export function msgSize(numParams: number): number {
  return MSG_HEADER_SIZE + MSG_PARAM_SIZE * numParams;
}

/** Header field offsets in struct optee_msg_arg. */
export const MSG_CMD_OFFSET = 0;
export const MSG_FUNC_OFFSET = 4;
export const MSG_SESSION_OFFSET = 8;
export const MSG_RET_OFFSET = 20;
export const MSG_RET_ORIGIN_OFFSET = 24;
export const MSG_NUM_PARAMS_OFFSET = 28;
/** Field offsets inside a struct optee_msg_param: attr, then the union's three u64 (a, b, c). */
export const PARAM_ATTR = 0;
export const PARAM_A = 8;
export const PARAM_B = 16;
export const PARAM_C = 24;

/** Offset of field `field` (PARAM_*) of parameter `i` in a message argument. */
export function paramOffset(i: number, field: number): number {
  return MSG_HEADER_SIZE + MSG_PARAM_SIZE * i + field;
}

/**
 * A message argument held as the bytes its owner copied once (the mediator's checked copy, an OP-TEE
 * thread's copy), read and written in place: 32-bit halves as numbers, a BigInt only where a whole 64-bit
 * value is needed (an address, a cookie), no object per parameter. This is the hot path's codec;
 * decodeMsg/encodeMsg are the readable one for drivers and tests.
 *
 * `numParams` is the count its owner read once and checked when it copied the argument; the num_params
 * in the bytes is never read again (a double fetch: see decodeMsg).
 */
export class MsgBuf {
  /** Room for the largest message (MAX_PARAMS parameters: one 4 KiB page). */
  readonly bytes = new Uint8Array(msgSize(MAX_PARAMS));
  private readonly dv = new DataView(this.bytes.buffer);
  numParams = 0;

  /** Bytes the message takes: the header and `numParams` parameters. */
  get size(): number {
    return MSG_HEADER_SIZE + MSG_PARAM_SIZE * this.numParams;
  }

  /** The message's bytes (a view, not a copy). */
  get used(): Uint8Array {
    return this.bytes.subarray(0, this.size);
  }

  u32(offset: number): number {
    return this.dv.getUint32(offset, true);
  }

  setU32(offset: number, value: number): void {
    this.dv.setUint32(offset, value >>> 0, true);
  }

  get cmd(): number {
    return this.dv.getUint32(MSG_CMD_OFFSET, true);
  }

  /** The low and high 32 bits of parameter `i`'s field (PARAM_*). */
  lo(i: number, field: number): number {
    return this.dv.getUint32(MSG_HEADER_SIZE + MSG_PARAM_SIZE * i + field, true);
  }

  hi(i: number, field: number): number {
    return this.dv.getUint32(MSG_HEADER_SIZE + MSG_PARAM_SIZE * i + field + 4, true);
  }

  /** A whole 64-bit field (allocates a BigInt: addresses and cookies only). */
  big(i: number, field: number): bigint {
    return this.dv.getBigUint64(MSG_HEADER_SIZE + MSG_PARAM_SIZE * i + field, true);
  }

  setBig(i: number, field: number, value: bigint): void {
    this.dv.setBigUint64(MSG_HEADER_SIZE + MSG_PARAM_SIZE * i + field, BigInt.asUintN(64, value), true);
  }

  /** Sets a 64-bit field from its halves. */
  set64(i: number, field: number, lo: number, hi: number): void {
    const o = MSG_HEADER_SIZE + MSG_PARAM_SIZE * i + field;
    this.dv.setUint32(o, lo >>> 0, true);
    this.dv.setUint32(o + 4, hi >>> 0, true);
  }

  /** Parameter `i`'s type (attr bits 7:0). */
  type(i: number): number {
    return this.dv.getUint32(MSG_HEADER_SIZE + MSG_PARAM_SIZE * i, true) & 0xff;
  }

  /**
   * A 64-bit field as a number: exact below 2^53, which covers every size and offset a check compares with
   * a limit (anything larger is over every limit either way, rounded or not).
   */
  num(i: number, field: number): number {
    return this.hi(i, field) * 0x1_0000_0000 + this.lo(i, field);
  }
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** The UUID whose 16 octets (in string order) start at `offset` of `bytes`, as a string. */
export function uuidFromBytes(bytes: Uint8Array, offset: number): string {
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += HEX[bytes[offset + i]!]!;
  }
  return s;
}

/** num_params from a header, without reading the rest. */
export function headerNumParams(header: Uint8Array): number {
  return new DataView(header.buffer, header.byteOffset, header.byteLength).getUint32(28, true);
}

/**
 * Decodes a message argument. `numParams` is the count the caller has already checked (it read the
 * header once, then the rest): the header's num_params in `bytes` is then ignored, so a buffer the
 * normal world rewrites between the two reads cannot change how many parameters are decoded (a double
 * fetch). Without it, the header's count is used; a buffer too short for it is a RangeError.
 */
export function decodeMsg(bytes: Uint8Array, numParams?: number): MsgArg {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = numParams ?? dv.getUint32(28, true);
  if (bytes.byteLength < msgSize(n)) throw new RangeError(`a message with ${n} parameters needs ${msgSize(n)} bytes; have ${bytes.byteLength}`);
  const params: MsgParam[] = [];
  for (let i = 0; i < n; i++) {
    const o = MSG_HEADER_SIZE + MSG_PARAM_SIZE * i;
    params.push({ attr: dv.getBigUint64(o, true), a: dv.getBigUint64(o + 8, true), b: dv.getBigUint64(o + 16, true), c: dv.getBigUint64(o + 24, true) });
  }
  return {
    cmd: dv.getUint32(0, true),
    func: dv.getUint32(4, true),
    session: dv.getUint32(8, true),
    cancelId: dv.getUint32(12, true),
    ret: dv.getUint32(20, true),
    retOrigin: dv.getUint32(24, true),
    params,
  };
}

export function encodeMsg(m: MsgArg): Uint8Array {
  const bytes = new Uint8Array(msgSize(m.params.length));
  const dv = new DataView(bytes.buffer);
  dv.setUint32(0, m.cmd >>> 0, true);
  dv.setUint32(4, m.func >>> 0, true);
  dv.setUint32(8, m.session >>> 0, true);
  dv.setUint32(12, m.cancelId >>> 0, true);
  dv.setUint32(20, m.ret >>> 0, true);
  dv.setUint32(24, m.retOrigin >>> 0, true);
  dv.setUint32(28, m.params.length, true);
  m.params.forEach((p, i) => {
    const o = MSG_HEADER_SIZE + MSG_PARAM_SIZE * i;
    dv.setBigUint64(o, BigInt.asUintN(64, p.attr), true);
    dv.setBigUint64(o + 8, BigInt.asUintN(64, p.a), true);
    dv.setBigUint64(o + 16, BigInt.asUintN(64, p.b), true);
    dv.setBigUint64(o + 24, BigInt.asUintN(64, p.c), true);
  });
  return bytes;
}

/**
 * OPEN_SESSION's META parameters carry a UUID as raw octets in the value union (Linux export_uuid into
 * params[0].u.octets; optee_os tee_uuid_from_octets): the UUID's 16 bytes in string order, so value.a read
 * as a little-endian u64 holds bytes 0-7.
 */
export function uuidFromValues(a: bigint, b: bigint): string {
  const bytes: number[] = [];
  for (const v of [a, b]) for (let i = 0n; i < 8n; i++) bytes.push(Number((BigInt.asUintN(64, v) >> (8n * i)) & 0xffn));
  const hex = bytes.map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function uuidToValues(uuid: string): [bigint, bigint] {
  const hex = uuid.replace(/-/g, "");
  const le = (h: string) => {
    let v = 0n;
    for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(parseInt(h.slice(2 * i, 2 * i + 2), 16));
    return v;
  };
  return [le(hex.slice(0, 16)), le(hex.slice(16))];
}
