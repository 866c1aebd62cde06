/**
 * A delegate handler in another process, spoken to in line-delimited JSON over a Unix socket
 * (docs/delegates.md). smcvisor listens on a socket in a private directory, starts the command with the
 * socket's path in SMCVISOR_DELEGATE_SOCKET, and matches replies to requests by id. A handler that does not
 * answer in time, answers garbage, or dies gives the guest -1; the hypervisor and every other VM go on.
 * What the handler sends is checked exactly (protocol.ts, replyRegisters) and what it gets wrong is
 * logged rate-limited: a handler cannot flood the log any more than a guest can.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import { RateLimitedLog } from "../../hypervisor/rate-limited-log.js";
import { applyReply, hex, requestOf } from "./protocol.js";
import { withTimeout } from "./timeout.js";

interface Waiting {
  resolve(reply: unknown): void;
  reject(e: Error): void;
}

export class ProcessDelegate implements CallTarget {
  private readonly dir: string;
  private readonly path: string;
  private server: Server | null = null;
  private socket: Socket | null = null;
  private child: ChildProcess | null = null;
  private connected: Promise<Socket>;
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();
  /** Why the handler can no longer answer, once it cannot. */
  dead: string | null = null;
  private buffered = "";
  private readonly log: RateLimitedLog;

  constructor(readonly name: string, private readonly command: readonly string[], private readonly timeoutMs: number, log: (line: string) => void = () => {}) {
    this.log = new RateLimitedLog(log);
    this.dir = mkdtempSync(join(tmpdir(), `smcvisor-delegate-${name}-`));
    this.path = join(this.dir, "socket");
    this.connected = new Promise((resolve, reject) => {
      this.server = createServer((sock) => {
        if (this.socket) {
          sock.destroy(); // one handler process, one connection
          return;
        }
        this.socket = sock;
        sock.setEncoding("utf8");
        sock.on("data", (chunk: string) => this.onData(chunk));
        sock.on("close", () => this.fail("the handler closed its connection"));
        sock.on("error", () => this.fail("the handler's connection failed"));
        resolve(sock);
      });
      this.server.on("error", (e) => reject(e));
      this.server.listen(this.path);
    });
    this.connected.catch(() => {});
  }

  /** Starts the handler process. */
  start(cwd: string): void {
    const [cmd, ...args] = this.command;
    const child = spawn(cmd!, args, { cwd, env: { ...process.env, SMCVISOR_DELEGATE_SOCKET: this.path }, stdio: ["ignore", "inherit", "inherit"] });
    this.child = child;
    child.on("error", (e) => this.fail(`cannot start ${cmd}: ${e.message}`));
    child.on("exit", (code, signal) => this.fail(`the handler process exited (${signal ?? `code ${code}`})`));
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): Promise<void> {
    if (this.dead !== null) return Promise.reject(new Error(`delegate "${this.name}": ${this.dead}`));
    const req = requestOf(call, origin);
    const id = this.nextId++;
    const line = JSON.stringify({ id, vm: req.vm, vmId: req.vmId, vcpu: req.vcpu, fid: hex(req.fid), smc64: req.smc64, conduit: req.conduit, args: req.args.map(hex) }) + "\n";
    const reply = new Promise<unknown>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.connected.then(
        (sock) => sock.write(line),
        (e: Error) => reject(e),
      );
    });
    return withTimeout(reply, this.timeoutMs, `delegate "${this.name}"`)
      .finally(() => this.waiting.delete(id))
      .then((r) => applyReply(r, res));
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    if (this.buffered.length > 1 << 20) return this.fail("the handler sent a line longer than 1 MiB");
    let nl: number;
    while ((nl = this.buffered.indexOf("\n")) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        this.log.log("not-json", `smcvisor: delegate "${this.name}" sent a line that is not JSON; ignored`);
        continue;
      }
      const { id, error } = (typeof msg === "object" && msg !== null ? msg : {}) as { id?: unknown; error?: unknown };
      const w = typeof id === "number" ? this.waiting.get(id) : undefined;
      if (!w) {
        // Late (its call timed out and was answered -1) or never asked: dropped either way.
        const late = typeof id === "number" && Number.isSafeInteger(id) && id > 0 && id < this.nextId;
        this.log.log(late ? "late" : "unknown", `smcvisor: delegate "${this.name}" ${late ? "answered after its deadline; the answer was dropped" : "sent a line with no id it was asked; ignored"}`);
        continue;
      }
      if (error !== undefined) w.reject(new Error(`delegate "${this.name}": ${typeof error === "string" ? short(error) : "an error that is not a string"}`));
      else w.resolve(msg);
    }
  }

  private fail(why: string, quietly = false): void {
    if (this.dead !== null) return;
    this.dead = why;
    if (!quietly) this.log.log("dead", `smcvisor: delegate "${this.name}": ${why}; its calls now get -1`);
    for (const w of this.waiting.values()) w.reject(new Error(`delegate "${this.name}": ${why}`));
    this.waiting.clear();
  }

  /** Stops the process and removes the socket. */
  close(): void {
    this.fail("closed", true);
    this.child?.kill("SIGTERM");
    this.socket?.destroy();
    this.server?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }
}

/** A handler's error text for a log line: at most 200 characters. */
function short(text: string): string {
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
