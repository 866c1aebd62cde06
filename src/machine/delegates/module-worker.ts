/**
 * The worker thread a delegate module runs in (module-delegate.ts, WorkerModuleDelegate): it loads the
 * module, serves calls posted by the hypervisor's thread, and reaches the calling VM's RAM synchronously
 * through a shared control block that the hypervisor's thread answers. Whatever the module does here
 * (compute for seconds, never answer, throw), the hypervisor's thread goes on serving every VM.
 *
 * Started through module-worker.mjs, which loads this file with tsx (workers do not inherit the loader).
 */
import { parentPort, workerData } from "node:worker_threads";
import { tsImport } from "tsx/esm/api";
import type { DelegateContext, DelegateModule, DelegateRequest } from "./protocol.js";
import { MEM_DATA_OFFSET, MEM_DONE, MEM_REQUESTED, type FromWorker, type ToWorker, type WorkerSetup } from "./worker-protocol.js";

const setup = workerData as WorkerSetup;
const port = parentPort!;
const ctl = new Int32Array(setup.control, 0, 4);
const window = new Uint8Array(setup.control, MEM_DATA_OFFSET);
const post = (m: FromWorker) => port.postMessage(m);

/**
 * One access to the calling VM's RAM, piece by piece through the shared window: the hypervisor's thread
 * checks that the call `id` still waits for its answer and that the whole range [start, start + total) is
 * the VM's RAM before it touches any of it. Returns the bytes read, true for a write, or null.
 */
function access(id: number, op: "read" | "write", start: bigint, total: number, data?: Uint8Array): Uint8Array | true | null {
  if (!Number.isSafeInteger(total) || total < 0) return null;
  const out = op === "read" ? new Uint8Array(total) : null;
  let off = 0;
  do {
    const length = Math.min(window.length, total - off);
    if (data !== undefined) window.set(data.subarray(off, off + length));
    Atomics.store(ctl, 0, MEM_REQUESTED);
    post({ type: "mem", id, op, ipa: start + BigInt(off), length, start, total });
    // The hypervisor's thread answers between its other work; a call past its deadline is refused.
    if (Atomics.wait(ctl, 0, MEM_REQUESTED, setup.timeoutMs) === "timed-out" || Atomics.load(ctl, 0) !== MEM_DONE) return null;
    if (Atomics.load(ctl, 1) < 0) return null;
    out?.set(window.subarray(0, length), off);
    off += length;
  } while (off < total);
  return out ?? true;
}

async function main(): Promise<void> {
  let mod: Record<string, unknown>;
  try {
    mod = (await tsImport(setup.url, import.meta.url)) as Record<string, unknown>;
  } catch (e) {
    return post({ type: "load-error", message: (e as Error).message ?? String(e) });
  }
  const candidate = (typeof mod.handle === "function" ? mod : (mod.default as Record<string, unknown> | undefined)) ?? {};
  if (typeof (candidate as { handle?: unknown }).handle !== "function") return post({ type: "load-error", message: "it exports no handle(request, context) function" });
  const module = candidate as unknown as DelegateModule;
  port.on("message", (m: ToWorker) => {
    if (m.type === "ping") return post({ type: "pong" });
    const id = m.id;
    const ctx: DelegateContext = {
      readGuest: (ipa, length) => {
        const r = access(id, "read", BigInt(ipa), length);
        return r instanceof Uint8Array ? r : null;
      },
      writeGuest: (ipa, data) => access(id, "write", BigInt(ipa), data.length, data) === true,
    };
    void (async () => module.handle(m.req as DelegateRequest, ctx))().then(
      (reply) => {
        try {
          post({ type: "reply", id, reply });
        } catch (e) {
          post({ type: "error", id, message: `its reply cannot be sent: ${(e as Error).message}` });
        }
      },
      (e: unknown) => post({ type: "error", id, message: e instanceof Error ? e.message : String(e) }),
    );
  });
  post({ type: "ready" });
}

void main();
