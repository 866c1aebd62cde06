/**
 * What the FF-A mediator keeps for one VM, and how it answers the VM (DEN0077 v1.2 §12.4: FFA_ERROR with
 * the status in w2 as a signed 32-bit value; FFA_SUCCESS with results from w2). Results always write
 * x0-x7: registers the spec says are MBZ in a result are zero, never the caller's arguments.
 */
import type { SmcResult } from "../../router/call.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { SpmcPort } from "./spmc-port.js";

/** A memory transaction a VM has shared or lent (complete, or its fragments still arriving). */
export interface Transaction {
  readonly handle: bigint;
  /** FFA_MEM_SHARE or FFA_MEM_LEND (the SMC32 IDs). */
  readonly func: number;
  readonly lender: string;
  /** Endpoint IDs of the borrowers. */
  readonly receivers: readonly number[];
  /** Whether the borrowers are secure partitions (the SPMC holds the transaction) or peer VMs (the mediator does). */
  readonly toSp: boolean;
  /** The lender's pages (IPA >> 12), each in at most one transaction. */
  readonly pages: readonly number[];
  /** For peer transactions: the descriptor a borrower retrieves (translated, in no particular layout). */
  readonly retrieve: RetrieveInfo | null;
  /** Peer borrowers that have retrieved it and not relinquished. */
  readonly retrievedBy: Set<string>;
}

export interface RetrieveInfo {
  readonly attributes: number;
  readonly flags: number;
  readonly tag: bigint;
  /** Permissions per borrower ID. */
  readonly permissions: ReadonlyMap<number, number>;
  /** Physical ranges: what a peer is given (the lender's RAM as the platform addresses it). */
  readonly ranges: readonly { readonly address: bigint; readonly pageCount: number }[];
}

/** A transaction whose descriptor is still arriving in fragments (FFA_MEM_FRAG_TX). */
export interface Fragmented {
  readonly handle: bigint;
  readonly func: number;
  /** The VM's descriptor so far, copied out of its TX buffer, and its total length. */
  readonly bytes: Uint8Array;
  received: number;
  readonly toSp: boolean;
  readonly receivers: readonly number[];
  /** Pages checked so far (IPA >> 12), reserved for this transaction. */
  readonly pages: number[];
  /** For SP transactions: bytes forwarded to the SPMC so far (in the SPMC's layout). */
  spmcSent: number;
  readonly spmcTotal: number;
}

/** A VM's call held until another VM completes it (direct messages between peers). */
export interface Parked {
  readonly res: SmcResult;
  readonly done: () => void;
}

/** A direct request a VM serves: who sent it, which call, and the sender's pending call (null once the sender is gone). */
export interface Serving {
  readonly from: FfaVm;
  readonly request: number;
  sender: Parked | null;
}

export interface FfaVm {
  readonly name: string;
  readonly id: number;
  readonly vcpus: number;
  readonly aarch32: boolean;
  readonly peers: readonly string[];
  /** The version the VM asked for (clamped to the mediator's), 0 before its first FFA_VERSION. */
  version: number;
  /** Set by the first call other than FFA_VERSION (DEN0077 v1.2 §13.2.1): the version no longer changes. */
  locked: boolean;
  /** Calls made for this VM. */
  readonly port: SpmcPort;
  /** The VM's RX/TX buffer pair (IPAs), FFA_RXTX_MAP. */
  rxtx: { readonly tx: bigint; readonly rx: bigint; readonly pages: number } | null;
  /** The VM owns its RX buffer: the mediator wrote it and the VM has not called FFA_RX_RELEASE (§7.2.2.4). */
  rxFull: boolean;
  /** The SPMC holds a notification bitmap for the VM (FFA_NOTIFICATION_BITMAP_CREATE at enable). */
  bitmap: boolean;
  /** Transactions the VM lends or shares, by handle. */
  readonly lent: Map<bigint, Transaction>;
  fragmented: Fragmented | null;
  /** Pages (IPA >> 12) in the VM's transactions, complete or not: a page is never in two. */
  readonly pagesInUse: Set<number>;
  /** Peers' transactions the VM has retrieved: handle → the lender's name. */
  readonly retrieved: Map<bigint, string>;
  /** The SPMC listed the VM in an FFA_NOTIFICATION_INFO_GET answer it has not yet been told of. */
  notificationPending: boolean;
  /** The hypervisor framework notification "RX buffer full" is pending: a peer's FFA_MSG_SEND2 filled RX. */
  rxBufferFull: boolean;
  /** Direct messages between peers: the vCPU waiting for a request, the request it serves, the peer it waits on. */
  parked: Parked | null;
  serving: Serving | null;
  awaiting: FfaVm | null;
}

export const FFA_ERROR = F.FFA_ERROR.smc32;
export const FFA_SUCCESS_32 = F.FFA_SUCCESS.smc32;
export const FFA_SUCCESS_64 = F.FFA_SUCCESS.smc64;

/** x0-x7 of a result; the ones not given are zero. */
export function reply(res: SmcResult, x0: number, x1 = 0, x2 = 0, x3 = 0, x4 = 0, x5 = 0, x6 = 0, x7 = 0): void {
  res.set(0, x0);
  res.set(1, x1);
  res.set(2, x2);
  res.set(3, x3);
  res.set(4, x4);
  res.set(5, x5);
  res.set(6, x6);
  res.set(7, x7);
}

/**
 * FFA_ERROR: the status in w2, a negative 32-bit value; x2's upper half is zero for SMC64 callers too, as
 * TF-A, Hafnium and Xen answer and the FF-A ACS checks (Linux reads (int)a2).
 */
export function ffaError(res: SmcResult, code: number): void {
  reply(res, FFA_ERROR, 0, code >>> 0);
}

export function ffaSuccess(res: SmcResult, w2 = 0, w3 = 0, w4 = 0): void {
  reply(res, FFA_SUCCESS_32, 0, w2, w3, w4);
}

/** Copies x0-x(last) of the SPMC's answer to the VM's result. */
export function passAnswer(res: SmcResult, words: Uint32Array, last: number): void {
  for (let n = 0; n <= last; n++) res.setWords(n, words[2 * n]!, words[2 * n + 1]!);
}
