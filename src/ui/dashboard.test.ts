import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { validateConfig } from "../policy/load.js";
import { hostsFor, policyDocument, takeUiFlag, uiSettings } from "./dashboard.js";

describe("--ui options", () => {
  it("takes --ui with or without a port out of the command line", () => {
    expect(takeUiFlag(["x.yaml", "--ui", "9000", "--quiet"])).toEqual({ argv: ["x.yaml", "--quiet"], ui: "9000" });
    expect(takeUiFlag(["--ui", "x.yaml"])).toEqual({ argv: ["x.yaml"], ui: true });
    expect(takeUiFlag(["x.yaml", "--ui=0"])).toEqual({ argv: ["x.yaml"], ui: "0" });
    expect(takeUiFlag(["x.yaml"]).ui).toBeUndefined();
  });

  it("listens on loopback by default and refuses another address without a token", () => {
    expect(uiSettings(true, undefined, undefined)).toEqual({ port: 8080, host: "127.0.0.1" });
    expect(uiSettings("70000", undefined, undefined)).toEqual({ error: expect.stringContaining("--ui") });
    expect(uiSettings(true, "0.0.0.0", undefined)).toEqual({ error: expect.stringContaining("--ui-token") });
    expect(uiSettings(true, "192.168.1.5", "short")).toEqual({ error: expect.stringContaining("at least 16") });
    expect(uiSettings(true, "evil.example", "a-long-enough-token")).toEqual({ error: expect.stringContaining("not an IP address") });
    expect(uiSettings("9000", "192.168.1.5", "a-long-enough-token")).toEqual({ port: 9000, host: "192.168.1.5", token: "a-long-enough-token" });
  });

  it("accepts only the Host headers of its own address (any Host only on a wildcard address with a token)", () => {
    expect([...hostsFor("127.0.0.1", 8080, false)]).toEqual(["127.0.0.1:8080", "localhost:8080"]);
    expect([...hostsFor("::1", 80, false)]).toEqual(["[::1]:80", "localhost:80"]);
    expect([...hostsFor("0.0.0.0", 80, true)]).toEqual(["*"]);
    expect([...hostsFor("0.0.0.0", 80, false)]).toEqual(["0.0.0.0:80"]);
  });

  it("the page's editor starts from the scenario's policy part, which validates as a config", () => {
    const text = policyDocument("examples/demo.yaml");
    expect(text).toContain("domU-no-hyp-uid");
    expect(text).toMatch(/0x8600ff01/i);
    expect(text).not.toContain("guests:");
    expect(validateConfig(parse(text)).ok).toBe(true);
  });
});

describe("smcvisor run --ui", () => {
  it("refuses an address others can reach without a token, before any VM boots", async () => {
    const { runCommand } = await import("../cli/run.js");
    const io = { out: () => undefined, err: () => undefined, cwd: process.cwd() };
    await expect(runCommand(["examples/demo.yaml", "--ui", "--ui-host", "0.0.0.0"], io)).rejects.toThrow(/--ui-token/);
    await expect(runCommand(["examples/demo.yaml", "--ui-token", "a-long-enough-token"], io)).rejects.toThrow(/go with --ui/);
    await expect(runCommand(["examples/demo.yaml", "--ui", "99999"], io)).rejects.toThrow(/not a TCP port/);
  });
});
