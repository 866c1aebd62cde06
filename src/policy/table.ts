/**
 * The compiled per-VM dispatch table. A lookup is at most four typed-array reads, whatever the number
 * of rules: bits 31:24 of the FID (call type and owner) select a bucket; a bucket is either uniform
 * (one chain for all 65,536 function numbers) or has a 256-entry page directory over 256-entry pages.
 *
 * A chain is the ordered list of steps that may decide a call with that FID: rules with argument
 * constraints first, ending with one unconditional step. Most chains are a single unconditional step.
 */
import type { ArgConstraint, Rule, Action } from "./rules.js";

export interface Step {
  /** The grant, or null for a default (a standard service or the default deny). */
  readonly rule: Rule | null;
  readonly action: Action;
  /** For `emulate`: the service that claims the FID, or null when no service does. */
  readonly service: string | null;
  /** How the decision is named in `explain` and the trace. */
  readonly label: string;
  readonly constraints: readonly ArgConstraint[];
}

export interface Chain {
  readonly steps: readonly Step[];
}

export class PolicyTable {
  private isSealed = false;

  constructor(
    readonly chains: readonly Chain[],
    /** Per bucket (FID bits 31:24): < 0 is ~chain for the whole bucket, else an offset into `dir`. */
    private readonly buckets: Int32Array,
    /** Per page: < 0 is ~chain for the whole page, else an offset into `pool`. */
    private readonly dir: Int32Array,
    private readonly pool: Uint32Array,
    /** Per bucket: the chain for yielding IDs with bits 23:16 set, which only owner grants match. */
    private readonly oddChains: Uint32Array,
  ) {}

  /** The chain index for a dispatch FID (SVE hint removed, must-be-zero bits already checked). */
  chainIndex(fid: number): number {
    const bucket = fid >>> 24;
    if ((fid & 0x00ff_0000) !== 0) return this.oddChains[bucket]!;
    const b = this.buckets[bucket]!;
    if (b < 0) return ~b;
    const p = this.dir[b + ((fid >>> 8) & 0xff)]!;
    return p < 0 ? ~p : this.pool[p + (fid & 0xff)]!;
  }

  chainFor(fid: number): Chain {
    return this.chains[this.chainIndex(fid)]!;
  }

  /** The same lookup arrays with another VM's chains (same shape, its own rules): see TableCache. */
  withChains(chains: readonly Chain[]): PolicyTable {
    return new PolicyTable(chains, this.buckets, this.dir, this.pool, this.oddChains);
  }

  /** Sealed when the VM first runs: from then on its policy cannot change (docs/policy.md). */
  seal(): void {
    this.isSealed = true;
  }

  get sealed(): boolean {
    return this.isSealed;
  }

  /** Memory held by the lookup structures, for the benchmark's per-VM cost. */
  get bytes(): number {
    return this.buckets.byteLength + this.dir.byteLength + this.pool.byteLength + this.oddChains.byteLength;
  }
}
