/**
 * A log a hostile guest cannot flood: per key, the first `burst` messages pass, then only the 2^k-th
 * ones, each saying how many were suppressed.
 */
export class RateLimitedLog {
  private readonly seen = new Map<string, number>();

  constructor(private readonly sink: (line: string) => void, private readonly burst = 5, private readonly maxKeys = 1024) {}

  log(key: string, line: string): void {
    const n = (this.seen.get(key) ?? 0) + 1;
    if (this.seen.size < this.maxKeys || this.seen.has(key)) this.seen.set(key, n);
    if (n <= this.burst) this.sink(line);
    else if ((n & (n - 1)) === 0) this.sink(`${line} (${n - 1} similar messages, some suppressed)`);
  }

  count(key: string): number {
    return this.seen.get(key) ?? 0;
  }
}
