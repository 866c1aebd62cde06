/**
 * The SPMC's partitions: lookup by endpoint ID and by UUID, which VMs each may serve (config `vms:`), and
 * the discovery answers (FFA_PARTITION_INFO_GET's descriptors, FFA_PARTITION_INFO_GET_REGS).
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_ID_SPMC, FFA_RET, ffaIdIsSecure } from "../../smccc/ffa/abi.js";
import {
  FFA_NIL_UUID,
  FFA_PARTITION_INFO_SIZE_V1_1,
  canonicalUuid,
  encodePartitionInfo,
  ffaUuidFromRegs,
  ffaUuidFromWords,
  ffaUuidRegs,
  partitionInfoSize,
} from "../../smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { SecurePartition } from "./partition.js";
import { replyError } from "./replies.js";
import type { SpmcPartitionEntry } from "./spmc.js";

/** PARTITION_INFO_GET_REGS: three registers per descriptor in x3-x17, so five per call (v1.2; Xen ffa_partinfo.c packs the same). */
const REGS_PER_CALL = 5;
/** x3 of PARTITION_INFO_GET_REGS: start index [15:0], UUID info tag [31:16], [63:32] MBZ. */
const START_MASK = 0xffffn;

export class PartitionDirectory {
  private readonly byId = new Map<number, { sp: SecurePartition; vms: ReadonlySet<number> }>();
  private readonly list: SecurePartition[] = [];

  /** Invariants the config loader guarantees; a violation is a bug, so it throws. */
  constructor(entries: readonly SpmcPartitionEntry[]) {
    for (const { partition: sp, vms } of entries) {
      // 0xFFFF is TF-A's SPMD (SPMD_DIRECT_MSG_ENDPOINT_ID), 0x8000 the SPMC.
      if (!ffaIdIsSecure(sp.id) || sp.id === FFA_ID_SPMC || sp.id >= 0xffff) throw new Error(`partition ${sp.name}: ID 0x${sp.id.toString(16)} is not a secure partition ID`);
      if (this.byId.has(sp.id)) throw new Error(`partition ${sp.name}: ID 0x${sp.id.toString(16)} is taken`);
      if (canonicalUuid(sp.uuid) !== sp.uuid || sp.uuid === FFA_NIL_UUID) throw new Error(`partition ${sp.name}: UUID ${sp.uuid} is not canonical`);
      if (this.list.some((p) => p.uuid === sp.uuid)) throw new Error(`partition ${sp.name}: UUID ${sp.uuid} is taken`);
      this.byId.set(sp.id, { sp, vms: new Set(vms) });
      this.list.push(sp);
    }
  }

  get(id: number): SecurePartition | undefined {
    return this.byId.get(id)?.sp;
  }

  /** Whether `sp` is a partition VM `vm` may use. */
  peer(sp: number, vm: number): "ok" | "unknown" | "denied" {
    const e = this.byId.get(sp);
    if (e === undefined) return "unknown";
    return e.vms.has(vm) ? "ok" : "denied";
  }

  /** Partitions with this UUID (register words), or all for the nil UUID. */
  find(words: readonly [number, number, number, number]): SecurePartition[] {
    const uuid = ffaUuidFromWords(words);
    return uuid === FFA_NIL_UUID ? [...this.list] : this.list.filter((p) => p.uuid === uuid);
  }

  infoSize(version: number): number {
    return partitionInfoSize(version);
  }

  encode(partitions: readonly SecurePartition[], version: number): Uint8Array {
    return encodePartitionInfo(partitions.map((p) => ({ id: p.id, executionContexts: p.executionContexts, properties: p.properties, uuid: p.uuid })), version);
  }

  /** DIRECT_REQ2's x2-x3: the nil UUID or the partition's own. */
  uuidMatches(sp: SecurePartition, lo: bigint, hi: bigint): boolean {
    const uuid = ffaUuidFromRegs(lo, hi);
    return uuid === FFA_NIL_UUID || uuid === sp.uuid;
  }

  /**
   * FFA_PARTITION_INFO_GET_REGS (v1.2): x1-x2 the UUID, x3 the start index (tag 0: the list never
   * changes). SUCCESS_64 x2 = last index [15:0], index of the last one returned [31:16], tag [47:32],
   * descriptor size [63:48]; from x3, per partition: ID | contexts << 16 | properties << 32, UUID low, high.
   */
  infoGetRegs(call: SmcCall, res: SmcResult): void {
    const found = this.find(regWords(call.x(1), call.x(2)));
    const x3 = call.x(3);
    const start = Number(x3 & START_MASK);
    if ((x3 & ~START_MASK) !== 0n || found.length === 0 || start >= found.length) {
      return replyError(res, FFA_RET.INVALID_PARAMETERS);
    }
    const last = Math.min(found.length, start + REGS_PER_CALL) - 1;
    res.set(0, F.FFA_SUCCESS.smc64);
    res.set(1, 0);
    res.setBig(2, BigInt(found.length - 1) | (BigInt(last) << 16n) | (BigInt(FFA_PARTITION_INFO_SIZE_V1_1) << 48n));
    for (let i = start; i <= last; i++) {
      const p = found[i]!;
      const r = 3 + 3 * (i - start);
      const [lo, hi] = ffaUuidRegs(p.uuid);
      res.setBig(r, BigInt(p.id) | (BigInt(p.executionContexts) << 16n) | (BigInt(p.properties >>> 0) << 32n));
      res.setBig(r + 1, lo);
      res.setBig(r + 2, hi);
    }
  }
}

function regWords(lo: bigint, hi: bigint): [number, number, number, number] {
  const m = 0xffff_ffffn;
  return [Number(lo & m), Number((lo >> 32n) & m), Number(hi & m), Number((hi >> 32n) & m)];
}
