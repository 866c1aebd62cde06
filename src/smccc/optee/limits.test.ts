import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../policy/load.js";
import { checkOpteeLimits, DEFAULT_MEDIATOR_LIMITS, defaultCallsInFlight, OPTEE_DEFAULTS } from "./limits.js";

const tee = (s: string) => parseConfigText(`platform:\n  tee: ${s}\nvms:\n  a: { tee: optee, memory: { size: 1MiB } }\n`, "yaml");

describe("OP-TEE limits (one place for the defaults)", () => {
  it("calls in flight default to an equal share of the threads, at least one", () => {
    expect(defaultCallsInFlight(8, 4)).toBe(2);
    expect(defaultCallsInFlight(8, 2)).toBe(4);
    expect(defaultCallsInFlight(8, 3)).toBe(2);
    expect(DEFAULT_MEDIATOR_LIMITS).toEqual({ callsInFlight: 2, registrations: 256, pages: 16384, sessions: 256 });
  });

  it("refuses limits that overcommit OP-TEE's threads across its guests, naming the value to change", () => {
    expect(checkOpteeLimits({ threads: 8, maxGuests: 3, callsInFlight: 4 })).toEqual([
      { path: "platform.tee.limits.callsInFlight", message: "4 calls in flight for each of 3 guests need 12 of OP-TEE's 8 threads: one VM could hold threads another VM needs (at most 2)" },
    ]);
    expect(checkOpteeLimits({ threads: 2, maxGuests: 4, callsInFlight: 1 })).toEqual([
      { path: "platform.tee.maxGuests", message: "4 guests cannot each have one of OP-TEE's 2 threads: one VM could hold the thread another VM needs (raise threads or lower maxGuests)" },
    ]);
    expect(checkOpteeLimits({ threads: 8, maxGuests: 2, callsInFlight: 4 })).toEqual([]);
  });

  it("the default share never overcommits (any threads and guests with guests <= threads)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 64 }), (threads, maxGuests) => {
        fc.pre(maxGuests <= threads);
        expect(checkOpteeLimits({ threads, maxGuests, callsInFlight: defaultCallsInFlight(threads, maxGuests) })).toEqual([]);
      }),
    );
  });

  it("config validation applies them: the defaults, the sessions knob, and an overcommitting config is an error with its path", () => {
    const d = tee("{ os: optee }");
    if (!d.ok) throw new Error(JSON.stringify(d.errors));
    expect(d.value.platform.tee).toEqual({ os: "optee", threads: OPTEE_DEFAULTS.threads, maxGuests: OPTEE_DEFAULTS.maxGuests, limits: DEFAULT_MEDIATOR_LIMITS });
    const s = tee("{ os: optee, limits: { sessions: 16 } }");
    expect(s.ok && s.value.platform.tee!.limits.sessions).toBe(16);
    const over = tee("{ os: optee, threads: 8, maxGuests: 3, limits: { callsInFlight: 4 } }");
    expect(over.ok).toBe(false);
    if (!over.ok) expect(over.errors).toContainEqual({ path: "platform.tee.limits.callsInFlight", message: expect.stringContaining("need 12 of OP-TEE's 8 threads") });
    const few = tee("{ os: optee, threads: 2 }");
    expect(few.ok).toBe(false);
    if (!few.ok) expect(few.errors.map((e) => e.path)).toContain("platform.tee.maxGuests");
  });

  it("the mediator's README states the defaults the code has", () => {
    const readme = readFileSync(join(import.meta.dirname, "../../mediators/optee/README.md"), "utf8");
    const row = (name: string) => readme.split("\n").find((l) => l.startsWith(`| \`${name}\``)) ?? "";
    expect(row("callsInFlight")).toContain("an equal share of `threads`: `threads` / `maxGuests`, at least 1");
    for (const [name, value] of Object.entries(OPTEE_DEFAULTS.limits)) expect(row(name), name).toContain(`| ${value} |`);
  });
});
