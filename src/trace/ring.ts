/**
 * The trace: one event per call, in a bounded ring of typed arrays (structure of arrays), so recording
 * an event allocates nothing. Strings (VM names, rule labels, origins) are interned once, when a VM is
 * added or a rule compiled, and events hold their numbers.
 */
export const ACTION_CODES = ["emulate", "forward", "deny", "mediate", "delegate", "convention"] as const;
export type ActionName = (typeof ACTION_CODES)[number];

export const OUTCOME_NAMES = ["return", "undef", "skip", "halt", "bad-trap", "error"] as const;

export const FLAG_SMC = 1;
export const FLAG_AARCH32 = 2;
export const FLAG_HYPERVISOR = 4;

/** VM index used for calls the hypervisor itself makes (R9). */
export const HYPERVISOR_VM = 0xffff;

export interface TraceEvent {
  readonly seq: number;
  readonly vm: string;
  readonly vcpu: number;
  readonly conduit: "smc" | "hvc" | "hypervisor";
  readonly aarch32: boolean;
  readonly fid: number;
  readonly action: ActionName;
  /** The rule behind the decision, as `explain` names it. */
  readonly rule: string;
  /** For hypervisor-originated calls: why the hypervisor made it. */
  readonly origin: string | null;
  readonly outcome: (typeof OUTCOME_NAMES)[number];
  /** x0 after the call, as the caller sees it. */
  readonly x0: bigint;
  /** Start time and duration in ns, from the clock port (0 with no clock). */
  readonly start: number;
  readonly duration: number;
}

export class TraceRing {
  readonly capacity: number;
  #next = 0;
  private readonly seq: Float64Array;
  private readonly start: Float64Array;
  private readonly dur: Float64Array;
  private readonly vm: Uint16Array;
  private readonly vcpu: Uint16Array;
  private readonly flags: Uint8Array;
  private readonly fid: Uint32Array;
  private readonly label: Uint32Array;
  private readonly origin: Uint32Array;
  private readonly action: Uint8Array;
  private readonly outcome: Uint8Array;
  private readonly x0lo: Uint32Array;
  private readonly x0hi: Uint32Array;
  private readonly strings: string[] = [""];
  private readonly stringIds = new Map<string, number>([["", 0]]);
  private readonly vmNames: string[] = [];
  /** Calls per interned (VM, label) key, never dropped: the run summary reads these. */
  private counts = new Float64Array(64);

  constructor(capacity = 1 << 16) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("trace capacity must be a positive integer");
    this.capacity = capacity;
    this.seq = new Float64Array(capacity);
    this.start = new Float64Array(capacity);
    this.dur = new Float64Array(capacity);
    this.vm = new Uint16Array(capacity);
    this.vcpu = new Uint16Array(capacity);
    this.flags = new Uint8Array(capacity);
    this.fid = new Uint32Array(capacity);
    this.label = new Uint32Array(capacity);
    this.origin = new Uint32Array(capacity);
    this.action = new Uint8Array(capacity);
    this.outcome = new Uint8Array(capacity);
    this.x0lo = new Uint32Array(capacity);
    this.x0hi = new Uint32Array(capacity);
  }

  /** Interns a string; call when configuring, not per call. */
  intern(s: string): number {
    let id = this.stringIds.get(s);
    if (id === undefined) {
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

  /** Names a VM for the trace and returns its index. */
  registerVm(name: string): number {
    const existing = this.vmNames.indexOf(name);
    if (existing >= 0) return existing;
    this.vmNames.push(name);
    return this.vmNames.length - 1;
  }

  /** Total events ever recorded, including those the ring has dropped. */
  get total(): number {
    return this.#next;
  }

  get dropped(): number {
    return Math.max(0, this.#next - this.capacity);
  }

  record(
    vm: number,
    vcpu: number,
    flags: number,
    fid: number,
    action: number,
    label: number,
    origin: number,
    outcome: number,
    x0lo: number,
    x0hi: number,
    start: number,
    duration: number,
  ): void {
    const n = this.#next++;
    const i = n % this.capacity;
    this.seq[i] = n;
    this.vm[i] = vm;
    this.vcpu[i] = vcpu;
    this.flags[i] = flags;
    this.fid[i] = fid;
    this.action[i] = action;
    this.label[i] = label;
    this.origin[i] = origin;
    this.outcome[i] = outcome;
    this.x0lo[i] = x0lo;
    this.x0hi[i] = x0hi;
    this.start[i] = start;
    this.dur[i] = duration;
    this.counts[label]!++;
  }

  /** The events still in the ring, oldest first. */
  events(): TraceEvent[] {
    const out: TraceEvent[] = [];
    const first = Math.max(0, this.#next - this.capacity);
    for (let n = first; n < this.#next; n++) out.push(this.eventAt(n % this.capacity));
    return out;
  }

  /** The most recent event, or null when none was recorded. */
  latest(): TraceEvent | null {
    return this.#next === 0 ? null : this.eventAt((this.#next - 1) % this.capacity);
  }

  /** Every (VM, rule label) key with its call count since the start, for summaries. */
  counters(): { key: string; calls: number }[] {
    const out: { key: string; calls: number }[] = [];
    for (let id = 1; id < this.strings.length; id++) if (this.counts[id]! > 0) out.push({ key: this.strings[id]!, calls: this.counts[id]! });
    return out;
  }

  vmName(index: number): string {
    return index === HYPERVISOR_VM ? "hypervisor" : (this.vmNames[index] ?? `vm${index}`);
  }

  private eventAt(i: number): TraceEvent {
    const f = this.flags[i]!;
    const labelText = this.strings[this.label[i]!]!;
    return {
      seq: this.seq[i]!,
      vm: this.vmName(this.vm[i]!),
      vcpu: this.vcpu[i]!,
      conduit: f & FLAG_HYPERVISOR ? "hypervisor" : f & FLAG_SMC ? "smc" : "hvc",
      aarch32: (f & FLAG_AARCH32) !== 0,
      fid: this.fid[i]!,
      action: ACTION_CODES[this.action[i]!]!,
      // Labels are interned as "<vm>|<rule>" so counters are per VM; events show the rule part.
      rule: labelText.slice(labelText.indexOf("|") + 1),
      origin: this.origin[i] ? this.strings[this.origin[i]!]! : null,
      outcome: OUTCOME_NAMES[this.outcome[i]!]!,
      x0: (BigInt(this.x0hi[i]!) << 32n) | BigInt(this.x0lo[i]!),
      start: this.start[i]!,
      duration: this.dur[i]!,
    };
  }
}
