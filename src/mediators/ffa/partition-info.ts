/**
 * FFA_PARTITION_INFO_GET for a VM (DEN0077 v1.2 §13.9): the SPMC's answer (read out of the hypervisor's
 * RX buffer, which is then released) filtered to the partitions the VM may use, plus its peers as VM
 * endpoints when it asks for all (nil UUID; VMs have no UUID here), written into the VM's RX buffer in the
 * layout of its version (8-byte v1.0 or 24-byte v1.1+ descriptors, Xen ffa_partinfo.c does the same).
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_PARTITION_INFO_GET_COUNT_FLAG, FFA_PARTITION_PROP, FFA_RET, FFA_VERSION_1_1 } from "../../smccc/ffa/abi.js";
import { encodePartitionInfo, FFA_NIL_UUID, type FfaPartitionInfo, partitionInfoSize } from "../../smccc/ffa/partition-info.js";
import type { FfaMediator } from "./mediator.js";
import { ffaSuccess, type FfaVm } from "./vm.js";

/** Properties a v1.0 descriptor defines (direct request receive/send, indirect messaging): the rest is v1.1's. */
const V1_0_PROPERTIES = FFA_PARTITION_PROP.DIRECT_REQ_RECV | FFA_PARTITION_PROP.DIRECT_REQ_SEND | FFA_PARTITION_PROP.INDIRECT_MSG;

export function partitionInfoGet(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  const u0 = call.w(1), u1 = call.w(2), u2 = call.w(3), u3 = call.w(4), flags = call.w(5);
  const v10 = st.version < FFA_VERSION_1_1;
  // w5 is MBZ in v1.0; v1.1 defines bit 0 only (return the count, nothing in RX).
  if (v10 ? flags !== 0 : (flags & ~FFA_PARTITION_INFO_GET_COUNT_FLAG) !== 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_PARTITION_INFO_GET flags 0x${flags.toString(16)}`);
  const countOnly = flags === FFA_PARTITION_INFO_GET_COUNT_FLAG;
  if (!countOnly && !st.rxtx) return m.refuse(st, res, FFA_RET.DENIED, "FFA_PARTITION_INFO_GET without an RX buffer");
  if (!countOnly && st.rxFull) return m.refuse(st, res, FFA_RET.BUSY, "FFA_PARTITION_INFO_GET while the VM owns its RX buffer");
  const nil = (u0 | u1 | u2 | u3) === 0;
  const sps = m.spmcPartitions(u0, u1, u2, u3, st.port) ?? [];
  const visible: FfaPartitionInfo[] = sps.filter((p) => m.mayUsePartition(st, p.id));
  if (nil) {
    for (const name of st.peers) {
      const peer = m.vm(name);
      if (peer && m.peer(st, peer.id)) visible.push({ id: peer.id, executionContexts: peer.vcpus, properties: FFA_PARTITION_PROP.ID_TYPE_PE | (peer.aarch32 ? 0 : FFA_PARTITION_PROP.AARCH64), uuid: FFA_NIL_UUID });
    }
  }
  // A partition the VM may not use is one it does not know: an unknown UUID (§13.9).
  if (visible.length === 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "FFA_PARTITION_INFO_GET of no partition the VM may use");
  const size = partitionInfoSize(st.version);
  if (countOnly) return ffaSuccess(res, visible.length, size);
  const entries = v10 ? visible.map((p) => ({ ...p, properties: p.properties & V1_0_PROPERTIES })) : visible;
  const code = m.writeRx(st, encodePartitionInfo(entries, st.version));
  if (code !== 0) return m.refuse(st, res, code, "partition descriptors do not go into the RX buffer");
  // v1.0 has no size in w3 (Linux 6.1 assumes 8 bytes).
  ffaSuccess(res, visible.length, v10 ? 0 : size);
}
