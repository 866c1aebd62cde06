/**
 * A delegate handler in a TypeScript or JavaScript module named in the config, exporting
 * `handle(request, context)` (or a default object with it). A handler that throws, rejects, answers
 * garbage or misses its deadline gives the guest -1 (SMCCC NOT_SUPPORTED); a late answer is never used.
 *
 * Where the module runs (`thread` in the config, docs/delegates.md):
 * - "worker" (the default): in a worker thread of its own. The deadline holds whatever the handler does,
 *   and a handler that computes for seconds holds up only the calls made to it: the hypervisor's thread
 *   serves every VM meanwhile. A worker that stops answering (its thread busy past a deadline) is
 *   restarted: the module is loaded afresh and the calls it owed get -1.
 * - "hypervisor": on the hypervisor's own thread, for trusted handlers that must share state with the
 *   program that embeds smcvisor (tests). JavaScript cannot interrupt a function, so a handler that
 *   computes stalls every VM for that long; the deadline still counts from the call, and an answer that
 *   comes after it is dropped.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget, GuestMemory, HandlerReturn } from "../../router/ports.js";
import { RateLimitedLog } from "../../hypervisor/rate-limited-log.js";
import { applyReply, requestOf, type DelegateContext, type DelegateModule } from "./protocol.js";
import { MEM_DATA_OFFSET, MEM_DONE, MEM_WINDOW, type FromWorker, type WorkerSetup } from "./worker-protocol.js";

export type DelegateThread = "worker" | "hypervisor";

/**
 * Calls a handler may owe past their deadline (answers that never came) before it is reset: a worker
 * is restarted; a handler on the hypervisor's thread gets no further calls until it answers some. A
 * handler that never settles its promises must not make the hypervisor keep one per call for ever.
 */
export const MAX_LATE_CALLS = 64;

/** How long a worker has to answer a ping after a missed deadline, at least, before it counts as stuck. */
const PING_MS = 250;

export interface ModuleDelegateOptions {
  readonly name: string;
  /** The module's path, as the config gives it (for messages). */
  readonly file: string;
  /** The directory relative paths are resolved against: the config file's. */
  readonly baseDir: string;
  readonly timeoutMs: number;
  readonly thread: DelegateThread;
  readonly memoryOf: (vm: string) => GuestMemory | undefined;
  readonly log?: (line: string) => void;
}

/** A delegate the config names cannot be loaded (a missing file, no handle function): the operator's to fix. */
export class DelegateLoadError extends Error {
  constructor(message: string) {
    // The loader's own message may go on with a stack of requires: the first line says it.
    super(message.split("\n")[0]);
    this.name = "DelegateLoadError";
  }
}

export interface ClosableTarget extends CallTarget {
  close(): void;
}

/** Loads (or starts) a module delegate; rejects naming the module when it cannot be loaded. */
export async function loadModuleDelegate(opts: ModuleDelegateOptions): Promise<ClosableTarget> {
  const url = pathToFileURL(resolve(opts.baseDir, opts.file)).href;
  if (opts.thread === "worker") {
    const d = new WorkerModuleDelegate(opts, url);
    await d.started();
    return d;
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new DelegateLoadError(`delegate "${opts.name}": cannot load ${opts.file}: ${(e as Error).message}`);
  }
  const candidate = (typeof mod.handle === "function" ? mod : (mod.default as Record<string, unknown> | undefined)) ?? {};
  if (typeof (candidate as { handle?: unknown }).handle !== "function") throw new DelegateLoadError(`delegate "${opts.name}": cannot load ${opts.file}: it exports no handle(request, context) function`);
  return new InlineModuleDelegate(opts, candidate as unknown as DelegateModule);
}

/** What a handler threw, for the log line the router writes: its first line, at most 200 characters. */
function handlerError(name: string, e: unknown): Error {
  const text = (e instanceof Error ? e.message : String(e)).split("\n")[0]!;
  return new Error(`delegate "${name}": ${text.length > 200 ? `${text.slice(0, 197)}...` : text}`);
}

function timedOut(name: string, ms: number): Error {
  return new Error(`delegate "${name}" did not answer within ${ms} ms`);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

/** Whether [start, start + length) is all the VM's RAM. */
function inRam(memory: GuestMemory, start: bigint, length: number): boolean {
  return start >= memory.base && start + BigInt(length) <= memory.base + memory.size;
}

/** A module on the hypervisor's thread (thread: hypervisor). */
export class InlineModuleDelegate implements ClosableTarget {
  private readonly log: RateLimitedLog;
  /** Calls past their deadline whose answer has not come. */
  private late = 0;

  constructor(private readonly opts: ModuleDelegateOptions, private readonly module: DelegateModule) {
    this.log = new RateLimitedLog(opts.log ?? (() => {}));
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): HandlerReturn {
    const { name, timeoutMs } = this.opts;
    if (this.late >= MAX_LATE_CALLS) throw new Error(`delegate "${name}" owes ${this.late} answers past their deadline; it gets no calls until it gives some`);
    const req = requestOf(call, origin);
    const memory = this.opts.memoryOf(origin.vmName);
    // The VM's RAM is the handler's only while the call waits for its answer.
    let open = true;
    const ctx: DelegateContext = {
      readGuest: (ipa, length) => (open && memory ? memory.read(ipa, length) : null),
      writeGuest: (ipa, data) => (open && memory ? memory.write(ipa, data) : false),
    };
    const t0 = performance.now();
    let returned: unknown;
    try {
      returned = this.module.handle(req, ctx);
    } catch (e) {
      throw handlerError(name, e);
    } finally {
      // Synchronous until here: the handler held this thread for the whole time.
      if (!isThenable(returned)) open = false;
    }
    const spent = performance.now() - t0;
    if (!isThenable(returned)) {
      if (spent > timeoutMs) throw this.lateAnswer(Math.round(spent));
      applyReply(returned, res);
      return;
    }
    const answer = Promise.resolve(returned);
    if (spent > timeoutMs) {
      open = false;
      this.owe(answer);
      return Promise.reject(this.lateAnswer(Math.round(spent)));
    }
    return new Promise<void>((done, fail) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        open = false;
        this.owe(answer);
        fail(timedOut(name, timeoutMs));
      }, timeoutMs - spent);
      timer.unref?.();
      answer.then(
        (reply) => {
          if (settled) return;
          settled = true;
          open = false;
          clearTimeout(timer);
          try {
            applyReply(reply, res);
            done();
          } catch (e) {
            fail(e as Error);
          }
        },
        (e: unknown) => {
          if (settled) return;
          settled = true;
          open = false;
          clearTimeout(timer);
          fail(handlerError(name, e));
        },
      );
    });
  }

  /** A call's answer that is still to come after its deadline: counted until it comes, then dropped. */
  private owe(answer: Promise<unknown>): void {
    this.late++;
    const settle = () => {
      this.late--;
      this.log.log("late", `smcvisor: delegate "${this.opts.name}" answered after its deadline (${this.opts.timeoutMs} ms); the answer was dropped`);
    };
    answer.then(settle, settle);
  }

  /** Calls past their deadline whose answer has not come. */
  get owed(): number {
    return this.late;
  }

  private lateAnswer(ms: number): Error {
    const { name, timeoutMs } = this.opts;
    this.log.log("late", `smcvisor: delegate "${name}" held the hypervisor's thread for ${ms} ms (deadline ${timeoutMs} ms); its answer was dropped`);
    return new Error(`delegate "${name}" answered after ${ms} ms, past its deadline of ${timeoutMs} ms`);
  }

  close(): void {}
}

interface Waiting {
  readonly vm: string;
  readonly timer: NodeJS.Timeout;
  resolve(reply: unknown): void;
  reject(e: Error): void;
}

/** A module in a worker thread of its own (thread: worker). */
export class WorkerModuleDelegate implements ClosableTarget {
  private worker: Worker | null = null;
  private control = new SharedArrayBuffer(MEM_DATA_OFFSET + MEM_WINDOW);
  private ready: Promise<void> = Promise.resolve();
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  /** Calls past their deadline whose answer has not come from this worker. */
  private readonly late = new Set<number>();
  private pingTimer: NodeJS.Timeout | null = null;
  /** Whether the current worker has loaded the module (and so answers pings). */
  private loaded = false;
  private closed = false;
  private readonly log: RateLimitedLog;

  constructor(private readonly opts: ModuleDelegateOptions, private readonly url: string) {
    this.log = new RateLimitedLog(opts.log ?? (() => {}));
    this.start();
  }

  /** Settles once the first worker has loaded the module; rejects naming the module if it cannot. */
  started(): Promise<void> {
    return this.ready.catch((e: Error) => {
      this.close();
      throw new DelegateLoadError(`delegate "${this.opts.name}": cannot load ${this.opts.file}: ${e.message}`);
    });
  }

  private start(): void {
    this.control = new SharedArrayBuffer(MEM_DATA_OFFSET + MEM_WINDOW);
    const setup: WorkerSetup = { url: this.url, control: this.control, timeoutMs: this.opts.timeoutMs };
    // No execArgv: the worker loads its own loader (module-worker.mjs), whatever ran this thread.
    const w = new Worker(new URL("./module-worker.mjs", import.meta.url), { workerData: setup, execArgv: [] });
    w.unref();
    this.worker = w;
    // A worker that never loaded the module is not restarted (it would fail again, for ever): its calls
    // time out and get -1.
    let loaded = false;
    this.loaded = false;
    this.ready = new Promise<void>((ok, fail) => {
      w.on("message", (m: FromWorker) => {
        if (w !== this.worker) return;
        if (m.type === "ready") {
          loaded = this.loaded = true;
          ok();
        } else if (m.type === "load-error") fail(new Error(m.message));
        else this.onMessage(m);
      });
      w.on("error", (e) => {
        fail(e);
        if (w === this.worker && loaded) this.restart(`its thread failed: ${e.message}`);
      });
      w.on("exit", (code) => {
        fail(new Error(`its thread exited (code ${code})`));
        if (w === this.worker && loaded) this.restart(`its thread exited (code ${code})`);
      });
    });
    this.ready.catch(() => {});
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`delegate "${this.opts.name}": closed`));
    if (this.late.size >= MAX_LATE_CALLS) this.restart(`it owes ${this.late.size} answers past their deadline`);
    const req = requestOf(call, origin);
    const id = this.nextId++;
    const { name, timeoutMs } = this.opts;
    // The deadline runs from the call, whatever the worker is doing.
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => this.expire(id), timeoutMs);
      timer.unref?.();
      this.waiting.set(id, { vm: origin.vmName, timer, resolve, reject });
    });
    this.worker!.postMessage({ type: "call", id, req });
    return reply.then(
      (r) => applyReply(r, res),
      (e: Error) => {
        throw e.message.startsWith(`delegate "${name}"`) ? e : new Error(`delegate "${name}": ${e.message}`);
      },
    );
  }

  private expire(id: number): void {
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    this.late.add(id);
    w.reject(timedOut(this.opts.name, this.opts.timeoutMs));
    this.checkAlive();
  }

  /**
   * After a missed deadline: a worker that does not answer a ping within PING_MS (or the timeout, if
   * longer) is stuck computing, and is restarted. A worker still loading the module is left to load.
   */
  private checkAlive(): void {
    if (this.pingTimer !== null || this.closed || !this.loaded) return;
    const wait = Math.max(this.opts.timeoutMs, PING_MS);
    const timer = setTimeout(() => {
      this.pingTimer = null;
      this.restart(`its thread did not answer for ${wait} ms after a missed deadline`);
    }, wait);
    timer.unref?.();
    this.pingTimer = timer;
    this.worker!.postMessage({ type: "ping" });
  }

  private onMessage(m: Exclude<FromWorker, { type: "ready" } | { type: "load-error" }>): void {
    if (m.type === "pong") {
      if (this.pingTimer !== null) clearTimeout(this.pingTimer);
      this.pingTimer = null;
      return;
    }
    if (m.type === "mem") return this.serveMemory(m);
    const w = this.waiting.get(m.id);
    if (w === undefined) {
      if (this.late.delete(m.id)) this.log.log("late", `smcvisor: delegate "${this.opts.name}" answered after its deadline (${this.opts.timeoutMs} ms); the answer was dropped`);
      return;
    }
    this.waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.type === "reply") w.resolve(m.reply);
    else w.reject(handlerError(this.opts.name, m.message));
  }

  /** A memory access of the worker, for call `id` only while it waits, and only in the calling VM's RAM. */
  private serveMemory(m: Extract<FromWorker, { type: "mem" }>): void {
    const ctl = new Int32Array(this.control, 0, 4);
    const window = new Uint8Array(this.control, MEM_DATA_OFFSET);
    let result = -1;
    const w = this.waiting.get(m.id);
    const memory = w ? this.opts.memoryOf(w.vm) : undefined;
    const sane = typeof m.ipa === "bigint" && typeof m.start === "bigint" && Number.isSafeInteger(m.length) && Number.isSafeInteger(m.total) && m.length >= 0 && m.total >= 0;
    const piece = sane && m.ipa >= m.start && m.ipa + BigInt(m.length) <= m.start + BigInt(m.total) && m.length <= window.length;
    if (memory && piece && inRam(memory, m.start, m.total)) {
      if (m.op === "read") {
        const bytes = memory.read(m.ipa, m.length);
        if (bytes !== null && bytes.length === m.length) {
          window.set(bytes);
          result = m.length;
        }
      } else if (memory.write(m.ipa, window.slice(0, m.length))) {
        result = m.length;
      }
    }
    Atomics.store(ctl, 1, result);
    Atomics.store(ctl, 0, MEM_DONE);
    Atomics.notify(ctl, 0);
  }

  /** Ends the worker, answers -1 to every call it owed, and starts a fresh one (the module loaded anew). */
  private restart(why: string): void {
    if (this.closed) return;
    this.log.log("restart", `smcvisor: delegate "${this.opts.name}": ${why}; restarting it (the calls it owed get -1)`);
    this.stop(why);
    this.start();
  }

  private stop(why: string): void {
    const old = this.worker;
    this.worker = null;
    if (this.pingTimer !== null) clearTimeout(this.pingTimer);
    this.pingTimer = null;
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new Error(`delegate "${this.opts.name}": ${why}`));
    }
    this.waiting.clear();
    this.late.clear();
    void old?.terminate();
  }

  close(): void {
    if (this.closed) return;
    this.stop("closed");
    this.closed = true;
  }

  /** Calls past their deadline whose answer has not come from this worker. */
  get owed(): number {
    return this.late.size;
  }
}
