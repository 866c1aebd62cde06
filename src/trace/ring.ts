/**
 * The trace: one event per call, in a bounded ring of typed arrays (structure of arrays), so recording
 * an event allocates nothing. Strings (VM names, rule labels, origins) are interned once, when a VM is
 * added or a rule compiled, and events hold their numbers. Nothing a guest sends becomes a label: text
 * that varies per call (a refusal names the address it refused) is an event's detail (annotate), kept in a
 * small ring of its own for as long as the event is recent, so that no sequence of calls grows the trace.
 */
export const ACTION_CODES = ["emulate", "forward", "deny", "mediate", "delegate", "convention"] as const;
export type ActionName = (typeof ACTION_CODES)[number];

export const OUTCOME_NAMES = ["return", "undef", "skip", "halt", "bad-trap", "error"] as const;

export const FLAG_SMC = 1;
export const FLAG_AARCH32 = 2;
export const FLAG_HYPERVISOR = 4;

/**
 * Which part of the guest's software made a call, where the machine can tell (a firmware guest: UEFI, then
 * the kernel it boots): 0 unknown (the event has no `stage`), then these, by index.
 */
export const STAGE_NAMES = ["", "firmware", "kernel"] as const;
export type StageName = "firmware" | "kernel";
export const STAGE_FIRMWARE = 1;
export const STAGE_KERNEL = 2;

/**
 * VM index used for calls the hypervisor itself makes (R9). Events tell the hypervisor's calls from a
 * VM's by this index (their conduit reads "hypervisor"), never by name: config validation refuses a VM
 * named "hypervisor", but a VM built past validation could still carry it, and `vm` of the hypervisor's
 * events only says "hypervisor" for people.
 */
export const HYPERVISOR_VM = 0xffff;

/** Labels a ring interns by default: far more than any config compiles to, and a bound on what it keeps. */
export const DEFAULT_MAX_LABELS = 1 << 18;
/** The label every string gets once the table is full (it is counted; nothing more is kept). */
export const OVERFLOW_LABEL_TEXT = "(labels beyond the trace's limit)";
/** Details (annotate) kept: those of the most recent annotated events. A power of two. */
const DETAILS = 1024;
/** A detail's length at most, in UTF-16 code units; longer ones are cut. */
const DETAIL_MAX = 240;

/** Events per epoch of the ring's position: a power of two at least as large as any capacity (2^26). */
const EPOCH = 1 << 30;

export interface TraceEvent {
  readonly seq: number;
  readonly vm: string;
  readonly vcpu: number;
  readonly conduit: "smc" | "hvc" | "hypervisor";
  readonly aarch32: boolean;
  readonly fid: number;
  readonly action: ActionName;
  /** The rule behind the decision, as `explain` names it, with the event's detail after a colon if it has one. */
  readonly rule: string;
  /** What varies per call (a refusal's address and reason), while the trace still keeps it; else null. */
  readonly detail: string | null;
  /** For hypervisor-originated calls: why the hypervisor made it. */
  readonly origin: string | null;
  readonly outcome: (typeof OUTCOME_NAMES)[number];
  /** x0 after the call, as the caller sees it. */
  readonly x0: bigint;
  /** Start time and duration in ns, from the clock port (0 with no clock). */
  readonly start: number;
  readonly duration: number;
  /** Which stage of a firmware guest's boot made the call (STAGE_NAMES); absent when not known. */
  readonly stage?: StageName;
}

export class TraceRing {
  /** Events kept: a power of two, so the position wraps with a mask. */
  readonly capacity: number;
  /** Whether events carry times (the router has a clock); fixed at construction. */
  readonly timed: boolean;
  private readonly mask: number;
  // Events recorded in the current epoch of EPOCH events, and epochs completed, instead of one counter: the
  // position stays a small integer (V8 keeps it unboxed) however long the run. The slot is pos & mask.
  private pos = 0;
  private epochs = 0;
  /**
   * Events, eight words each (one cache line per two events):
   * [0] vm (bits 15:0) | vcpu (bits 23:16), [1] flags (7:0) | action (15:8) | outcome (23:16), [2] FID,
   * [3] label (for the hypervisor's own calls: their origin), [4] x0 low, [5] x0 high, [6] stage
   * (STAGE_NAMES), [7] unused (keeps events aligned to 32 bytes).
   */
  private readonly ev: Uint32Array;
  private readonly start: Float64Array;
  private readonly dur: Float64Array;
  private readonly strings: string[] = ["", OVERFLOW_LABEL_TEXT];
  private readonly stringIds = new Map<string, number>([["", 0], [OVERFLOW_LABEL_TEXT, 1]]);
  /** Labels interned at most (the overflow label included). */
  readonly maxLabels: number;
  private readonly vmNames: string[] = [];
  private readonly vmIndex = new Map<string, number>();
  /** Details of recent events: the event's sequence number (-1: none) and the text, at seq & (DETAILS - 1). */
  private readonly detailSeq = new Float64Array(DETAILS).fill(-1);
  private readonly detailText: string[] = new Array<string>(DETAILS).fill("");
  /** Calls per interned (VM, label) key since the start, never dropped: the run summary reads these. */
  private counts = new Float64Array(64);
  /** Whoever appends uncounted events (putUncounted) adds their counts here when counters are read. */
  private readonly countSources: ((into: Float64Array) => void)[] = [];

  /**
   * The stage the next events are recorded with (STAGE_NAMES): set by the machine around a trap it can
   * attribute, 0 otherwise. A call the router answers later (a delegate's) is recorded with the stage of
   * whatever trap is then being handled, so the machine sets it only for the synchronous part of a trap.
   */
  stage = 0;

  constructor(capacity = 1 << 14, timed = false, maxLabels = DEFAULT_MAX_LABELS) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 26) throw new RangeError("trace capacity must be an integer from 1 to 2^26");
    if (!Number.isInteger(maxLabels) || maxLabels < 2 || maxLabels > 1 << 24) throw new RangeError("the trace's label limit must be an integer from 2 to 2^24");
    this.maxLabels = maxLabels;
    this.capacity = 1 << Math.ceil(Math.log2(capacity));
    this.mask = this.capacity - 1;
    this.timed = timed;
    this.ev = new Uint32Array(this.capacity * 8);
    this.start = new Float64Array(timed ? this.capacity : 0);
    this.dur = new Float64Array(timed ? this.capacity : 0);
  }

  /**
   * Interns a string; call when configuring, not per call, and never with text a guest chooses (that is
   * a detail: annotate). The table is bounded all the same: once it holds maxLabels strings, every new one
   * gets the overflow label, whose count says how many calls lost their label.
   */
  intern(s: string): number {
    let id = this.stringIds.get(s);
    if (id === undefined) {
      if (this.strings.length >= this.maxLabels) return 1;
      id = this.strings.length;
      this.strings.push(s);
      this.stringIds.set(s, id);
      if (id >= this.counts.length) {
        const grown = new Float64Array(this.counts.length * 2);
        grown.set(this.counts);
        this.counts = grown;
      }
    }
    return id;
  }

  /** Names a VM for the trace and returns its index (below HYPERVISOR_VM: an event's VM field is 16 bits). */
  registerVm(name: string): number {
    const existing = this.vmIndex.get(name);
    if (existing !== undefined) return existing;
    if (this.vmNames.length >= HYPERVISOR_VM) throw new RangeError(`the trace names at most ${HYPERVISOR_VM} VMs`);
    this.vmNames.push(name);
    this.vmIndex.set(name, this.vmNames.length - 1);
    return this.vmNames.length - 1;
  }

  /**
   * Attaches a detail to the event just recorded: text that varies from call to call (the address a
   * refusal names), which must not become a label. The ring keeps the details of the last DETAILS
   * annotated events, each cut to DETAIL_MAX characters; an older event reads without its detail.
   */
  annotate(detail: string): void {
    const seq = this.total - 1;
    if (seq < 0) return;
    const slot = seq & (DETAILS - 1);
    this.detailSeq[slot] = seq;
    // Joined anew rather than sliced: V8 keeps a sliced string's parent alive.
    this.detailText[slot] = detail.length > DETAIL_MAX ? [...detail.slice(0, DETAIL_MAX - 1), "…"].join("") : detail;
  }

  /** Strings interned so far (the overflow label and the empty string included). */
  get labelCount(): number {
    return this.strings.length;
  }

  /** Total events ever recorded, including those the ring has dropped. */
  get total(): number {
    return this.epochs * EPOCH + this.pos;
  }

  get dropped(): number {
    return Math.max(0, this.total - this.capacity);
  }

  record(
    vm: number,
    vcpu: number,
    flags: number,
    fid: number,
    action: number,
    label: number,
    outcome: number,
    x0lo: number,
    x0hi: number,
    start: number,
    duration: number,
  ): void {
    const b = this.putUncounted(vm | (vcpu << 16), flags | (action << 8) | (outcome << 16), fid, label, x0lo, x0hi);
    this.counts[label]!++;
    const i = b >>> 3;
    if (this.timed) {
      this.start[i] = start;
      this.dur[i] = duration;
    }
  }

  /**
   * An untimed event from words already packed as record() packs them (`who` = vm | vcpu << 16, `how` =
   * flags | action << 8 | outcome << 16): the router's hot paths, small enough for the JIT to inline.
   */
  put(who: number, how: number, fid: number, label: number, x0lo: number, x0hi: number): void {
    this.putUncounted(who, how, fid, label, x0lo, x0hi);
    this.counts[label]!++;
  }

  /**
   * put() without the count, for a caller that counts its own events (the router's answer cache counts
   * hits per entry, on a cache line it reads anyway) and reports them through addCountSource and
   * addCounts. Returns the event's first word (its slot × 8).
   */
  putUncounted(who: number, how: number, fid: number, label: number, x0lo: number, x0hi: number): number {
    const b = this.claim();
    const ev = this.ev;
    ev[b + 5] = x0hi;
    ev[b] = who;
    ev[b + 1] = how;
    ev[b + 2] = fid;
    ev[b + 3] = label;
    ev[b + 4] = x0lo;
    ev[b + 6] = this.stage;
    return b;
  }

  /** Adds `n` calls to a label's count (a counting caller's events, when it stops keeping them itself). */
  addCounts(label: number, n: number): void {
    this.counts[label]! += n;
  }

  /** A source of counts for events put without counting, asked each time the counters are read. */
  addCountSource(source: (into: Float64Array) => void): void {
    this.countSources.push(source);
  }

  /**
   * The slot for the next event: the index of its first word. Nothing but the position moves here: a
   * branch with real work in it (an earlier version tallied the labels of a whole lap when the ring
   * wrapped) made V8 spill registers around it on every call, about a quarter of the router's fast path.
   */
  private claim(): number {
    let i = this.pos;
    if (i === EPOCH) {
      this.epochs++;
      i = 0;
    }
    this.pos = i + 1;
    // The constant mask changes nothing (the capacity is at most 2^26) but tells V8 that b + 7 cannot
    // overflow, which drops an overflow check from every store of the event.
    return (i & this.mask & 0x07ff_ffff) << 3;
  }


  /** The events still in the ring, oldest first. */
  events(): TraceEvent[] {
    const out: TraceEvent[] = [];
    const total = this.total;
    for (let n = Math.max(0, total - this.capacity); n < total; n++) out.push(this.eventAt(n));
    return out;
  }

  /**
   * At most `max` events from sequence number `from` on (those the ring still holds), oldest first: a
   * reader that polls (the dashboard, src/ui/live.ts) reads only what is new since its last read.
   */
  eventsSince(from: number, max: number): TraceEvent[] {
    const out: TraceEvent[] = [];
    const total = this.total;
    const end = Math.min(total, Math.max(from, total - this.capacity) + max);
    for (let n = Math.max(from, total - this.capacity, 0); n < end; n++) out.push(this.eventAt(n));
    return out;
  }

  /** The most recent event, or null when none was recorded. */
  latest(): TraceEvent | null {
    return this.total === 0 ? null : this.eventAt(this.total - 1);
  }

  /** Every (VM, rule label) key with its call count since the start, for summaries. */
  counters(): { key: string; calls: number }[] {
    const out: { key: string; calls: number }[] = [];
    const all = Float64Array.from(this.counts);
    for (const source of this.countSources) source(all);
    for (let id = 1; id < this.strings.length; id++) if (all[id]! > 0) out.push({ key: this.strings[id]!, calls: all[id]! });
    return out;
  }

  vmName(index: number): string {
    return index === HYPERVISOR_VM ? "hypervisor" : (this.vmNames[index] ?? `vm${index}`);
  }

  /** The event with sequence number `seq` (it must still be in the ring). */
  private eventAt(seq: number): TraceEvent {
    const i = seq & this.mask;
    const b = i << 3;
    const ev = this.ev;
    const who = ev[b]!, what = ev[b + 1]!;
    const f = what & 0xff;
    const labelText = this.strings[ev[b + 3]!]!;
    const detailSlot = seq & (DETAILS - 1);
    const detail = this.detailSeq[detailSlot] === seq ? this.detailText[detailSlot]! : null;
    const rule = f & FLAG_HYPERVISOR ? "hypervisor-call" : labelText.slice(labelText.indexOf("|") + 1);
    return {
      seq,
      vm: this.vmName(who & 0xffff),
      vcpu: who >>> 16,
      conduit: f & FLAG_HYPERVISOR ? "hypervisor" : f & FLAG_SMC ? "smc" : "hvc",
      aarch32: (f & FLAG_AARCH32) !== 0,
      fid: ev[b + 2]!,
      action: ACTION_CODES[(what >>> 8) & 0xff]!,
      // Labels are interned as "<vm>|<rule>" so counters are per VM; events show the rule part. The
      // hypervisor's own calls carry their origin in the label slot.
      rule: detail === null ? rule : `${rule}: ${detail}`,
      detail,
      origin: f & FLAG_HYPERVISOR ? labelText : null,
      outcome: OUTCOME_NAMES[(what >>> 16) & 0xff]!,
      x0: (BigInt(ev[b + 5]!) << 32n) | BigInt(ev[b + 4]!),
      start: this.timed ? this.start[i]! : 0,
      duration: this.timed ? this.dur[i]! : 0,
      ...(ev[b + 6] ? { stage: STAGE_NAMES[ev[b + 6]!] as StageName } : {}),
    };
  }
}
