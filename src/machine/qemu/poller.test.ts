import { describe, expect, it } from "vitest";
import { BUSY_SPIN_TICKS, Poller, type Pollable } from "./poller.js";

/** A VM whose shims post `requests` one by one, each when the previous one has been handled. */
class FakeVm implements Pollable {
  handled = 0;
  polling: boolean[] = [];
  constructor(private requests: number, private readonly onHandle?: () => void) {}
  poll(): boolean {
    if (this.requests === 0) return false;
    this.requests--;
    this.handled++;
    this.onHandle?.();
    return true;
  }
  setPolling(on: boolean): void {
    this.polling.push(on);
  }
  advice: number[] = [];
  setSpinAdvice(ticks: number): void {
    this.advice.push(ticks);
  }
}

describe("the mailbox poller", () => {
  it("serves every VM's requests in one pass, with the polling flag up while it polls and down when it stops", () => {
    const p = new Poller({ spinNs: 1000, cores: 4 });
    const a = new FakeVm(5), b = new FakeVm(3);
    p.add(a);
    p.add(b);
    p.kick();
    expect([a.handled, b.handled]).toEqual([5, 3]);
    expect(a.polling[0]).toBe(true);
    expect(a.polling[a.polling.length - 1]).toBe(false);
    expect(p.passes).toBe(1);
  });

  it("after lowering the flag looks once more, and serves a request posted meanwhile (the shim did not ring for it)", () => {
    const p = new Poller({ spinNs: 0 });
    let late = 0;
    const vm: Pollable & { handled: number } = {
      handled: 0,
      poll() {
        if (late === 1) {
          late = 2;
          this.handled++;
          return true;
        }
        return false;
      },
      setPolling(on) {
        if (!on && late === 0) late = 1; // a request arrives just as the flag goes down
      },
      setSpinAdvice() {},
    };
    p.add(vm);
    p.kick();
    expect(vm.handled).toBe(1);
  });

  it("ignores a kick from inside a handler, and yields to the event loop after a slice so timers still run", async () => {
    const p = new Poller({ spinNs: 1e9, sliceMs: 5 });
    let timerRan = false;
    setTimeout(() => (timerRan = true), 0);
    const vm = new FakeVm(Number.MAX_SAFE_INTEGER, () => p.kick());
    p.add(vm);
    p.kick();
    const afterFirstSlice = vm.handled;
    expect(afterFirstSlice).toBeGreaterThan(0);
    expect(timerRan).toBe(false);
    await new Promise((r) => setTimeout(r, 20));
    expect(timerRan).toBe(true);
    expect(vm.handled).toBeGreaterThan(afterFirstSlice);
    p.remove(vm);
    expect(vm.polling[vm.polling.length - 1]).toBe(false);
  });

  it("polls, and lets the shims poll long, only while the vCPUs that are working leave a host core free", () => {
    // A slice far longer than the 1 ms poll: on a loaded host the poll may overrun the default slice, and a
    // pass that yields to the event loop ignores the next kick until it resumes.
    // The clock stands still: which vCPUs count as working is then the test's to say, whatever the host's load.
    const p = new Poller({ spinNs: 1_000_000, cores: 2, sliceMs: 10_000, clock: () => 1000 });
    const a = new FakeVm(3), b = new FakeVm(3);
    p.add(a);
    p.add(b);
    // One vCPU calling: it and the hypervisor fit two cores; both poll.
    p.requested(a, 0);
    p.kick();
    expect(a.polling[0]).toBe(true);
    expect(a.advice.at(-1)).toBe(0);
    // Two vCPUs calling (of two VMs here, the same for one VM): the hypervisor does not poll and the shims poll briefly.
    p.requested(a, 0);
    p.requested(b, 1);
    const before = a.polling.length;
    p.kick();
    expect(a.polling[before]).toBe(false);
    expect([a.advice.at(-1), b.advice.at(-1)]).toEqual([BUSY_SPIN_TICKS, BUSY_SPIN_TICKS]);
  });
});
