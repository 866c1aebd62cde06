/**
 * Console input: what a scenario types into a VM's serial port, step by step. Each step waits for its
 * pattern (`after`: a substring, or /a regular expression/, as console expectations) in what the guest
 * printed since the previous step was typed, then types its text once. A pattern is tested against every
 * complete line and against the line still being printed, so a prompt without a newline (U-Boot's `=> `)
 * is found; after a step fires only output that comes later counts for the next one, so two steps waiting
 * for the same prompt wait for two prompts.
 *
 * The boundary (docs/threat-model.md): the bytes typed are the scenario's, fixed before the VM starts and
 * bounded (INPUT_LIMITS); the guest decides only when they are typed (by printing the patterns), never what
 * nor where. They go to QEMU's standard input, which is the VM's PL011 and nothing else: QEMU runs with
 * `-serial stdio -monitor none` and no multiplexer, so no byte is an escape to QEMU's monitor or a command
 * to QEMU (`test/qemu/firmware.test.ts` types Ctrl-A sequences and checks that).
 */
import { consoleMatches } from "./scenario.js";

export interface ConsoleInput {
  /** A substring, or /a regular expression/, of the console output that makes this step type its text. */
  readonly after: string;
  /** What is typed (a command line ends with "\n"; U-Boot and UEFI take "\r" or "\n"). */
  readonly send: string;
}

export const INPUT_LIMITS = {
  /** Steps per guest. */
  steps: 64,
  /** Characters typed per step. */
  send: 4096,
  /** Characters of the current line kept for matching (a guest that never prints a newline). */
  tail: 16384,
} as const;

export class ConsoleTyper {
  private next = 0;
  /** Output since the last step fired, current line only (complete lines are tested as they end). */
  private tail = "";

  constructor(private readonly steps: readonly ConsoleInput[], private readonly type: (bytes: Buffer) => void) {
    if (steps.length > INPUT_LIMITS.steps) throw new Error(`at most ${INPUT_LIMITS.steps} console input steps`);
    for (const s of steps) if (s.send.length > INPUT_LIMITS.send) throw new Error(`a console input step types at most ${INPUT_LIMITS.send} characters`);
  }

  /** Steps typed so far. */
  get typed(): number {
    return this.next;
  }

  /** The guest printed `s`. */
  output(s: string): void {
    if (this.next >= this.steps.length) return;
    let from = 0;
    for (;;) {
      const nl = s.indexOf("\n", from);
      this.tail += nl < 0 ? s.slice(from) : s.slice(from, nl);
      if (this.tail.length > INPUT_LIMITS.tail) this.tail = this.tail.slice(-INPUT_LIMITS.tail);
      // A step fires at most once per test; a fired step clears what it saw, so the next one needs new output.
      this.test(this.tail.replace(/\r$/, ""));
      if (nl < 0) return;
      this.tail = "";
      from = nl + 1;
      if (this.next >= this.steps.length) return;
    }
  }

  private test(text: string): void {
    const step = this.steps[this.next];
    if (!step || !consoleMatches(step.after, text)) return;
    this.next++;
    this.tail = "";
    this.type(Buffer.from(step.send, "utf8"));
  }
}
