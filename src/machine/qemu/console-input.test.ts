import { describe, expect, it } from "vitest";
import { ConsoleTyper, INPUT_LIMITS } from "./console-input.js";

function typer(steps: { after: string; send: string }[]) {
  const typed: string[] = [];
  const t = new ConsoleTyper(steps, (b) => typed.push(b.toString("utf8")));
  return { t, typed };
}

describe("console input", () => {
  it("types each step once its pattern shows, in a complete line or in a prompt without a newline", () => {
    const { t, typed } = typer([
      { after: "Hit any key", send: " " },
      { after: "=>", send: "reset\n" },
    ]);
    t.output("U-Boot 2023.01\r\nHit any");
    expect(typed).toEqual([]);
    t.output(" key to stop autoboot:  2");
    expect(typed).toEqual([" "]);
    t.output("\b\b\b 0 \r\n=");
    expect(typed).toEqual([" "]);
    t.output("> ");
    expect(typed).toEqual([" ", "reset\n"]);
    t.output("=> more prompts\n");
    expect(typed).toEqual([" ", "reset\n"]);
    expect(t.typed).toBe(2);
  });

  it("needs new output for the next step: two steps waiting for the same prompt wait for two prompts", () => {
    const { t, typed } = typer([
      { after: "=>", send: "a\n" },
      { after: "=>", send: "b\n" },
    ]);
    t.output("=> ");
    expect(typed).toEqual(["a\n"]);
    t.output("a\r\n"); // the echo completes the prompt's line: not a new prompt
    expect(typed).toEqual(["a\n"]);
    t.output("=> ");
    expect(typed).toEqual(["a\n", "b\n"]);
  });

  it("takes regular expressions, and several steps out of one chunk in order", () => {
    const { t, typed } = typer([
      { after: "/^one$/", send: "1" },
      { after: "two", send: "2" },
    ]);
    t.output("zero\none\ntwo\n");
    expect(typed).toEqual(["1", "2"]);
  });

  it("is bounded: a line that never ends keeps only its tail for matching, and the steps and their text are limited", () => {
    const { t, typed } = typer([{ after: "END", send: "x" }]);
    for (let i = 0; i < 100; i++) t.output("y".repeat(4096));
    expect((t as unknown as { tail: string }).tail.length).toBeLessThanOrEqual(INPUT_LIMITS.tail);
    t.output("END");
    expect(typed).toEqual(["x"]);
    expect(() => new ConsoleTyper(Array.from({ length: INPUT_LIMITS.steps + 1 }, () => ({ after: "a", send: "b" })), () => undefined)).toThrow();
    expect(() => new ConsoleTyper([{ after: "a", send: "b".repeat(INPUT_LIMITS.send + 1) }], () => undefined)).toThrow();
  });

  it("matches UEFI's console without its terminal control sequences (colours, cursor moves), split across chunks", () => {
    const { t, typed } = typer([
      { after: "to skip startup.nsh", send: "\x1b" },
      { after: "/^Shell> $/", send: "reset\r" },
    ]);
    t.output("\x1b[05;01HPress \x1b[1m\x1b[37m\x1b[40mESC\x1b[0m\x1b[37m\x1b[40m in 5 seconds to skip \x1b[1m\x1b[33m\x1b[40mstartup.");
    expect(typed).toEqual([]);
    t.output("nsh\x1b[0m\x1b[37m\x1b[40m or any other key to continue.");
    expect(typed).toEqual(["\x1b"]);
    t.output("\x1b[06;01H\x1b[1m\x1b[33m\x1b[40mShel");
    t.output("l> \x1b[0");
    expect(typed).toEqual(["\x1b"]);
    t.output("m\x1b[37m\x1b[40m");
    expect(typed).toEqual(["\x1b", "reset\r"]);
  });
});
