// Progress for long setup steps, on a terminal only. Steps run synchronous commands (execFileSync), which
// block the main thread's event loop, so the ticker lives in a worker thread and writes straight to file
// descriptor 2: it keeps counting while apt-get downloads or a module builds. Off a terminal (CI, a pipe,
// a log) it prints nothing: the output stays what the commands and `say` wrote.
import { Worker } from "node:worker_threads";

// Shown only once a step has run this long: quick steps (everything cached) stay silent.
const SHOW_AFTER_MS = 1500;
const TICK_MS = 250;

const TICKER = `
const { parentPort } = require("node:worker_threads");
const { writeSync } = require("node:fs");
const FRAMES = "|/-\\\\";
let step = null, started = 0, shown = false, frame = 0;
const clear = () => { if (shown) { writeSync(2, "\\r\\x1b[K"); shown = false; } };
setInterval(() => {
  if (step === null || Date.now() - started < ${SHOW_AFTER_MS}) return;
  const s = ((Date.now() - started) / 1000).toFixed(0);
  writeSync(2, "\\r\\x1b[Ksetup: " + FRAMES[frame++ % 4] + " " + step + " (" + s + " s)");
  shown = true;
}, ${TICK_MS});
parentPort.on("message", (m) => {
  if (m.type === "start") { clear(); step = m.name; started = Date.now(); }
  else if (m.type === "end") {
    const took = Date.now() - started;
    clear();
    if (took >= ${SHOW_AFTER_MS}) writeSync(2, "setup: " + step + ": done in " + (took / 1000).toFixed(1) + " s\\n");
    step = null;
  } else if (m.type === "clear") clear();
  else if (m.type === "stop") { clear(); process.exit(0); }
});
`;

/**
 * A reporter: start(name) before a step, end() after it, clear() before printing a line of one's own,
 * `await stop()` at the end. Without a terminal every method does nothing.
 */
export function progress(stream = process.stderr) {
  if (!stream.isTTY || process.env.CI) return { start() {}, end() {}, clear() {}, stop: async () => {} };
  const worker = new Worker(TICKER, { eval: true });
  worker.unref();
  const post = (m) => worker.postMessage(m);
  return {
    start: (name) => post({ type: "start", name }),
    end: () => post({ type: "end" }),
    // Synchronous: the line is gone before the caller prints its own (the worker's flag is reset by its
    // next message or tick, and clearing an empty line again is harmless).
    clear: () => {
      stream.write("\r\x1b[K");
      post({ type: "clear" });
    },
    /** Resolves once the worker has printed its last line and exited. */
    stop: () =>
      new Promise((done) => {
        worker.once("exit", done);
        post({ type: "stop" });
      }),
  };
}
