/**
 * Scenarios for `smcvisor run`: a policy config (inline, or a file it names) plus, per VM, the guest it
 * boots and what must hold at the end. Errors are data with the path of the offending field, like the
 * policy's own.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { z } from "zod";
import { formatPath, type ConfigError } from "../../policy/config.js";
import { validateConfig, type Config } from "../../policy/load.js";
import { readConfigFile } from "../config-file.js";
import { qemuLimitProblems } from "./limits.js";

/** Stands for the Debian Linux guest that `scripts/setup` builds (guests/linux). */
export const DEBIAN_GUEST = "debian";
/** `firmware:` names that stand for Debian's packaged firmware (guests/firmware): the package's name. */
export const DEBIAN_FIRMWARE = ["u-boot-qemu", "qemu-efi-aarch64"] as const;

const text = z.string().min(1);
/** A kernel guest's command line unless the scenario gives one. */
const LINUX_CMDLINE = "console=ttyAMA0 rdinit=/init panic=-1";
/** A console pattern: a substring, or /a regular expression/ that must compile (checked here, not after the run). */
const pattern = text.superRefine((p, ctx) => {
  const m = /^\/(.*)\/([a-z]*)$/.exec(p);
  if (!m) return;
  try {
    new RegExp(m[1]!, m[2]);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: `not a regular expression: ${(e as Error).message}` });
  }
});
const expectSchema = z
  .object({
    /** Each must appear in some console line: a substring, or /a regular expression/. */
    console: z.array(pattern).default([]),
    /** None may appear. */
    notConsole: z.array(pattern).default([]),
    /** Function names (or 0x IDs) the VM must have called, as the trace records them. */
    calls: z.array(text).default([]),
    /** Function names (or 0x IDs) that must have been denied at least once. */
    denied: z.array(text).default([]),
    /** Each must appear in the console of every boot (a boot starts with the guest's "SMCV-GUEST up" line). */
    everyBoot: z.array(pattern).default([]),
  })
  .strict();

/** Console input steps (console-input.ts): each types `send` once the console shows `after`. */
const inputSchema = z
  .array(z.object({ after: pattern, send: z.string().min(1).max(4096) }).strict())
  .max(64);

const guestSchema = z
  .object({
    /** A Linux arm64 Image or a bare-metal binary ("debian": the Linux guest setup builds). */
    kernel: text.optional(),
    /**
     * Instead of a kernel: firmware placed in the VM's flash at 0 and entered at its reset address (a path,
     * or a Debian package that `scripts/setup` fetches: "u-boot-qemu" is its qemu_arm64/u-boot.bin).
     */
    firmware: text.optional(),
    initrd: text.optional(),
    /**
     * A firmware guest's disk: a raw image the VM gets as a read-only virtio-blk device (docs/devices.md),
     * or "debian": an EFI system partition with the Debian Linux guest's kernel and initramfs that UEFI's
     * shell boots with the guest's `cmdline` (guests/firmware/debian-disk.ts).
     */
    disk: text.optional(),
    /** The kernel's command line (a Linux default for a kernel; a firmware guest's /chosen has none unless given). */
    cmdline: z.string().optional(),
    /** Files of the Linux guest's initramfs /etc/smcvisor/run.sh: shell commands run before power-off (also for a firmware guest with `disk: debian`). */
    run: z.string().optional(),
    /**
     * The boot the scenario ends on: the Linux guest reboots (with `reboot`) on every boot before it and powers
     * off on this one. The hypervisor puts each boot's number on the kernel command line (smcvisor.boot=K).
     */
    boots: z.number().int().min(1).max(9999).default(1),
    /** How the Linux guest reboots: shell commands (default `reboot -f`: PSCI SYSTEM_RESET, or SYSTEM_RESET2 with reboot=warm). */
    reboot: z.string().optional(),
    /** What is typed into the VM's serial port, in order: each step once the console shows its `after`. */
    input: inputSchema.default([]),
    /** The VM's interrupt controller: GICv2 (the default) or GICv3 (QEMU virt's gic-version; the device tree follows). */
    gic: z.union([z.literal(2), z.literal(3)], { message: "2 or 3 (the GIC architecture version)" }).default(2),
    expect: expectSchema.default({ console: [], notConsole: [], calls: [], denied: [], everyBoot: [] }),
  })
  .strict()
  .superRefine((g, ctx) => {
    if ((g.kernel === undefined) === (g.firmware === undefined)) ctx.addIssue({ code: "custom", path: ["kernel"], message: "a guest boots a kernel or firmware: give exactly one of kernel and firmware" });
    if (g.firmware !== undefined) {
      for (const k of ["initrd", "run", "reboot"] as const) {
        // The Linux on `disk: debian` runs a scenario's commands as a kernel guest does.
        if (k === "run" && g.disk === DEBIAN_GUEST) continue;
        if (g[k] !== undefined) ctx.addIssue({ code: "custom", path: [k], message: k === "run" ? "not for a firmware guest (the firmware decides what it boots), except with disk: debian, whose Linux runs it" : "not for a firmware guest (the firmware decides what it boots)" });
      }
    }
    if (g.disk !== undefined && g.firmware === undefined) ctx.addIssue({ code: "custom", path: ["disk"], message: "a disk is for a firmware guest (UEFI reads it); a kernel guest gets its initrd instead" });
  })
  .transform((g) => ({ ...g, cmdline: g.cmdline ?? (g.firmware === undefined || g.disk === DEBIAN_GUEST ? LINUX_CMDLINE : "") }));

const scenarioSchema = z
  .object({
    name: z.string().optional(),
    description: z.string().optional(),
    /** A policy file (relative to the scenario) instead of inline platform/defaults/delegates/vms. */
    policy: text.optional(),
    guests: z.record(z.string(), guestSchema),
    timeoutSeconds: z.number().positive().max(3600).default(180),
    /** Where the Chrome/Perfetto trace goes (relative to the working directory). */
    trace: text.default("out/trace.json"),
  })
  .passthrough();

export type GuestSpec = z.infer<typeof guestSchema>;
export type Expectations = z.infer<typeof expectSchema>;

export interface Scenario {
  readonly name: string;
  readonly config: Config;
  readonly guests: ReadonlyMap<string, GuestSpec>;
  readonly timeoutMs: number;
  readonly trace: string;
  /** The directory relative paths in the scenario are resolved against. */
  readonly dir: string;
}

export type ScenarioResult = { ok: true; scenario: Scenario } | { ok: false; errors: ConfigError[] };

const POLICY_KEYS = ["platform", "defaults", "delegates", "vms"];

export function parseScenario(source: string, data: unknown, readPolicy: (path: string) => unknown): ScenarioResult {
  const parsed = scenarioSchema.safeParse(data ?? {});
  if (!parsed.success) {
    return { ok: false, errors: parsed.error.issues.map((i) => ({ path: i.path.length > 0 ? formatPath(i.path) : "(scenario)", message: i.message })) };
  }
  const s = parsed.data;
  const rest = Object.fromEntries(Object.entries(s).filter(([k]) => POLICY_KEYS.includes(k)));
  const unknown = Object.keys(s).filter((k) => !POLICY_KEYS.includes(k) && !(k in scenarioSchema.shape));
  if (unknown.length > 0) return { ok: false, errors: unknown.map((k) => ({ path: k, message: "unknown field" })) };
  let policyData: unknown = rest;
  if (s.policy !== undefined) {
    if (Object.keys(rest).length > 0) return { ok: false, errors: [{ path: "policy", message: `give a policy file or inline ${POLICY_KEYS.join("/")}, not both` }] };
    try {
      policyData = readPolicy(s.policy);
    } catch (e) {
      return { ok: false, errors: [{ path: "policy", message: `cannot read ${s.policy}: ${(e as Error).message}` }] };
    }
  }
  const config = validateConfig(policyData);
  if (!config.ok) return { ok: false, errors: config.errors.map((e) => ({ path: s.policy ? `${s.policy}: ${e.path}` : e.path, message: e.message })) };
  // What the QEMU backend cannot run is an error now, before any guest is built.
  const errors: ConfigError[] = qemuLimitProblems(config.value);
  const names = new Set(config.value.vms.map((v) => v.name));
  for (const vm of names) if (!Object.hasOwn(s.guests, vm)) errors.push({ path: `guests.${vm}`, message: "every VM needs a guest (kernel or firmware)" });
  for (const vm of config.value.vms) {
    if (vm.handover && Object.hasOwn(s.guests, vm.name) && s.guests[vm.name]!.firmware !== undefined) errors.push({ path: `guests.${vm.name}.firmware`, message: "a handover VM boots a kernel at EL2, not firmware (docs/handover.md)" });
  }
  for (const g of Object.keys(s.guests)) if (!names.has(g)) errors.push({ path: `guests.${g}`, message: `no VM named ${g} in the policy (have: ${[...names].join(", ")})` });
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    scenario: { name: s.name ?? source, config: config.value, guests: new Map(Object.entries(s.guests)), timeoutMs: s.timeoutSeconds * 1000, trace: s.trace, dir: "." },
  };
}

/** Reads a scenario file (YAML or JSON; at most 1 MiB, as a config: policy/source.ts). */
export function loadScenario(path: string): ScenarioResult {
  const read = readConfigFile(path);
  if (!read.ok) return { ok: false, errors: [...read.errors] };
  const data = read.data;
  const dir = dirname(path);
  let policyDir: string | undefined;
  const r = parseScenario(path, data, (p) => {
    const full = isAbsolute(p) ? p : resolve(dir, p);
    const policy = readConfigFile(full, p);
    if (!policy.ok) throw new Error(policy.errors.map((e) => `${e.path}: ${e.message}`).join("; "));
    policyDir = dirname(full);
    return policy.data;
  });
  if (!r.ok) return r;
  // A policy file's relative paths (its delegates) are its own, as when it is given to `call` or
  // `explain`; inline policy's are the scenario's.
  const config = { ...r.scenario.config, baseDir: policyDir ?? dir };
  return { ok: true, scenario: { ...r.scenario, config, dir } };
}

/**
 * Terminal control sequences (ECMA-48 CSI, `ESC [ ... final`; other escapes, `ESC c`, `ESC ( B`) and stray
 * ESCs: UEFI's console sets colours and positions the cursor all through its lines
 * (`\x1b[0m\x1b[37m\x1b[40mShell> `). Stripped only for matching, never from what is printed.
 */
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-Z\\-~]|\x1b/g;

/** A console line as patterns see it: without terminal control sequences. */
export function consoleText(line: string): string {
  return line.includes("\x1b") ? line.replace(ANSI, "") : line;
}

/** Whether a console line satisfies a pattern: /regex/ or a substring, on the line without terminal control sequences. */
export function consoleMatches(pattern: string, line: string): boolean {
  const text = consoleText(line);
  const m = /^\/(.*)\/([a-z]*)$/.exec(pattern);
  return m ? new RegExp(m[1]!, m[2]).test(text) : text.includes(pattern);
}
