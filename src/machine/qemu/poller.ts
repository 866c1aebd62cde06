/**
 * Serves every mailbox of every QEMU VM in this process from Node's one thread (docs/qemu-channel.md,
 * "Waiting"). A doorbell, or a reply just sent, starts a polling pass: the poller scans all mailboxes,
 * handles what it finds, and keeps scanning until none has had a new request for `spinNs`. While it polls it
 * says so in each VM's host state, and the shims post requests without ringing: a hot guest's round trip
 * then costs no system call and no wake-up on either side. The pass ends by clearing the flag and scanning
 * once more (a request posted while the flag was going down was not rung for).
 *
 * A pass never holds the event loop longer than `sliceMs`: it then yields (setImmediate) and continues, the
 * flag still up, so QEMU's exits, consoles, delegates and timers are served even under a call storm.
 */
import { availableParallelism } from "node:os";

export interface Pollable {
  /** Handles the new requests in its mailboxes; true if there were any. */
  poll(): boolean;
  /** Tells the VM's shims whether the hypervisor is polling (they need not ring while it is). */
  setPolling(on: boolean): void;
  /**
   * Tells the VM's shims how long a waiting vCPU polls now, in counter ticks (0: the host page's value).
   */
  setSpinAdvice(ticks: number): void;
}

export interface PollerOptions {
  /** How long a pass keeps polling after the last request, in ns (0: scan once). */
  readonly spinNs?: number;
  /** The longest a pass holds the event loop, in ms. */
  readonly sliceMs?: number;
  /** Host cores (default: what Node sees). */
  readonly cores?: number;
  /**
   * The clock, in ms, that says which vCPUs posted a request recently (default: performance.now). Tests
   * give their own: on a loaded host the default can move past ACTIVE_MS between two statements.
   */
  readonly clock?: () => number;
}

/** A vCPU that posted a request this recently is taken to be running (and to need a core). */
const ACTIVE_MS = 2;

export const DEFAULT_POLL_SPIN_NS = 200_000;
/**
 * How long a waiting vCPU polls while the working vCPUs need every host core (counter ticks at 62.5 MHz:
 * 30 µs). Measured with four and two TEE client threads in one 2-vCPU VM on the 2-core machine
 * (docs/performance.md): shorter polls there leave the hypervisor a core, longer ones pay where a core is free.
 */
export const BUSY_SPIN_TICKS = 1875;

export class Poller {
  private readonly members = new Set<Pollable>();
  /** The members as an array, for the scan loop (no iterator or copy per scan). */
  private list: Pollable[] = [];
  private running = false;
  private resumeScheduled = false;
  readonly spinNs: number;
  private readonly sliceNs: number;
  /** Passes and scans, for the benchmarks and tests. */
  passes = 0;
  /** The spin advice last given (ticks; 0 = the host page's). */
  private advice = -1;
  /** When each vCPU (VM, index) last posted a request, in ms. */
  private readonly lastRequest = new Map<Pollable, number[]>();
  /** Host cores: polling only pays while the vCPUs that are working leave one free. */
  private readonly cores: number;
  private readonly clock: () => number;

  constructor(opts: PollerOptions = {}) {
    this.spinNs = opts.spinNs ?? DEFAULT_POLL_SPIN_NS;
    this.sliceNs = (opts.sliceMs ?? 2) * 1e6;
    this.cores = opts.cores ?? availableParallelism();
    this.clock = opts.clock ?? (() => performance.now());
  }

  add(m: Pollable): void {
    this.members.add(m);
    this.list = [...this.members];
    m.setSpinAdvice(Math.max(this.advice, 0));
  }

  remove(m: Pollable): void {
    this.members.delete(m);
    this.lastRequest.delete(m);
    this.list = [...this.members];
    m.setPolling(false);
  }

  /** vCPU `vcpu` of `vm` posted a request. */
  requested(vm: Pollable, vcpu: number): void {
    let t = this.lastRequest.get(vm);
    if (!t) this.lastRequest.set(vm, (t = []));
    t[vcpu] = this.clock();
  }

  /** vCPUs that posted a request within ACTIVE_MS: they are running and each needs a host core. */
  private active(now: number): number {
    let n = 0;
    for (const t of this.lastRequest.values()) for (const at of t) if (at !== undefined && now - at < ACTIVE_MS) n++;
    return n;
  }

  /** A doorbell rang or a reply went out: serve the mailboxes now. Re-entrant calls (from a handler) are no-ops. */
  kick(): void {
    if (this.running || this.resumeScheduled) return;
    this.running = true;
    this.passes++;
    try {
      this.pass();
    } finally {
      this.running = false;
    }
  }

  private scan(): boolean {
    // A member removed during the scan (its VM ended) is still polled once: poll() of an ended VM is a no-op.
    const list = this.list;
    let any = false;
    for (let i = 0; i < list.length; i++) if (list[i]!.poll()) any = true;
    return any;
  }

  private setAll(on: boolean): void {
    for (const m of this.members) m.setPolling(on);
  }

  private pass(): void {
    // Polling keeps a host core busy: worth it while a core is free for it (one vCPU calling in a loop),
    // not when the working vCPUs need every core (they would lose time to it, and then wait on it). The
    // same goes for the shims' own polling for their replies.
    const free = this.active(this.clock()) + 1 <= this.cores;
    const spinNs = free ? this.spinNs : 0;
    const advice = free ? 0 : BUSY_SPIN_TICKS;
    if (advice !== this.advice) {
      this.advice = advice;
      for (const m of this.list) m.setSpinAdvice(advice);
    }
    this.setAll(spinNs > 0);
    const start = process.hrtime.bigint();
    let last = start;
    for (let n = 0; ; n++) {
      const any = this.scan();
      // The clock is read only now and then: on some hosts it is a system call.
      if (!any && (n & 15) !== 15) continue;
      const now = process.hrtime.bigint();
      if (any) last = now;
      if (Number(now - start) > this.sliceNs) {
        // Keep the flag up and come back after the event loop has had its turn.
        this.resumeScheduled = true;
        setImmediate(() => {
          this.resumeScheduled = false;
          this.kick();
        });
        return;
      }
      if (Number(now - last) < spinNs) continue;
      this.setAll(false);
      if (!this.scan()) return;
      this.setAll(true);
      last = process.hrtime.bigint();
    }
  }
}
