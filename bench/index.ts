/**
 * `npm run bench`: every benchmark, printed as a table with ratios against baselines measured in the same
 * run; `--json` for machine-readable results. `--quick` for a short run.
 */
import { fmt, table } from "./harness.js";
import { routerBench } from "./router.bench.js";

const args = new Set(process.argv.slice(2));
const quick = args.has("--quick");
const json = args.has("--json");

const router = routerBench({ iterations: quick ? 200_000 : 2_000_000, repetitions: quick ? 3 : 9 });

if (json) {
  console.log(JSON.stringify({ node: process.version, router }, null, 2));
} else {
  console.log(`smcvisor benchmarks (Node ${process.version}; medians of interleaved repetitions)\n`);
  console.log("In-process router: one trapped HVC per iteration, same trap entry for every case\n");
  console.log(table([["case", "ns/call", "calls/s"], ...router.measurements.map((m) => [m.name, m.nsPerOp.toFixed(1), fmt(m.opsPerSec)])]));
  console.log("");
  console.log(table([["ratio", "value"], ...Object.entries(router.ratios).map(([k, v]) => [k, `${v.toFixed(2)}x`])]));
}
