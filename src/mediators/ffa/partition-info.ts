/**
 * FFA_PARTITION_INFO_GET and, for v1.2 VMs, FFA_PARTITION_INFO_GET_REGS (DEN0077 v1.2 §13.9-13.10): the SPMC's answer (read out of the hypervisor's
 * RX buffer, which is then released) filtered to the partitions the VM may use, plus its peers as VM
 * endpoints when it asks for all (nil UUID; VMs have no UUID here), written into the VM's RX buffer in the
 * layout of its version (8-byte v1.0 or 24-byte v1.1+ descriptors, Xen ffa_partinfo.c does the same).
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_PARTITION_INFO_GET_COUNT_FLAG, FFA_PARTITION_PROP, FFA_RET, FFA_VERSION_1_1 } from "../../smccc/ffa/abi.js";
import { encodePartitionInfo, FFA_NIL_UUID, FFA_PARTITION_INFO_SIZE_V1_1, type FfaPartitionInfo, ffaUuidRegs, partitionInfoSize } from "../../smccc/ffa/partition-info.js";
import type { FfaMediator } from "./mediator.js";
import { FFA_SUCCESS_64, ffaSuccess, type FfaVm } from "./vm.js";

/** A peer VM: a PE endpoint that takes and sends direct requests (vm-messaging.ts), DIRECT_REQ2 too when AArch64. */
const PEER_PROPERTIES = FFA_PARTITION_PROP.ID_TYPE_PE | FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.DIRECT_REQ_SEND;

/** Properties a v1.0 descriptor defines (direct request receive/send, indirect messaging): the rest is v1.1's. */
const V1_0_PROPERTIES = FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.DIRECT_REQ_SEND | FFA_PARTITION_PROP.INDIRECT_MSG;

/**
 * What the VM may see of the partitions a UUID names (nil: all): those the config lets it use, and for nil
 * its peers as VM endpoints (no UUID).
 */
function visiblePartitions(m: FfaMediator, st: FfaVm, u: readonly [number, number, number, number]): FfaPartitionInfo[] {
  const nil = (u[0] | u[1] | u[2] | u[3]) === 0;
  const sps = m.spmcPartitions(u[0], u[1], u[2], u[3], st.port) ?? [];
  const visible: FfaPartitionInfo[] = sps.filter((p) => m.mayUsePartition(st, p.id));
  if (nil) {
    for (const name of st.peers) {
      const peer = m.vm(name);
      if (peer && m.peer(st, peer.id)) visible.push({ id: peer.id, executionContexts: peer.vcpus, properties: PEER_PROPERTIES | (peer.aarch32 ? 0 : FFA_PARTITION_PROP.AARCH64 | FFA_PARTITION_PROP.DIRECT_REQ2_RECV | FFA_PARTITION_PROP.DIRECT_REQ2_SEND), uuid: FFA_NIL_UUID });
    }
  }
  return visible;
}

export function partitionInfoGet(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  const flags = call.w(5);
  const v10 = st.version < FFA_VERSION_1_1;
  // w5 is MBZ in v1.0; v1.1 defines bit 0 only (return the count, nothing in RX).
  if (v10 ? flags !== 0 : (flags & ~FFA_PARTITION_INFO_GET_COUNT_FLAG) !== 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_PARTITION_INFO_GET flags 0x${flags.toString(16)}`);
  const countOnly = flags === FFA_PARTITION_INFO_GET_COUNT_FLAG;
  if (!countOnly && !st.rxtx) return m.refuse(st, res, FFA_RET.DENIED, "FFA_PARTITION_INFO_GET without an RX buffer");
  if (!countOnly && st.rxFull) return m.refuse(st, res, FFA_RET.BUSY, "FFA_PARTITION_INFO_GET while the VM owns its RX buffer");
  const visible = visiblePartitions(m, st, [call.w(1), call.w(2), call.w(3), call.w(4)]);
  // A partition the VM may not use is one it does not know: an unknown UUID (§13.9).
  if (visible.length === 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_PARTITION_INFO_GET of no partition the VM may use");
  const size = partitionInfoSize(st.version);
  // With the count flag, w3 (the descriptor size) is MBZ (DEN0077 v1.1+; Arm's FF-A ACS checks it).
  if (countOnly) return ffaSuccess(res, visible.length, 0);
  const entries = v10 ? visible.map((p) => ({ ...p, properties: p.properties & V1_0_PROPERTIES })) : visible;
  const code = m.writeRx(st, encodePartitionInfo(entries, st.version));
  if (code !== 0) return m.refuse(st, res, code, "partition descriptors do not go into the RX buffer");
  // v1.0 has no size in w3 (Linux 6.1 assumes 8 bytes).
  ffaSuccess(res, visible.length, v10 ? 0 : size);
}

/** Descriptors one FFA_PARTITION_INFO_GET_REGS answer holds: three registers each, x3-x17. */
const REGS_PER_CALL = 5;
/** x3 of PARTITION_INFO_GET_REGS: the start index in [15:0], the UUID information tag in [31:16] (0: none kept), [63:32] MBZ. */
const START_MASK = 0xffffn;

/**
 * FFA_PARTITION_INFO_GET_REGS (v1.2 §13.10): the same list in registers, five descriptors a call from the
 * start index in x3. SUCCESS_64: x2 = last index [15:0], this answer's last index [31:16], tag [47:32]
 * (0: the mediator keeps no tags), descriptor size [63:48]; each descriptor is x_n = ID, execution
 * contexts, properties; x_n+1, x_n+2 = the UUID. A start past the end, or a tag: INVALID_PARAMETERS.
 */
export function partitionInfoGetRegs(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  const x3 = call.x(3);
  const [lo, hi] = [call.x(1), call.x(2)];
  const words = [lo & 0xffff_ffffn, lo >> 32n, hi & 0xffff_ffffn, hi >> 32n].map(Number) as [number, number, number, number];
  const visible = visiblePartitions(m, st, words);
  const start = Number(x3 & START_MASK);
  if ((x3 & ~START_MASK) !== 0n || visible.length === 0 || start >= visible.length) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_PARTITION_INFO_GET_REGS of no partition the VM may use, or past the end");
  const last = Math.min(visible.length, start + REGS_PER_CALL) - 1;
  for (let n = 0; n < 18; n++) res.set(n, 0);
  res.set(0, FFA_SUCCESS_64);
  res.setBig(2, BigInt(visible.length - 1) | (BigInt(last) << 16n) | (BigInt(FFA_PARTITION_INFO_SIZE_V1_1) << 48n));
  for (let i = start; i <= last; i++) {
    const p = visible[i]!, r = 3 + 3 * (i - start);
    const [ulo, uhi] = ffaUuidRegs(p.uuid);
    res.setBig(r, BigInt(p.id) | (BigInt(p.executionContexts) << 16n) | (BigInt(p.properties >>> 0) << 32n));
    res.setBig(r + 1, ulo);
    res.setBig(r + 2, uhi);
  }
}
