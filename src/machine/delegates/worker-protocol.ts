/** The messages between the hypervisor's thread and a delegate module's worker thread (module-worker.ts). */
import type { DelegateRequest } from "./protocol.js";

export interface WorkerSetup {
  /** The module's file URL. */
  readonly url: string;
  /** The shared control block: [0] state, [1] result; the data window from MEM_DATA_OFFSET. */
  readonly control: SharedArrayBuffer;
  /** How long the worker waits for the hypervisor's thread to answer a memory access. */
  readonly timeoutMs: number;
}

/** Control word 0: the worker posted an access and waits; the hypervisor's thread has answered it. */
export const MEM_REQUESTED = 1;
export const MEM_DONE = 2;
export const MEM_DATA_OFFSET = 16;
/** The window one memory access moves through: larger accesses take several. */
export const MEM_WINDOW = 256 << 10;

export type ToWorker = { readonly type: "call"; readonly id: number; readonly req: DelegateRequest } | { readonly type: "ping" };

export type FromWorker =
  | { readonly type: "ready" }
  | { readonly type: "load-error"; readonly message: string }
  | { readonly type: "pong" }
  | { readonly type: "reply"; readonly id: number; readonly reply: unknown }
  | { readonly type: "error"; readonly id: number; readonly message: string }
  | {
      readonly type: "mem";
      readonly id: number;
      readonly op: "read" | "write";
      /** This piece: `length` bytes at `ipa`. */
      readonly ipa: bigint;
      readonly length: number;
      /** The whole access the piece belongs to, which is checked before any piece is served. */
      readonly start: bigint;
      readonly total: number;
    };
