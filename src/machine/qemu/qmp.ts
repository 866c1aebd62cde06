/**
 * A client for QEMU's machine protocol (QMP: QEMU's docs/interop/qmp-spec.rst), on the unix socket each VM's
 * QEMU listens on in its private run directory. smcvisor uses it for what the guest cannot be asked to do:
 * reset a VM that makes no call to the hypervisor (the control API's reset, docs/api.md). Only the
 * hypervisor connects; nothing of the guest reaches the socket.
 *
 * The protocol is one JSON object per line. On connection QEMU sends a greeting (`{"QMP": ...}`); the client
 * leaves capabilities negotiation with `qmp_capabilities`; then each command gets exactly one reply, in
 * order, `{"return": ...}` or `{"error": {"class", "desc"}}`, and asynchronous `{"event": ...}` objects may
 * come between them (only those a caller waits for are looked at).
 */
import { connect, type Socket } from "node:net";

/** A line longer than this is not QMP as smcvisor uses it: the connection is dropped. */
const MAX_LINE = 1 << 20;

export class QmpError extends Error {}

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (e: Error) => void;
}

export class Qmp {
  private buffer = "";
  private greeted = false;
  private readonly pending: Pending[] = [];
  private readonly waiting: { readonly event: string; readonly resolve: () => void; readonly reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  private readonly ready: Promise<void>;

  private constructor(private readonly socket: Socket) {
    let greet!: () => void, refuse!: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => ((greet = resolve), (refuse = reject)));
    socket.setEncoding("utf8");
    socket.on("data", (s: string) => {
      this.buffer += s;
      if (this.buffer.length > MAX_LINE && !this.buffer.includes("\n")) return this.close(new QmpError(`a QMP line longer than ${MAX_LINE} bytes`), refuse);
      let nl: number;
      while ((nl = this.buffer.indexOf("\n")) >= 0) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line) this.onLine(line, greet, refuse);
      }
    });
    socket.on("error", (e) => this.close(new QmpError(`QMP: ${e.message}`), refuse));
    socket.on("close", () => this.close(new QmpError("QMP: QEMU closed the connection"), refuse));
  }

  /** Connects to QEMU's QMP socket and leaves negotiation mode; rejects after `timeoutMs`. */
  static async connect(path: string, timeoutMs = 5000): Promise<Qmp> {
    const socket = connect(path);
    const qmp = new Qmp(socket);
    const timer = setTimeout(() => qmp.close(new QmpError(`QMP: no greeting from QEMU within ${timeoutMs} ms`)), timeoutMs);
    try {
      await qmp.ready;
      await qmp.execute("qmp_capabilities");
      return qmp;
    } catch (e) {
      qmp.close(e instanceof Error ? e : new QmpError(String(e)));
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one command; resolves with its `return` value, rejects with its `error`'s description. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ command, resolve, reject });
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  /**
   * Resolves at the next event named `event` (asked for before the command that causes it, so it cannot be
   * missed); rejects if the connection ends first or after `timeoutMs`.
   */
  nextEvent(event: string, timeoutMs = 10_000): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const w = {
        event,
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e: Error) => (clearTimeout(timer), reject(e)),
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(w), 1);
        reject(new QmpError(`QMP: no ${event} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push(w);
    });
  }

  close(why: Error = new QmpError("QMP: closed"), refuse?: (e: Error) => void): void {
    if (!this.failure) this.failure = why;
    refuse?.(this.failure);
    for (const p of this.pending.splice(0)) p.reject(this.failure);
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
    this.socket.destroy();
  }

  private onLine(line: string, greet: () => void, refuse: (e: Error) => void): void {
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return this.close(new QmpError(`QMP: not JSON: ${line.slice(0, 80)}`), refuse);
    }
    if (typeof msg !== "object" || msg === null) return this.close(new QmpError("QMP: not an object"), refuse);
    const m = msg as Record<string, unknown>;
    if (!this.greeted) {
      if (!("QMP" in m)) return this.close(new QmpError("QMP: no greeting"), refuse);
      this.greeted = true;
      return greet();
    }
    if ("event" in m) {
      for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.event === m.event) this.waiting.splice(i, 1)[0]!.resolve();
      return;
    }
    const p = this.pending.shift();
    if (!p) return this.close(new QmpError("QMP: a reply to no command"), refuse);
    if ("return" in m) return p.resolve(m.return);
    const err = m.error as { class?: unknown; desc?: unknown } | undefined;
    p.reject(new QmpError(`QMP ${p.command}: ${typeof err?.desc === "string" ? err.desc : "error"}${typeof err?.class === "string" ? ` (${err.class})` : ""}`));
  }
}
