/**
 * What the dashboard and the control API show of a running hypervisor, gathered by polling: the trace
 * ring is read a few times a second from where the last read stopped (TraceRing.eventsSince), so the
 * router's hot path does nothing more for a dashboard than without one. Everything kept here is bounded
 * whatever the guests do: a hostile guest's call volume or choice of function IDs can fill the tables up
 * to their limits (then counted as "other"), never grow them.
 */
import type { Hypervisor } from "../hypervisor/hypervisor.js";
import { explain, type Explanation } from "../policy/explain.js";
import { PsciService, VCPU_OFF, VCPU_ON } from "../services/psci/psci.js";
import { hex32 } from "../smccc/fid.js";
import { fidName } from "../smccc/names.js";
import { ownerName } from "../smccc/owners.js";
import type { TraceEvent } from "../trace/ring.js";

/** Limits of what the view keeps (each a bound on memory, whatever the guests do). */
export const LIVE_LIMITS = {
  /** Events read from the ring per poll at most; the rest of a burst is skipped and counted. */
  eventsPerPoll: 4096,
  /** Recent events kept (the trace tail and what `explain` by sequence number can reach). */
  recent: 2000,
  /** Latest denials kept. */
  denials: 200,
  /** Distinct (VM, owner, function, outcome) keys counted; later ones go to one "other" key per VM. */
  callKeys: 4096,
  /** Rate samples kept per VM (one per poll). */
  samples: 600,
  /** Policy changes kept. */
  policyChanges: 100,
} as const;

export interface CallCount {
  readonly vm: string;
  readonly owner: string;
  readonly function: string;
  readonly outcome: string;
  calls: number;
}

export interface WireEvent {
  readonly type: "call";
  readonly seq: number;
  readonly vm: string;
  readonly vcpu: number;
  readonly conduit: string;
  readonly fid: string;
  readonly function: string;
  readonly owner: string;
  readonly action: string;
  readonly rule: string;
  readonly outcome: string;
  readonly x0: string;
  readonly origin: string | null;
}

export interface PolicyChange {
  readonly type: "policy-change";
  readonly at: string;
  readonly vms: readonly string[];
  readonly diff: string;
  readonly source: string;
}

export type StreamItem = WireEvent | PolicyChange;

/** What the view needs from a machine: the hypervisor, and per VM what only the backend knows. */
export interface LiveTarget {
  readonly hypervisor: Hypervisor;
  /** VM names in config order (ended ones too). */
  vmNames(): readonly string[];
  /** How the VM runs: "running", "off", "stopped", "failed", "destroyed"… and the backend's details. */
  vmState(name: string): { readonly state: string; readonly reason?: string; readonly boots?: number };
}

const ownerOf = (fid: number) => ownerName((fid >>> 24) & 0x3f, (fid & 0x8000_0000) !== 0);
const nameOf = (fid: number) => fidName(fid) ?? hex32(fid);

export function toWire(e: TraceEvent): WireEvent {
  return {
    type: "call",
    seq: e.seq,
    vm: e.vm,
    vcpu: e.vcpu,
    conduit: e.conduit,
    fid: hex32(e.fid),
    function: nameOf(e.fid),
    owner: ownerOf(e.fid),
    action: e.action,
    rule: e.rule,
    outcome: e.outcome,
    x0: "0x" + e.x0.toString(16),
    origin: e.origin,
  };
}

/** A fixed-size ring of the latest items. */
class Latest<T> {
  private readonly items: T[] = [];
  private head = 0;
  constructor(private readonly size: number) {}
  push(x: T): void {
    if (this.items.length < this.size) this.items.push(x);
    else {
      this.items[this.head] = x;
      this.head = (this.head + 1) % this.size;
    }
  }
  /** Oldest first. */
  all(): T[] {
    return [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
  }
}

interface VmTally {
  calls: number;
  denied: number;
  errors: number;
  /** Calls at the previous poll, for the rate. */
  lastCalls: number;
  readonly samples: Latest<[number, number]>;
}

export class LiveView {
  private next = 0;
  /** Events the ring dropped before they were read, and those skipped when a poll had too many. */
  missed = 0;
  /** Recent calls and policy changes, in the order they happened between the calls. */
  private readonly recent = new Latest<StreamItem>(LIVE_LIMITS.recent);
  private readonly denials = new Latest<WireEvent>(LIVE_LIMITS.denials);
  private readonly changes = new Latest<PolicyChange>(LIVE_LIMITS.policyChanges);
  private readonly callKeys = new Map<string, CallCount>();
  private readonly tallies = new Map<string, VmTally>();
  private readonly listeners = new Set<(items: readonly StreamItem[]) => void>();
  private lastPoll = 0;

  constructor(
    readonly target: LiveTarget,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.next = target.hypervisor.router.trace.total;
    this.lastPoll = now();
  }

  /** Subscribes to every new item (each poll's batch); returns the unsubscriber. */
  subscribe(f: (items: readonly StreamItem[]) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private tally(vm: string): VmTally {
    let t = this.tallies.get(vm);
    if (!t) {
      t = { calls: 0, denied: 0, errors: 0, lastCalls: 0, samples: new Latest(LIVE_LIMITS.samples) };
      this.tallies.set(vm, t);
    }
    return t;
  }

  /** Reads what the ring recorded since the last poll; returns how many events were read. */
  poll(): number {
    const trace = this.target.hypervisor.router.trace;
    const total = trace.total;
    const oldest = Math.max(0, total - trace.capacity);
    if (this.next < oldest) {
      this.missed += oldest - this.next;
      this.next = oldest;
    }
    if (total - this.next > LIVE_LIMITS.eventsPerPoll) {
      // Keep up with the latest: the older part of a burst is skipped (counted), not queued.
      this.missed += total - this.next - LIVE_LIMITS.eventsPerPoll;
      this.next = total - LIVE_LIMITS.eventsPerPoll;
    }
    const events = trace.eventsSince(this.next, LIVE_LIMITS.eventsPerPoll);
    this.next += events.length;
    const batch: StreamItem[] = [];
    for (const e of events) {
      const w = toWire(e);
      batch.push(w);
      this.recent.push(w);
      if (e.conduit === "hypervisor") continue;
      const t = this.tally(e.vm);
      t.calls++;
      if (e.action === "deny") {
        t.denied++;
        this.denials.push(w);
      }
      if (e.outcome === "error") t.errors++;
      let key = `${e.vm}|${w.owner}|${w.function}|${e.outcome}`;
      let c = this.callKeys.get(key);
      if (!c && this.callKeys.size >= LIVE_LIMITS.callKeys) {
        key = `${e.vm}|other`;
        c = this.callKeys.get(key);
        if (!c) {
          c = { vm: e.vm, owner: "(other)", function: "(other)", outcome: "(any)", calls: 0 };
          this.callKeys.set(key, c);
        }
      }
      if (!c) {
        c = { vm: e.vm, owner: w.owner, function: w.function, outcome: e.outcome, calls: 0 };
        this.callKeys.set(key, c);
      }
      c.calls++;
    }
    const now = this.now();
    const dt = Math.max(1, now - this.lastPoll) / 1000;
    this.lastPoll = now;
    for (const name of this.target.vmNames()) {
      const t = this.tally(name);
      t.samples.push([now / 1000, (t.calls - t.lastCalls) / dt]);
      t.lastCalls = t.calls;
    }
    if (batch.length > 0) this.emit(batch);
    return events.length;
  }

  private emit(items: readonly StreamItem[]): void {
    for (const f of this.listeners) f(items);
  }

  /** A policy change, for the stream and the list of changes. */
  policyChanged(change: Omit<PolicyChange, "type" | "at">): PolicyChange {
    // The calls made before the change are read first, so that the change sits after them.
    this.poll();
    const c: PolicyChange = { type: "policy-change", at: new Date(this.now()).toISOString(), ...change };
    this.changes.push(c);
    this.recent.push(c);
    this.emit([c]);
    return c;
  }

  policyChanges(): PolicyChange[] {
    return this.changes.all();
  }

  /** Every VM with its state, vCPUs, counters and what its TEE holds. */
  vms(): object[] {
    const h = this.target.hypervisor;
    return this.target.vmNames().map((name) => {
      const t = this.tally(name);
      const d = h.router.getVm(name);
      const psci = d?.services.get("psci");
      const vcpus = psci instanceof PsciService ? [...psci.state].map((s) => (s === VCPU_ON ? "on" : s === VCPU_OFF ? "off" : "suspended")) : null;
      const tee = d?.config.tee ? { mediator: d.config.tee.mediator, ...(h.mediators.get(d.config.tee.mediator)?.counters(name) ?? {}) } : null;
      const st = this.target.vmState(name);
      return {
        name,
        ...st,
        vcpus,
        conduit: d?.config.conduit ?? null,
        counters: { calls: t.calls, denied: t.denied, errors: t.errors },
        // Calls waiting for an asynchronous handler (a vCPU each), and those the TEE holds.
        inFlight: { vcpus: d?.waiting ?? 0, tee: tee && "inFlight" in tee ? tee.inFlight : 0 },
        tee,
      };
    });
  }

  calls(vm?: string): CallCount[] {
    const out = [...this.callKeys.values()].filter((c) => vm === undefined || c.vm === vm);
    return out.sort((a, b) => b.calls - a.calls);
  }

  denialsList(vm?: string): WireEvent[] {
    return this.denials.all().filter((e) => vm === undefined || e.vm === vm);
  }

  /** The latest calls and policy changes that pass the filter, oldest first. */
  recentEvents(filter: { vm?: string; fn?: string }, limit: number): StreamItem[] {
    const all = this.recent.all().filter((e) => matches(e, filter));
    return all.slice(Math.max(0, all.length - limit));
  }

  rates(): { vm: string; samples: [number, number][] }[] {
    return this.target.vmNames().map((vm) => ({ vm, samples: this.tally(vm).samples.all() }));
  }

  /** Why the current policy decides a recent call (by its trace sequence number) as it does. */
  explainSeq(seq: number): { event: WireEvent; explanation: Explanation } | { error: string } {
    const event = this.recent.all().find((e): e is WireEvent => e.type === "call" && e.seq === seq);
    if (!event) return { error: `no recent call with sequence number ${seq} (the view keeps the last ${LIVE_LIMITS.recent})` };
    if (event.conduit === "hypervisor") return { error: `call ${seq} is the hypervisor's own (${event.origin ?? ""}), not a VM's` };
    const r = this.explainCall(event.vm, Number(event.fid), []);
    return "error" in r ? r : { event, explanation: r };
  }

  explainCall(vm: string, fid: number, args: readonly bigint[]): Explanation | { error: string } {
    const d = this.target.hypervisor.router.getVm(vm);
    if (!d) return { error: `no running VM named "${vm}"` };
    return explain(d.config, this.target.hypervisor.router.claimsFor(d.config), { fid, args: [0n, ...args] });
  }
}

export function matches(e: StreamItem, filter: { vm?: string; fn?: string }): boolean {
  // A policy change passes a function filter: it is rare, and it decides every call after it.
  if (e.type !== "call") return filter.vm === undefined || e.vms.includes(filter.vm);
  if (filter.vm !== undefined && e.vm !== filter.vm) return false;
  if (filter.fn !== undefined) {
    const f = filter.fn.toLowerCase();
    if (e.function.toLowerCase() !== f && e.fid.toLowerCase() !== f && !e.function.toLowerCase().startsWith(f)) return false;
  }
  return true;
}
