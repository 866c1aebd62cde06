/**
 * The test partition (issue 12): a secure partition with three services over direct requests, to drive
 * the SPMC and the FF-A mediator end to end without OP-TEE.
 *
 * Request payload (DIRECT_REQ x3-x7, DIRECT_REQ2 x4-x17): the first value is the command, the rest its
 * arguments; the response's first value is a status (0 or an FFA_ERROR code as u32), the rest results.
 * - TEST_SP_CMD.ECHO: answers the payload unchanged (status slot included: it echoes the command).
 * - TEST_SP_CMD.CHECKSUM (handle low, handle high): retrieves the region the calling VM shared or lent,
 *   sums its bytes, relinquishes it and answers (0, sum, pages).
 * - TEST_SP_CMD.NOTIFY (VM ID, bitmap low, bitmap high): sets those notifications for the VM, which the
 *   VM must have bound to this partition; answers (status).
 * Anything else is refused with FFA_ERROR(INVALID_PARAMETERS).
 */
import { FFA_PARTITION_PROP, FFA_RET, FFA_RET_OK } from "../../../smccc/ffa/abi.js";
import type { DirectResult, PartitionContext, SecurePartition } from "../partition.js";

export const TEST_SP_CMD = { ECHO: 1, CHECKSUM: 2, NOTIFY: 3 } as const;

/** What the test partition says it is: direct requests (both kinds), VM availability messages, AArch64. */
export const TEST_SP_PROPERTIES =
  FFA_PARTITION_PROP.DIRECT_REQ_RECV |
  FFA_PARTITION_PROP.DIRECT_REQ2_RECV |
  FFA_PARTITION_PROP.VM_CREATED_MSG |
  FFA_PARTITION_PROP.VM_DESTROYED_MSG |
  FFA_PARTITION_PROP.AARCH64;

/** Bytes the checksum reads at a time (one FF-A page). */
const CHUNK = 4096;
const U32 = 0xffff_ffffn;

export interface TestPartitionOptions {
  readonly name?: string;
  readonly id: number;
  readonly uuid: string;
  readonly properties?: number;
}

export class TestPartition implements SecurePartition {
  readonly name: string;
  readonly id: number;
  readonly uuid: string;
  readonly properties: number;
  readonly executionContexts = 1;
  /** VMs the SPMC told it of (VM_CREATED, not yet VM_DESTROYED): what tests inspect. */
  readonly vms = new Set<number>();

  constructor(o: TestPartitionOptions) {
    this.name = o.name ?? "test-sp";
    this.id = o.id;
    this.uuid = o.uuid;
    this.properties = o.properties ?? TEST_SP_PROPERTIES;
  }

  directRequest(sender: number, args: readonly bigint[], _is64: boolean, ctx: PartitionContext): DirectResult {
    const [cmd = 0n, a = 0n, b = 0n, c = 0n] = args;
    switch (cmd) {
      case BigInt(TEST_SP_CMD.ECHO):
        return { ok: true, args: [...args] };
      case BigInt(TEST_SP_CMD.CHECKSUM):
        return answer(checksum(ctx, sender, ((b & U32) << 32n) | (a & U32)));
      case BigInt(TEST_SP_CMD.NOTIFY):
        return answer([status(ctx.notificationSet(Number(a & 0xffffn), ((c & U32) << 32n) | (b & U32)))]);
      default:
        return { ok: false, error: FFA_RET.INVALID_PARAMETERS };
    }
  }

  onVmCreated(vmId: number): number {
    this.vms.add(vmId);
    return FFA_RET_OK;
  }

  onVmDestroyed(vmId: number): number {
    this.vms.delete(vmId);
    return FFA_RET_OK;
  }
}

/** Retrieves `handle` as the calling VM's region, sums it, relinquishes it: (status, sum, pages). */
function checksum(ctx: PartitionContext, sender: number, handle: bigint): bigint[] {
  const r = ctx.retrieve(handle, { sender });
  if (!r.ok) return [status(r.error)];
  let sum = 0n;
  let failed = false;
  for (const range of r.region.ranges) {
    for (let off = 0; off < range.pageCount * CHUNK && !failed; off += CHUNK) {
      const bytes = ctx.read(range.address + BigInt(off), CHUNK);
      if (bytes === null) failed = true;
      else sum += BigInt(bytes.reduce((s, x) => s + x, 0));
    }
  }
  ctx.relinquish(handle);
  return failed ? [status(FFA_RET.ABORTED)] : [0n, sum, BigInt(r.region.totalPages)];
}

function status(code: number): bigint {
  return BigInt(code >>> 0);
}

function answer(values: readonly bigint[]): DirectResult {
  return { ok: true, args: values };
}
