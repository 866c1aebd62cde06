/**
 * Indirect messages between peer VMs (DEN0077 v1.2 §14.x, FFA_MSG_SEND2, v1.1+): the sender puts a
 * partition message (a header, then the payload) in its TX buffer; the mediator copies it once, checks
 * it, and writes it into the receiver's RX buffer with a header of the receiver's layout, which the
 * receiver then owns until FFA_RX_RELEASE; the receiver is told by the hypervisor framework notification
 * "RX buffer full" (NOTIFICATION_INFO_GET lists it, NOTIFICATION_GET with the hypervisor flag returns bit 0
 * in w7), as Xen does (xen/arch/arm/tee/ffa_msg.c, ffa_msg_send2_vm). Messages to partitions are not
 * offered: the SPMC does not take FFA_MSG_SEND2 (NOT_SUPPORTED, as Xen answers then).
 *
 * Header (Hafnium inc/vmapi/hf/ffa.h struct ffa_partition_rxtx_header): flags u32 @0 (MBZ), reserved u32
 * @4, payload offset u32 @8, receiver u16 @12 and sender u16 @14 (w1's layout), payload size u32 @16,
 * reserved u32 @20; v1.2 adds the protocol's UUID, 16 bytes @24.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_PAGE_SIZE, FFA_RET, FFA_VERSION_1_1, FFA_VERSION_1_2, ffaIdIsSecure, ffaReceiverOf, ffaSenderOf } from "../../smccc/ffa/abi.js";
import type { FfaMediator } from "./mediator.js";
import { ffaSuccess, type FfaVm } from "./vm.js";

const M_FLAGS = 0, M_OFFSET = 8, M_ENDPOINTS = 12, M_SIZE = 16, M_UUID = 24;
/** Header sizes: v1.1 up to the second reserved word, v1.2 with the UUID. */
const HEADER_V1_1 = 24, HEADER_V1_2 = 40;
/** FFA_MSG_SEND2 w2 (v1.2): bit 1 delays the schedule receiver interrupt (no interrupt here: accepted); the rest MBZ. */
const SEND2_FLAGS = 1 << 1;

const headerSize = (version: number) => (version >= FFA_VERSION_1_2 ? HEADER_V1_2 : HEADER_V1_1);

/** FFA_MSG_SEND2 from `st`: w1 (the hypervisor's sender field) MBZ; the message in the TX buffer. */
export function msgSend2(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  if (call.w(1) !== 0 || (call.w(2) & ~SEND2_FLAGS) !== 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_MSG_SEND2 with w1 or w2 set");
  if (!st.rxtx) return m.refuse(st, res, FFA_RET.DENIED, "FFA_MSG_SEND2 without a TX buffer");
  const txSize = st.rxtx.pages * FFA_PAGE_SIZE;
  // Copy first: the header, then the payload it announces, each read once.
  const mem = m.host.memory(st.name);
  const head = mem?.read(st.rxtx.tx, headerSize(st.version));
  if (!mem || !head) return m.refuse(st, res, FFA_RET.ABORTED, "TX buffer unreadable");
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const offset = v.getUint32(M_OFFSET, true), size = v.getUint32(M_SIZE, true), endpoints = v.getUint32(M_ENDPOINTS, true);
  if (ffaSenderOf(endpoints) !== st.id) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_MSG_SEND2 with sender 0x${ffaSenderOf(endpoints).toString(16)}`);
  if (v.getUint32(M_FLAGS, true) !== 0 || offset < head.length || size === 0 || offset > txSize || size > txSize - offset) {
    return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_MSG_SEND2 message of ${size} bytes at ${offset}`);
  }
  const to = ffaReceiverOf(endpoints);
  if (ffaIdIsSecure(to) && m.mayUsePartition(st, to)) return m.refuse(st, res, FFA_RET.NOT_SUPPORTED, "FFA_MSG_SEND2 to a partition");
  const peer = m.peer(st, to);
  if (!peer || peer.version < FFA_VERSION_1_1) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_MSG_SEND2 to 0x${to.toString(16)}`);
  const payload = mem.read(st.rxtx.tx + BigInt(offset), size);
  if (!payload) return m.refuse(st, res, FFA_RET.ABORTED, "TX buffer unreadable");
  const header = headerSize(peer.version);
  const out = new Uint8Array(header + size);
  const w = new DataView(out.buffer);
  w.setUint32(M_OFFSET, header, true);
  w.setUint32(M_ENDPOINTS, endpoints, true);
  w.setUint32(M_SIZE, size, true);
  if (header === HEADER_V1_2 && head.length === HEADER_V1_2) out.set(head.subarray(M_UUID, HEADER_V1_2), M_UUID);
  out.set(payload, header);
  const code = m.writeRx(peer, out);
  if (code !== 0) return m.refuse(st, res, code, `FFA_MSG_SEND2: ${peer.name}'s RX buffer does not take it`);
  peer.rxBufferFull = true;
  ffaSuccess(res);
}
