/**
 * The secure partition interface: what the modelled SPMC (spmc.ts) calls into, and what it offers back.
 * A partition is a synchronous request → response machine, the shape of an S-EL1 partition behind an
 * SPMC at the FF-A direct messaging ABI (DEN0077 v1.2, direct messaging): the SPMC delivers FFA_MSG_SEND_DIRECT_REQ(2)
 * from a VM, the partition runs and answers FFA_MSG_SEND_DIRECT_RESP(2).
 *
 * OP-TEE's FF-A protocol fits as is: a yielding call that needs the normal world (an RPC) ends the direct
 * request with a direct response that carries the RPC; the normal world answers it in its next direct
 * request, which resumes the suspended thread (OP-TEE core/arch/arm/kernel/thread_spmc.c, Linux
 * drivers/tee/optee/ffa_abi.c). Nothing here needs to be asynchronous.
 *
 * Memory: a partition names shared memory by its global handle. It retrieves the region through its
 * PartitionContext (FFA_MEM_RETRIEVE_REQ semantics: the SPMC checks that this partition is a receiver
 * of that transaction), reads and writes the retrieved pages by physical address (the SPMC allows only
 * pages this partition holds retrieved), and relinquishes (FFA_MEM_RELINQUISH) when done. The SPMC
 * refuses the owner's MEM_RECLAIM while a partition holds the region.
 */
import type { FfaError, FfaMemTransactionType } from "../../smccc/ffa/abi.js";
import type { FfaMemRange } from "../../smccc/ffa/descriptors.js";

/** A direct request's payload: x3..x7 (DIRECT_REQ, 5 values) or x4..x17 (DIRECT_REQ2, 14 values). */
export const DIRECT_REQ_ARGS = 5;
export const DIRECT_REQ2_ARGS = 14;

/**
 * What a partition answers: the response payload (as many values as the request had: 5 or 14; missing
 * ones are zero, extra ones an invariant violation), or an FFA_ERROR the SPMC returns to the sender.
 */
export type DirectResult =
  | { readonly ok: true; readonly args: readonly bigint[] }
  | { readonly ok: false; readonly error: FfaError };

export interface SecurePartition {
  readonly name: string;
  /** Endpoint ID, bit 15 set (0x8001...). */
  readonly id: number;
  /** Canonical lower-case UUID string; PARTITION_INFO_GET by UUID and DIRECT_REQ2 find it by this. */
  readonly uuid: string;
  /** FFA_PARTITION_PROP bits (receives direct requests, VM_CREATED/VM_DESTROYED subscriptions, AArch64...). */
  readonly properties: number;
  /** Execution contexts (1 for a uniprocessor partition, else one per PE). */
  readonly executionContexts: number;
  /**
   * A direct request from VM `sender` (already checked by the SPMC: a VM the hypervisor created and that
   * this partition lists). `args` is x3..x7 for DIRECT_REQ (32-bit values when !is64) and x4..x17 for
   * DIRECT_REQ2 (always 64-bit). Called synchronously; `ctx` is valid only during the call.
   */
  directRequest(sender: number, args: readonly bigint[], is64: boolean, ctx: PartitionContext): DirectResult;
  /**
   * VM_CREATED framework message (DEN0077 v1.1+, VM availability messages), for partitions with FFA_PARTITION_PROP.VM_CREATED_MSG:
   * 0 (FFA_RET_OK) or an FFA_ERROR code, which the SPMC answers the hypervisor with in the framework
   * response.
   */
  onVmCreated?(vmId: number, ctx: PartitionContext): number;
  /** VM_DESTROYED: the partition forgets the VM (its sessions, its retrieved memory: relinquish first). */
  onVmDestroyed?(vmId: number, ctx: PartitionContext): number;
}

/** A region as the SPMC granted it to the retrieving partition (the FFA_MEM_RETRIEVE_RESP contents). */
export interface RetrievedRegion {
  readonly handle: bigint;
  /** The lender: the VM whose memory it is. */
  readonly sender: number;
  readonly transaction: Exclude<FfaMemTransactionType, 0>;
  /** FFA_MEM_PERM bits granted to this partition. */
  readonly permissions: number;
  /** FFA_MEM_ATTR bits (NS set: the memory is non-secure). */
  readonly attributes: number;
  readonly tag: bigint;
  /** Physical ranges, in the order the sender gave them. */
  readonly ranges: readonly FfaMemRange[];
  readonly totalPages: number;
}

export type RetrieveResult =
  | { readonly ok: true; readonly region: RetrievedRegion }
  | { readonly ok: false; readonly error: FfaError };

/** Optional expectations of a retrieve request: the SPMC checks them as FFA_MEM_RETRIEVE_REQ would. */
export interface RetrieveOptions {
  /** The lender the partition expects (INVALID_PARAMETERS otherwise). */
  readonly sender?: number;
  /** The transaction type the partition expects (0 or absent: any). */
  readonly transaction?: FfaMemTransactionType;
}

/**
 * What the SPMC offers the partition it is calling. Every method acts as this partition (the SPMC binds
 * the context to it); errors are FFA_ERROR codes. A context serves only during the call it was given for:
 * kept and used later, it answers DENIED, null and false.
 */
export interface PartitionContext {
  /** The calling partition's ID. */
  readonly self: number;
  /** FFA_MEM_RETRIEVE_REQ for `handle`: the partition must be one of its receivers. Retrieving twice nests. */
  retrieve(handle: bigint, opts?: RetrieveOptions): RetrieveResult;
  /** FFA_MEM_RELINQUISH: 0, or INVALID_PARAMETERS for a handle this partition does not hold. */
  relinquish(handle: bigint): number;
  /** Reads [pa, pa + length) of memory this partition holds retrieved (null otherwise or when unmapped). */
  read(pa: bigint, length: number): Uint8Array | null;
  /** Writes memory this partition holds retrieved with write permission (false otherwise). */
  write(pa: bigint, data: Uint8Array): boolean;
  /**
   * Optional: [pa, pa + length) in place, as OP-TEE maps shared memory, for memory this partition holds
   * retrieved with write permission and a memory port that can view it (null otherwise: read and write
   * serve then). The normal world may change it at any time; valid only during the call.
   */
  view?(pa: bigint, length: number): Uint8Array | null;
  /** FFA_NOTIFICATION_SET from this partition to VM `vmId`: 0, or the FFA_ERROR. */
  notificationSet(vmId: number, bitmap: bigint): number;
}
