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
export interface Pollable {
  /** Handles the new requests in its mailboxes; true if there were any. */
  poll(): boolean;
  /** Tells the VM's shims whether the hypervisor is polling (they need not ring while it is). */
  setPolling(on: boolean): void;
}

export interface PollerOptions {
  /** How long a pass keeps polling after the last request, in ns (0: scan once). */
  readonly spinNs?: number;
  /** The longest a pass holds the event loop, in ms. */
  readonly sliceMs?: number;
}

export const DEFAULT_POLL_SPIN_NS = 50_000;

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

  constructor(opts: PollerOptions = {}) {
    this.spinNs = opts.spinNs ?? DEFAULT_POLL_SPIN_NS;
    this.sliceNs = (opts.sliceMs ?? 2) * 1e6;
  }

  add(m: Pollable): void {
    this.members.add(m);
    this.list = [...this.members];
  }

  remove(m: Pollable): void {
    this.members.delete(m);
    this.list = [...this.members];
    m.setPolling(false);
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
    this.setAll(true);
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
      if (Number(now - last) < this.spinNs) continue;
      this.setAll(false);
      if (!this.scan()) return;
      this.setAll(true);
      last = process.hrtime.bigint();
    }
  }
}
