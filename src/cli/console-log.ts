/**
 * A VM's console as a scenario run keeps it: every line is checked against the scenario's expectations as
 * it comes, and a bounded part is kept for the report (the first and the last lines, CONSOLE_KEEP_CHARS
 * characters in all), so that a guest that prints for ever cannot grow the hypervisor's memory, and an
 * expectation holds or fails on every line the guest printed, kept or not.
 */
import { consoleMatches, type Expectations } from "../machine/qemu/scenario.js";

/** Characters of console kept per VM: half for the first lines, half for the last. */
export const CONSOLE_KEEP_CHARS = 4 << 20;
/** A Linux guest's boot starts with its init's line. */
export const BOOT_MARKER = "SMCV-GUEST up";

export class ConsoleLog {
  private readonly head: string[] = [];
  private headChars = 0;
  private readonly tail: string[] = [];
  private tailStart = 0;
  private tailChars = 0;
  private droppedLines = 0;
  private readonly seen = new Set<string>();
  private readonly forbidden = new Map<string, string>();
  /** Per boot: the every-boot patterns it showed. */
  private readonly boots: Set<string>[] = [];

  constructor(private readonly expect: Pick<Expectations, "console" | "notConsole" | "everyBoot">, private readonly keepChars = CONSOLE_KEEP_CHARS) {}

  add(line: string): void {
    this.check(line);
    const half = this.keepChars / 2;
    if (this.tail.length === 0 && this.headChars + line.length <= half) {
      this.head.push(line);
      this.headChars += line.length;
      return;
    }
    this.tail.push(line);
    this.tailChars += line.length;
    while (this.tailChars > half && this.tailStart < this.tail.length) {
      this.tailChars -= this.tail[this.tailStart]!.length;
      this.tailStart++;
      this.droppedLines++;
    }
    // Compacted now and then, so that dropping a line costs O(1) on average.
    if (this.tailStart > 1024 && this.tailStart * 2 > this.tail.length) {
      this.tail.splice(0, this.tailStart);
      this.tailStart = 0;
    }
  }

  private check(line: string): void {
    if (line.includes(BOOT_MARKER)) this.boots.push(new Set());
    for (const p of this.expect.console) if (!this.seen.has(p) && consoleMatches(p, line)) this.seen.add(p);
    for (const p of this.expect.notConsole) if (!this.forbidden.has(p) && consoleMatches(p, line)) this.forbidden.set(p, line.length > 200 ? `${line.slice(0, 197)}...` : line);
    const boot = this.boots[this.boots.length - 1];
    if (boot !== undefined) for (const p of this.expect.everyBoot) if (!boot.has(p) && consoleMatches(p, line)) boot.add(p);
  }

  /** The lines kept, in order; where lines were dropped, one line says how many. */
  get lines(): string[] {
    const tail = this.tail.slice(this.tailStart);
    return this.droppedLines === 0 ? [...this.head, ...tail] : [...this.head, `[smcvisor: ${this.droppedLines} console lines not kept]`, ...tail];
  }

  /** The expectations on the console that did not hold, in words; `boots` is how many the scenario wants. */
  failures(boots: number): string[] {
    const out: string[] = [];
    if (this.expect.everyBoot.length > 0 && this.boots.length !== boots) out.push(`the console shows ${this.boots.length} boot(s), not ${boots}`);
    this.boots.forEach((b, k) => {
      for (const p of this.expect.everyBoot) if (!b.has(p)) out.push(`boot ${k + 1}: console never showed ${JSON.stringify(p)}`);
    });
    for (const p of this.expect.console) if (!this.seen.has(p)) out.push(`console never showed ${JSON.stringify(p)}`);
    for (const p of this.expect.notConsole) {
      const hit = this.forbidden.get(p);
      if (hit !== undefined) out.push(`console showed ${JSON.stringify(p)}: ${hit}`);
    }
    return out;
  }
}
