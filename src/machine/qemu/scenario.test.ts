import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { consoleMatches, consoleText, loadScenario, parseScenario } from "./scenario.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "smcvisor-scenario-"));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const POLICY = "delegates:\n  info: { module: info.ts }\nvms:\n  a: {}\n";

describe("loadScenario: where relative paths are resolved", () => {
  it("resolves a policy file's delegates against the policy file's directory, not the scenario's", () => {
    const root = tree({ "scenarios/s.yaml": "policy: ../policies/p.yaml\nguests:\n  a: { kernel: debian }\n", "policies/p.yaml": POLICY });
    const r = loadScenario(join(root, "scenarios/s.yaml"));
    expect(r.ok && r.scenario.config.baseDir).toBe(join(root, "policies"));
    expect(r.ok && r.scenario.dir).toBe(join(root, "scenarios"));
  });

  it("resolves inline policy's delegates against the scenario's directory", () => {
    const root = tree({ "scenarios/s.yaml": `${POLICY}guests:\n  a: { kernel: debian }\n` });
    const r = loadScenario(join(root, "scenarios/s.yaml"));
    expect(r.ok && r.scenario.config.baseDir).toBe(join(root, "scenarios"));
  });

  it("names the policy file when it cannot be read", () => {
    const root = tree({ "s.yaml": "policy: missing.yaml\nguests:\n  a: { kernel: debian }\n" });
    const r = loadScenario(join(root, "s.yaml"));
    expect(!r.ok && r.errors.map((e) => e.path)).toEqual(["policy"]);
    expect(!r.ok && r.errors[0]!.message).toMatch(/^cannot read missing\.yaml: /);
  });
});

describe("parseScenario: firmware guests and console input", () => {
  const policy = { vms: { a: {} } };
  const parse = (guest: unknown) => parseScenario("s", { ...policy, guests: { a: guest } }, () => ({}));
  it("takes firmware instead of a kernel, with input steps", () => {
    const r = parse({ firmware: "u-boot-qemu", input: [{ after: "=>", send: "poweroff\n" }] });
    expect(r.ok && r.scenario.guests.get("a")).toMatchObject({ firmware: "u-boot-qemu", input: [{ after: "=>", send: "poweroff\n" }] });
  });
  it("wants exactly one of kernel and firmware, and no initrd, run or reboot with firmware", () => {
    const paths = (g: unknown) => {
      const r = parse(g);
      return r.ok ? [] : r.errors.map((e) => e.path);
    };
    expect(paths({})).toEqual(["guests.a.kernel"]);
    expect(paths({ kernel: "debian", firmware: "u-boot-qemu" })).toEqual(["guests.a.kernel"]);
    expect(paths({ firmware: "u-boot-qemu", initrd: "x", run: "true", reboot: "reboot" })).toEqual(["guests.a.initrd", "guests.a.run", "guests.a.reboot"]);
    // A disk is for a firmware guest; with `disk: debian` the command line goes to the disk's startup.nsh.
    expect(paths({ kernel: "debian", disk: "debian" })).toEqual(["guests.a.disk"]);
    expect(paths({ firmware: "qemu-efi-aarch64", disk: "" })).toEqual(["guests.a.disk"]);
    const r = parse({ firmware: "qemu-efi-aarch64", disk: "debian" });
    expect(r.ok && r.scenario.guests.get("a")).toMatchObject({ disk: "debian", cmdline: "console=ttyAMA0 rdinit=/init panic=-1" });
    // `run:` goes to the Linux on `disk: debian`; with any other disk, or none, the firmware decides what runs.
    const withRun = parse({ firmware: "qemu-efi-aarch64", disk: "debian", run: "cat /proc/partitions" });
    expect(withRun.ok && withRun.scenario.guests.get("a")).toMatchObject({ disk: "debian", run: "cat /proc/partitions" });
    expect(paths({ firmware: "qemu-efi-aarch64", disk: "my.img", run: "true" })).toEqual(["guests.a.run"]);
    expect(paths({ firmware: "qemu-efi-aarch64", run: "true" })).toEqual(["guests.a.run"]);
    expect(paths({ firmware: "qemu-efi-aarch64", disk: "debian", reboot: "reboot" })).toEqual(["guests.a.reboot"]);
  });
  it("bounds console input: 64 steps of at most 4096 characters, patterns that compile, no other fields", () => {
    const ok = (input: unknown) => parse({ firmware: "u-boot-qemu", input }).ok;
    expect(ok(Array.from({ length: 64 }, () => ({ after: "=>", send: "x" })))).toBe(true);
    expect(ok(Array.from({ length: 65 }, () => ({ after: "=>", send: "x" })))).toBe(false);
    expect(ok([{ after: "=>", send: "x".repeat(4096) }])).toBe(true);
    expect(ok([{ after: "=>", send: "x".repeat(4097) }])).toBe(false);
    expect(ok([{ after: "/(/", send: "x" }])).toBe(false);
    expect(ok([{ after: "=>", send: "" }])).toBe(false);
    expect(ok([{ after: "=>", send: "x", to: "monitor" }])).toBe(false);
  });
  it("takes the VM's GIC version, 2 by default, and refuses any other, naming the field", () => {
    const r2 = parse({ kernel: "debian" }), r3 = parse({ kernel: "debian", gic: 3 });
    expect([r2.ok && r2.scenario.guests.get("a")!.gic, r3.ok && r3.scenario.guests.get("a")!.gic]).toEqual([2, 3]);
    for (const gic of [4, "3", 2.5, null]) {
      const r = parse({ kernel: "debian", gic });
      expect(r.ok ? [] : r.errors, String(gic)).toEqual([{ path: "guests.a.gic", message: "2 or 3 (the GIC architecture version)" }]);
    }
  });
  it("gives a kernel guest the Linux command line by default and a firmware guest's /chosen none", () => {
    const cmdline = (g: unknown) => {
      const r = parse(g);
      return r.ok ? r.scenario.guests.get("a")!.cmdline : undefined;
    };
    expect(cmdline({ kernel: "debian" })).toBe("console=ttyAMA0 rdinit=/init panic=-1");
    expect(cmdline({ firmware: "qemu-efi-aarch64" })).toBe("");
    expect(cmdline({ firmware: "u-boot-qemu", cmdline: "x=1" })).toBe("x=1");
  });
});

describe("consoleMatches: patterns see a line without terminal control sequences", () => {
  const line = "\x1b[06;01H\x1b[1m\x1b[33m\x1b[40mShell> \x1b[0m\x1b[37m\x1b[40m\x1b[06;08Hr\x1b[06;09H\x1b[06;09He\x1b[06;10Hs\x1b[06;11He\x1b[06;12Ht\x1b[06;13H";
  it("strips CSI sequences and escapes for substrings and regular expressions, never the line itself", () => {
    expect(consoleText(line)).toBe("Shell> reset");
    expect(consoleMatches("Shell> reset", line)).toBe(true);
    expect(consoleMatches("/^Shell> reset$/", line)).toBe(true);
    expect(consoleMatches("[06;01H", line)).toBe(false);
    expect(consoleText("\x1b[2J\x1b[01;01H\x1b[=3h\x1bcplain\x1b")).toBe("plain");
    expect(consoleText("no escapes [1m")).toBe("no escapes [1m");
  });
});

