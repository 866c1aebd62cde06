/**
 * Benchmark harness: interleaved repetitions, medians and ratios against a baseline measured in the same
 * run. Benchmarks report; they never assert wall-clock limits.
 *
 * A ratio is the median, over the repetitions, of the two cases' times in the same repetition (paired),
 * not the ratio of the two medians: on a shared 2-core machine the speed of the whole process moves by 2x
 * from one second to the next (other tenants, V8's own threads), and the paired ratio cancels that.
 */
export interface Case {
  readonly name: string;
  /** Runs `n` iterations; returns a value the JIT cannot discard. */
  readonly run: (n: number) => number;
}

export interface Measurement {
  readonly name: string;
  readonly nsPerOp: number;
  readonly opsPerSec: number;
  /** Every repetition's ns/op, for the spread. */
  readonly samples: number[];
}

let sink = 0;

export function measure(cases: readonly Case[], opts: { iterations: number; repetitions: number; warmup?: number; warmupRounds?: number }): Measurement[] {
  const samples = cases.map(() => [] as number[]);
  // Warm-up in many short runs (for nanosecond cases), then one long one: V8 then optimizes each loop as a
  // function called often, as it will be measured, rather than only through on-stack replacement inside
  // one long run, whose code can differ (the same loop settled at 6 ns in one process and 11 in the next).
  for (let w = 0; w < (opts.warmupRounds ?? 0); w++) for (const c of cases) sink += c.run(500);
  for (const c of cases) sink += c.run(opts.warmup ?? Math.max(1000, opts.iterations / 4));
  // Interleave the cases in every repetition, so slow drift of the machine hits them all alike.
  for (let r = 0; r < opts.repetitions; r++) {
    cases.forEach((c, i) => {
      const t0 = performance.now();
      sink += c.run(opts.iterations);
      const t1 = performance.now();
      samples[i]!.push(((t1 - t0) * 1e6) / opts.iterations);
    });
  }
  if (sink === 0.5) console.log("");
  return cases.map((c, i) => {
    const s = [...samples[i]!].sort((a, b) => a - b);
    const median = s[Math.floor(s.length / 2)]!;
    return { name: c.name, nsPerOp: median, opsPerSec: 1e9 / median, samples: samples[i]! };
  });
}

/** The median over repetitions of a's time / b's time in the same repetition. */
export function pairedRatio(a: Measurement, b: Measurement): number {
  const r = a.samples.map((x, i) => x / b.samples[i]!).sort((x, y) => x - y);
  return r[Math.floor(r.length / 2)]!;
}

export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")).join("\n");
}

export function fmt(n: number, digits = 1): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(digits);
}
