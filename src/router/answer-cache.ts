/**
 * The answer cache: fixed answers given again without the convention checks, the policy lookup or the
 * service, with the same registers and the same trace event the full path gave the first time (the
 * router's fast path, Router.handleTrap; what may be kept, remember()).
 *
 * Every VM has a block of SLOTS direct-mapped entries, one cache line (ENTRY_WORDS words) each, in one
 * Int32Array shared by all VMs. An entry:
 *
 *   [FID]             the raw function ID (W0 as the caller wrote it)
 *   [KINDS]           the caller kinds the entry holds for, bit (flags & 3) for each conduit × execution
 *                     state that reached the answer (0: empty), | WIDE, or NOT_FIXED alone
 *   [RULE]            trace action | interned rule label << 8
 *   [HITS_LOW]        calls answered from the entry, low 32 bits ...
 *   [HITS_HIGH]       ... and high bits (64-bit counts: the trace's counters are exact)
 *   [RESULT..+7]      x0..x3 as written to the vCPU, x_n at RESULT + 2n (low) and RESULT + 2n + 1 (high)
 *
 * Words 13-15 are unused (an entry is a power of two words, so the index is a shift). Without WIDE, x1-x3
 * are 0 and a hit writes only x0. The trace reads the hits as counts for the entry's rule (countInto), and
 * they move into the trace's own counts when the entry is replaced or its block released.
 *
 * The fast path (answerFromCache) must stay small: TurboFan inlines a function of at most 460 bytes of
 * bytecode, and all it inlines into one function must stay below 920 / 1.2 bytes (its cumulative budget
 * and reserve factor); Router.handleTrap, answerFromCache, TraceRing.putUncounted and claim are inlined
 * into a backend's trap loop together (docs/performance.md). The offsets are this module's own
 * constants: V8 folds those into the code, while an imported binding is loaded (and checked for
 * initialization) on every use.
 */
import type { TraceRing } from "../trace/ring.js";
import { STEP_DENY, STEP_SERVICE, type BoundStep } from "./routed-vm.js";

/** Entry word offsets (see above). */
const FID = 0;
const KINDS = 1;
const RULE = 2;
const HITS_LOW = 3;
const RESULT = 4;
const X0_LOW = RESULT;
const X0_HIGH = RESULT + 1;
const HITS_HIGH = 12;

/** In [KINDS]: the bits of the four caller kinds (FLAG_SMC | FLAG_AARCH32 of the trace: 0-3). */
const KIND_BITS = 0xf;
/** In [KINDS]: x1-x3 are not all zero, so a hit writes them too. */
const WIDE = 0x100;
/** In [KINDS] with no caller kinds: the ID's answer is not fixed (asked once; the full path every time). */
const NOT_FIXED = 0x200;

/** Entries per VM, and words per entry (16 int32: one 64-byte cache line). */
export const SLOTS = 8;
const ENTRY_SHIFT = 4;
const ENTRY_WORDS = 1 << ENTRY_SHIFT;
/** Words of one VM's block. */
export const BLOCK_WORDS = SLOTS * ENTRY_WORDS;
/** Fibonacci hashing: the top log2(SLOTS) bits of FID × 2^32/φ spread IDs that differ in any field. */
const HASH = 0x9e37_79b1;
const HASH_SHIFT = 32 - Math.log2(SLOTS);
/** A rule word holds the label in its top 24 bits: a label beyond that (16 million strings) is never kept. */
const MAX_LABEL = 0x100_0000;

/** The first word of the entry for `rawFid` in the block at `base`. */
function entryOf(base: number, rawFid: number): number {
  return base + ((Math.imul(rawFid, HASH) >>> HASH_SHIFT) << ENTRY_SHIFT);
}

/**
 * The fast path: when the block at `base` of `words` (AnswerCache.words) holds an answer to the call in
 * `regs` for this caller kind (`flags`: FLAG_SMC | FLAG_AARCH32), writes x0..x3 into `regs`, traces the
 * event for `who` (vm index | vCPU << 16) and counts the hit in the entry. False, and nothing written,
 * otherwise. A function of the words, not a method: the router keeps the array itself, one load less.
 */
export const answerFromCache = (words: Int32Array, base: number, regs: Uint32Array, flags: number, who: number, trace: TraceRing): boolean => {
  const rawFid = regs[0]! | 0;
  // Masked so that V8 knows e + 15 cannot overflow and drops the overflow checks.
  const e = (base + ((Math.imul(rawFid, HASH) >>> HASH_SHIFT) << ENTRY_SHIFT)) & 0x3fff_ffff;
  const kinds = words[e + KINDS]!;
  if (words[e + FID] !== rawFid || ((kinds >>> flags) & 1) === 0) return false;
  // x0..x3 as the full path wrote them the first time. Written out here, not in a helper: the budget.
  const x0 = words[e + X0_LOW]!;
  const x0hi = words[e + X0_HIGH]!;
  regs[0] = x0;
  regs[1] = x0hi;
  if ((kinds & WIDE) === 0) {
    regs[2] = 0;
    regs[3] = 0;
    regs[4] = 0;
    regs[5] = 0;
    regs[6] = 0;
    regs[7] = 0;
  } else {
    regs[2] = words[e + RESULT + 2]!;
    regs[3] = words[e + RESULT + 3]!;
    regs[4] = words[e + RESULT + 4]!;
    regs[5] = words[e + RESULT + 5]!;
    regs[6] = words[e + RESULT + 6]!;
    regs[7] = words[e + RESULT + 7]!;
  }
  // The call is counted in its entry (hits, and the high word when they wrap), not by the trace.
  const hits = (words[e + HITS_LOW]! + 1) | 0;
  words[e + HITS_LOW] = hits;
  if (hits === 0) words[e + HITS_HIGH]!++;
  const rule = words[e + RULE]!;
  trace.putUncounted(who, flags | ((rule & 0xff) << 8), rawFid, rule >>> 8, x0, x0hi);
  return true;
};

export class AnswerCache {
  /** Every VM's block, BLOCK_WORDS words each (see `words`). */
  private all: Int32Array = new Int32Array(0);
  private used = 0;
  /** Blocks released by removed VMs, zeroed, for the next VM. */
  private readonly free: number[] = [];

  constructor(private readonly trace: TraceRing) {}

  /**
   * The words of every block, for answerFromCache. Replaced by a larger copy when allocate() needs room:
   * a caller that keeps it (the router, for its fast path) reads it again after each allocate().
   */
  get words(): Int32Array {
    return this.all;
  }

  /** A zeroed block for a new VM: the first word of it. */
  allocate(): number {
    const free = this.free.pop();
    if (free !== undefined) return free;
    if (this.used + BLOCK_WORDS > this.all.length) {
      const grown = new Int32Array(Math.max(BLOCK_WORDS * 8, this.all.length * 2));
      grown.set(this.all);
      this.all = grown;
    }
    this.used += BLOCK_WORDS;
    return this.used - BLOCK_WORDS;
  }

  /** The VM is gone: its hits go to the trace's counts and its block is zeroed for the next VM. */
  release(base: number): void {
    for (let e = base; e < base + BLOCK_WORDS; e += ENTRY_WORDS) this.flushHits(e);
    this.all.fill(0, base, base + BLOCK_WORDS);
    this.free.push(base);
  }

  /**
   * Keeps the answer the full path just wrote to `regs` for a call `step` decided alone (the chain has
   * this one step without constraints: policy decides by the ID alone) when it is fixed: the step denies,
   * or its service says the ID's answer is fixed (ServiceInstance.fixed). Linux makes such calls on hot
   * paths (SMCCC_ARCH_WORKAROUND_1 on context switches where the CPU needs it; the version and UID probes
   * of every driver), and KVM answers the workarounds in its EL2 vectors for the same reason.
   *
   * An entry holds for a caller kind only once that kind has reached the step: an SMC64 ID from AArch32,
   * say, still gets the convention's -1. An ID found not fixed is remembered as such (in a free slot, never
   * in place of an answer), so that its service is asked fixed() once, not on every call.
   */
  remember(base: number, rawFid: number, fid: number, flags: number, step: BoundStep, regs: Uint32Array): void {
    if (step.label >= MAX_LABEL) return;
    const words = this.all;
    const e = entryOf(base, rawFid);
    const held = words[e + FID] === rawFid ? words[e + KINDS]! : 0;
    if ((held & NOT_FIXED) !== 0) return;
    if ((held & KIND_BITS) !== 0) {
      words[e + KINDS] = held | (1 << flags);
      return;
    }
    const fixed = step.kind === STEP_DENY || (step.kind === STEP_SERVICE && step.service!.fixed?.(fid >>> 0) === true);
    if (!fixed) {
      if ((words[e + KINDS]! & KIND_BITS) === 0) {
        words[e + FID] = rawFid;
        words[e + KINDS] = NOT_FIXED;
      }
      return;
    }
    this.flushHits(e);
    let wide = 0;
    for (let i = 2; i < 8; i++) if (regs[i] !== 0) wide = WIDE;
    words[e + FID] = rawFid;
    words[e + KINDS] = (1 << flags) | wide;
    words[e + RULE] = step.action | (step.label << 8);
    for (let i = 0; i < 8; i++) words[e + RESULT + i] = regs[i]!;
  }

  /**
   * Adds the calls answered from every entry and not yet flushed to `into`, indexed by label: the trace's
   * counts for them (TraceRing.addCountSource). Free blocks are zero and add nothing.
   */
  countInto(into: Float64Array): void {
    const words = this.all;
    for (let e = 0; e < this.used; e += ENTRY_WORDS) {
      if ((words[e + KINDS]! & KIND_BITS) === 0) continue;
      into[words[e + RULE]! >>> 8]! += this.hitsAt(e);
    }
  }

  /** Calls answered from the entry at `e` since it was filled or last flushed. */
  private hitsAt(e: number): number {
    return (this.all[e + HITS_LOW]! >>> 0) + this.all[e + HITS_HIGH]! * 0x1_0000_0000;
  }

  /** Moves an entry's hits into the trace's counts, before the entry is reused or freed. */
  private flushHits(e: number): void {
    const words = this.all;
    const hits = this.hitsAt(e);
    if (hits > 0 && (words[e + KINDS]! & KIND_BITS) !== 0) this.trace.addCounts(words[e + RULE]! >>> 8, hits);
    words[e + HITS_LOW] = 0;
    words[e + HITS_HIGH] = 0;
  }

  /**
   * The entry of the block at `base` that holds `rawFid` (tests and tools): its caller kinds, whether it
   * is wide, its rule word, hits and x0..x3 words; null when the ID has no entry (or only "not fixed").
   */
  entry(base: number, rawFid: number): { kinds: number; wide: boolean; notFixed: boolean; rule: number; hits: number; result: number[] } | null {
    const e = entryOf(base, rawFid | 0);
    const words = this.all;
    if (words[e + FID] !== (rawFid | 0) || words[e + KINDS] === 0) return null;
    const kinds = words[e + KINDS]!;
    return { kinds: kinds & KIND_BITS, wide: (kinds & WIDE) !== 0, notFixed: (kinds & NOT_FIXED) !== 0, rule: words[e + RULE]!, hits: this.hitsAt(e), result: Array.from(words.subarray(e + RESULT, e + RESULT + 8), (w) => w >>> 0) };
  }

  /** Sets the hits of the entry holding `rawFid` (tests: a counter about to wrap past 2^32). */
  setHits(base: number, rawFid: number, hits: number): boolean {
    const e = entryOf(base, rawFid | 0);
    if (this.all[e + FID] !== (rawFid | 0) || (this.all[e + KINDS]! & KIND_BITS) === 0) return false;
    this.all[e + HITS_LOW] = hits % 0x1_0000_0000;
    this.all[e + HITS_HIGH] = Math.floor(hits / 0x1_0000_0000);
    return true;
  }
}
