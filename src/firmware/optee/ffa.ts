/**
 * OP-TEE as a secure partition behind the SPMC: OP-TEE's FF-A ABI (optee_os core/arch/arm/kernel/
 * thread_spmc.c, the OP-TEE endpoint's direct requests; Linux drivers/tee/optee/ffa_abi.c on the other
 * side) in front of the same OpteeOs that serves the SMC ABI, so the same TAs serve both.
 *
 * Who is calling is the direct request's sender endpoint, which the SPMC delivers (the hypervisor wrote
 * it in w1 for the VM, and the SPMC checked the VM may talk to this partition): the VM's ID, the same
 * number as its client ID over the SMC ABI. A VM is a guest of the OS only once VM_CREATED (a framework
 * message) made it one, and only through this ABI then: an SMC-ABI guest's ID sends nothing here, and an
 * FF-A guest's ID is nothing to a7.
 *
 * Memory a guest reaches over FF-A is only the regions it shared with OP-TEE's endpoint: the OS names
 * them by global handle, retrieves them through the SPMC (FFA_MEM_RETRIEVE_REQ, with the guest as the
 * expected lender) the first time a call uses them, and reads and writes their pages only, through the
 * SPMC's context, which itself allows only pages this partition holds.
 */
import { SmcResult } from "../../router/call.js";
import { FFA_MEM_PERM, FFA_PARTITION_PROP, FFA_RET, FFA_RET_OK } from "../../smccc/ffa/abi.js";
import { TEEC } from "../../smccc/optee/abi.js";
import { DIRECT_REQ2_ARGS, type DirectResult, type PartitionContext, type SecurePartition } from "../spmc/partition.js";
import {
  OPTEE_FFA,
  OPTEE_FFA_SEC_CAP,
  OPTEE_FFA_UUID,
  OPTEE_FFA_VERSION,
  OPTEE_FFA_YIELDING_CALL_BIT,
  THREAD_RPC_MAX_NUM_PARAMS,
} from "./ffa-abi.js";
import type { FfaMemoryPort, FfaRetrieved } from "./ffa-shm.js";
import { OS_REVISION, type OpteeOs } from "./os.js";

/**
 * What OP-TEE's endpoint says of itself (thread_spmc.c spmc_fill_partition_entry for OP-TEE): it receives
 * and sends direct requests, its ID names a PE endpoint, it runs AArch64, and with virtualization it wants
 * VM_CREATED and VM_DESTROYED for the guests it serves.
 */
export const OPTEE_PARTITION_PROPERTIES =
  FFA_PARTITION_PROP.DIRECT_REQ_RECV |
  FFA_PARTITION_PROP.DIRECT_REQ_SEND |
  FFA_PARTITION_PROP.ID_TYPE_PE |
  FFA_PARTITION_PROP.VM_CREATED_MSG |
  FFA_PARTITION_PROP.VM_DESTROYED_MSG |
  FFA_PARTITION_PROP.AARCH64;

export interface OpteeFfaPartitionOptions {
  readonly name: string;
  /** Endpoint ID (bit 15 set), from `platform.spmc.partitions[].id`. */
  readonly id: number;
  /** Execution contexts: one per PE, as OP-TEE's manifest gives (default 1). */
  readonly executionContexts?: number;
}

export class OpteeFfaPartition implements SecurePartition {
  readonly name: string;
  readonly id: number;
  readonly uuid = OPTEE_FFA_UUID;
  readonly properties = OPTEE_PARTITION_PROPERTIES;
  readonly executionContexts: number;
  /** The OS's answers to yielding calls land here (w3-w7), one call at a time. */
  private readonly res = new SmcResult();
  private readonly port = new ContextPort();

  constructor(
    private readonly os: OpteeOs,
    opts: OpteeFfaPartitionOptions,
  ) {
    this.name = opts.name;
    this.id = opts.id;
    this.executionContexts = opts.executionContexts ?? 1;
  }

  /**
   * A direct request (optee_lsp_handle_direct_request): DIRECT_REQ2 is NOT_SUPPORTED; a sender that is
   * not an FF-A guest of the OS gets TEE_ERROR_ITEM_NOT_FOUND in w3 (virt_set_guest fails); then bit 31
   * of w3 chooses a yielding call or a blocking one. Answers are 32-bit values in w3-w7, whichever width
   * the request had (spmc_set_args).
   */
  directRequest(sender: number, args: readonly bigint[], _is64: boolean, ctx: PartitionContext): DirectResult {
    if (args.length === DIRECT_REQ2_ARGS) return { ok: false, error: FFA_RET.NOT_SUPPORTED };
    const w = (n: number): number => Number((args[n - 3] ?? 0n) & 0xffff_ffffn);
    if (!this.os.isFfaGuest(sender)) return reply(TEEC.ERROR_ITEM_NOT_FOUND);
    const service = w(3);
    if ((service & OPTEE_FFA_YIELDING_CALL_BIT) === 0) return this.blocking(sender, service, w(4), w(5), ctx);
    const res = this.res;
    res.reset();
    this.port.during(ctx, () => {
      if (service === OPTEE_FFA.YIELDING_CALL_RESUME) this.os.ffaResume(sender, w(7), res);
      else this.os.ffaYieldingCall(sender, service, (BigInt(w(5)) << 32n) | BigInt(w(4)), w(6), res);
    });
    return answer(res);
  }

  /** handle_blocking_call: the services that answer at once, on no thread. */
  private blocking(sender: number, service: number, w4: number, w5: number, ctx: PartitionContext): DirectResult {
    switch (service) {
      case OPTEE_FFA.GET_API_VERSION:
        return reply(OPTEE_FFA_VERSION.major, OPTEE_FFA_VERSION.minor);
      case OPTEE_FFA.GET_OS_VERSION:
        // w5 is the build's git hash in optee_os; the model's build ID, as GET_OS_REVISION a2 gives it.
        return reply(OS_REVISION.major, OS_REVISION.minor, OS_REVISION.build);
      case OPTEE_FFA.EXCHANGE_CAPABILITIES:
        // w4: parameters of the RPC argument the normal world places after each call's argument; w5: the
        // argument may be at an offset in its region; w6 (Linux 6.9+: notification values): none.
        return reply(0, THREAD_RPC_MAX_NUM_PARAMS, OPTEE_FFA_SEC_CAP.ARG_OFFSET);
      case OPTEE_FFA.UNREGISTER_SHM: {
        const handle = (BigInt(w5) << 32n) | BigInt(w4);
        const outcome = this.port.during(ctx, () => this.os.ffaUnregisterShm(sender, handle));
        // handle_unregister_shm: a handle OP-TEE never retrieved is fine (the normal world cannot know).
        return reply(outcome === "busy" ? FFA_RET.BUSY >>> 0 : outcome === null ? TEEC.ERROR_ITEM_NOT_FOUND : 0);
      }
    }
    // ENABLE_ASYNC_NOTIF and RELEASE_PROTMEM are not built in, like any unknown service.
    return reply(TEEC.ERROR_BAD_PARAMETERS);
  }

  /**
   * VM_CREATED (handle_framework_direct_request → virt_guest_created): FFA_RET_OK, DENIED when the OS
   * holds as many guests as it can, INVALID_PARAMETERS for ID 0 or one that is a guest already.
   */
  onVmCreated(vmId: number, ctx: PartitionContext): number {
    const result = this.port.during(ctx, () => this.os.ffaVmCreated(vmId, this.port));
    if (result === TEEC.SUCCESS) return FFA_RET_OK;
    return result === TEEC.ERROR_OUT_OF_MEMORY ? FFA_RET.DENIED : FFA_RET.INVALID_PARAMETERS;
  }

  /** VM_DESTROYED (virt_guest_destroyed): the guest's sessions, threads and regions go; OK for any ID. */
  onVmDestroyed(vmId: number, ctx: PartitionContext): number {
    this.port.during(ctx, () => this.os.ffaVmDestroyed(vmId));
    return FFA_RET_OK;
  }
}

/** A direct response's w3-w7. */
function reply(w3: number, w4 = 0, w5 = 0, w6 = 0, w7 = 0): DirectResult {
  return { ok: true, args: [BigInt(w3 >>> 0), BigInt(w4 >>> 0), BigInt(w5 >>> 0), BigInt(w6 >>> 0), BigInt(w7 >>> 0)] };
}

function answer(res: SmcResult): DirectResult {
  const w = (n: number): number => Number(res.get(n) & 0xffff_ffffn);
  return reply(w(3), w(4), w(5), w(6), w(7));
}

/**
 * The OS's FF-A memory port on the SPMC's context. The SPMC gives a context for each call into the
 * partition (valid only during it), so the port serves while one is in progress and refuses otherwise:
 * the OS only touches normal-world memory while it serves a call.
 */
class ContextPort implements FfaMemoryPort {
  private ctx: PartitionContext | null = null;

  during<T>(ctx: PartitionContext, f: () => T): T {
    const outer = this.ctx;
    this.ctx = ctx;
    try {
      return f();
    } finally {
      this.ctx = outer;
    }
  }

  retrieve(guest: number, handle: bigint): FfaRetrieved | null {
    // The lender must be the guest whose call names the handle: another VM's region, even one shared
    // with OP-TEE too, is refused by the SPMC (and checked again here).
    const r = this.ctx?.retrieve(handle, { sender: guest });
    if (!r?.ok || r.region.sender !== guest) return null;
    const ranges = r.region.ranges.map((x) => ({ pa: x.address, pages: x.pageCount }));
    return { ranges, writable: (r.region.permissions & FFA_MEM_PERM.DATA_MASK) === FFA_MEM_PERM.DATA_RW };
  }

  relinquish(_guest: number, handle: bigint): void {
    this.ctx?.relinquish(handle);
  }

  read(pa: bigint, length: number): Uint8Array | null {
    return this.ctx?.read(pa, length) ?? null;
  }

  write(pa: bigint, data: Uint8Array): boolean {
    return this.ctx?.write(pa, data) ?? false;
  }
}
