/**
 * Trusted applications of the OP-TEE model, written in TypeScript. A TA sees GlobalPlatform-style
 * parameters and may ask the normal world for services over RPC: invocations are generators, so a TA
 * suspends at `yield` while its thread waits for the normal world, and the OS resumes it with the answer.
 *
 * A memref's buffer is, where the OS can map it in place, the normal world's shared memory itself, as
 * OP-TEE maps a client's shared memory into a TA: what the TA writes lands there at once, and the normal
 * world (another vCPU, or the guest while the TA waits in an RPC) may change it at any time. So a TA reads
 * a byte it depends on once, or copies the buffer before it checks and then uses the content; and it writes
 * only output buffers. Otherwise the buffer is the OS's copy (inputs copied in, outputs copied back).
 */
import type { ChaCha20 } from "./chacha20.js";
export type TaParamType = "none" | "value-in" | "value-out" | "value-inout" | "memref-in" | "memref-out" | "memref-inout";

export interface TaParam {
  readonly type: TaParamType;
  /** Values: a and b (32-bit each, as TEE_Param.value). */
  a: number;
  b: number;
  /** Memrefs: the contents (in place or a copy: see above), and the size the TA reports back for output. */
  buffer: Uint8Array;
  size: number;
}

/** What a TA may ask the normal world for (OPTEE_RPC_CMD_*). */
export type RpcRequest = { readonly kind: "get-time" } | { readonly kind: "preempt" };
export type RpcReply = { readonly kind: "time"; readonly seconds: number; readonly nanos: number } | { readonly kind: "resumed" } | { readonly kind: "failed"; readonly result: number };

export interface TaClient {
  /** The normal-world guest (client ID) calling. */
  readonly guest: number;
  /** GlobalPlatform login method (0 public, 1 user, ..., 0x80000000 REE kernel). */
  readonly login: number;
}

export interface TaEnv {
  readonly client: TaClient;
  /** Entropy from the secure world's source; false when it has none now. */
  random(out: Uint8Array): boolean;
  /** The content key provisioned for the calling guest, if any. */
  contentKey(): Uint8Array | null;
  /** ChaCha20 (RFC 8439) as the host provides it: the secure world's crypto library. */
  readonly chacha20: ChaCha20;
}

export type TaResult = { readonly result: number; readonly origin?: number };

export interface TrustedApp<S = unknown> {
  readonly uuid: string;
  readonly name: string;
  /** Opens a session; returns its state, or a TEE error. */
  open(params: TaParam[], env: TaEnv): { result: number; state?: S };
  invoke(state: S, cmd: number, params: TaParam[], env: TaEnv): Generator<RpcRequest, TaResult, RpcReply>;
  close(state: S): void;
}
