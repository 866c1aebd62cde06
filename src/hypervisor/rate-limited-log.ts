/** The count every key beyond maxKeys shares (no caller's key starts with NUL). */
const OVERFLOW_KEY = "\0(keys beyond the limit)";

/**
 * A log a hostile guest cannot flood: per key, the first `burst` messages pass, then only the 2^k-th
 * ones, each saying how many were suppressed.
 */
export class RateLimitedLog {
  private readonly seen = new Map<string, number>();

  constructor(private readonly sink: (line: string) => void, private readonly burst = 5, private readonly maxKeys = 1024) {}

  log(key: string, line: string): void {
    // Once maxKeys keys are known, every new key shares one count: a new key must not mean a new
    // allowance, or a guest that varies its keys would log without limit.
    const k = this.seen.has(key) || this.seen.size < this.maxKeys ? key : OVERFLOW_KEY;
    const n = (this.seen.get(k) ?? 0) + 1;
    this.seen.set(k, n);
    if (n <= this.burst) this.sink(line);
    else if ((n & (n - 1)) === 0) this.sink(`${line} (${n - 1} similar messages, some suppressed)`);
  }

  count(key: string): number {
    return this.seen.get(key) ?? 0;
  }
}
