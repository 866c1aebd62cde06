/**
 * `smcvisor run <scenario.yaml>`: boots every VM of a scenario under QEMU and the EL2 shim, streams each
 * console with the VM's name, writes the trace, prints a summary, and exits 0 only when every VM powered
 * off cleanly and every expectation held.
 */
import { randomFillSync } from "node:crypto";
import { isAbsolute, resolve } from "node:path";
import { ensureFirmware, type DebianFirmware } from "../../guests/firmware/firmware.js";
import { ensureLinuxGuest } from "../../guests/linux/guest.js";
import { ensureDebianBootDisk } from "../../guests/firmware/debian-disk.js";
import { QemuMachine } from "../machine/qemu/machine.js";
import type { GuestImage, VmExit } from "../machine/qemu/qemu-vm.js";
import { DEBIAN_FIRMWARE, DEBIAN_GUEST, loadScenario, type GuestSpec, type Scenario } from "../machine/qemu/scenario.js";
import { hex32 } from "../smccc/fid.js";
import { fidName } from "../smccc/names.js";
import { ownerName } from "../smccc/owners.js";
import { toChromeTrace, type PolicyMark } from "../trace/chrome.js";
import type { TraceEvent } from "../trace/ring.js";
import { parseArgs, UsageError, type Io } from "./args.js";
import { BOOT_MARKER, ConsoleLog } from "./console-log.js";
import { unwritable, writeOutput } from "./output.js";
import type { HypervisorObserver } from "../hypervisor/observer.js";
import { openRecorder } from "./record-run.js";
import { policyDocument, startDashboard, takeUiFlag, uiSettings, type Dashboard } from "../ui/dashboard.js";

export interface VmReport {
  readonly name: string;
  readonly exit: VmExit;
  readonly console: readonly string[];
  /** Expectations that did not hold, in words. */
  readonly failures: readonly string[];
  readonly calls: number;
  readonly denied: number;
  readonly errors: number;
  readonly byService: ReadonlyMap<string, number>;
}

export interface RunReport {
  readonly ok: boolean;
  readonly vms: readonly VmReport[];
  readonly events: readonly TraceEvent[];
  readonly dropped: number;
  /** Live policy changes (the control API's), per VM, on the trace's clock: marks in the trace file. */
  readonly policyChanges: readonly PolicyMark[];
}

const nameOf = (fid: number) => fidName(fid) ?? hex32(fid);

function matchesCall(want: string, e: TraceEvent): boolean {
  return /^0x/i.test(want) ? (e.fid >>> 0) === (Number(want) >>> 0) : nameOf(e.fid) === want;
}

function guestImage(name: string, g: GuestSpec, s: Scenario): GuestImage {
  const path = (p: string) => (isAbsolute(p) ? p : resolve(s.dir, p));
  // The interrupt controller goes with the guest image (QemuVm reads it); GICv2 unless the scenario says 3.
  const input = { ...(g.input.length > 0 ? { input: g.input } : {}), ...(g.gic === 3 ? { gic: 3 as const } : {}) };
  if (g.firmware !== undefined) {
    // Debian's packaged firmware by package name (guests/firmware), or a file.
    const firmware = (DEBIAN_FIRMWARE as readonly string[]).includes(g.firmware) ? ensureFirmware(g.firmware as DebianFirmware) : path(g.firmware);
    // "debian": the Linux guest on an EFI system partition, booted by UEFI's shell with the guest's command line.
    if (g.disk !== undefined) {
      const disk = g.disk === DEBIAN_GUEST ? ensureDebianBootDisk(g.cmdline, g.run) : path(g.disk);
      return { firmware, disk, ...input };
    }
    return { firmware, cmdline: g.cmdline, ...input };
  }
  const script = (file: string, body: string) => ({ path: `etc/smcvisor/${file}`, data: new TextEncoder().encode(`#!/bin/sh\n${body}\n`), mode: 0o755 });
  const cmdline = g.boots > 1 ? `${g.cmdline} smcvisor.boots=${g.boots}` : g.cmdline;
  const kernel = g.kernel!;
  if (kernel === DEBIAN_GUEST) {
    const files = [...(g.run !== undefined ? [script("run.sh", g.run)] : []), ...(g.reboot !== undefined ? [script("reboot.sh", g.reboot)] : [])];
    // An FF-A VM's kernel gets the FF-A driver and an optee.ko built with the FF-A ABI (guests/linux/ffa-modules.ts).
    const ffa = s.config.vms.find((v) => v.name === name)?.ffa != null;
    // A handover VM's initramfs carries the handover module (guests/linux/handover-module.ts).
    const handover = s.config.vms.find((v) => v.name === name)?.handover === true;
    const linux = ensureLinuxGuest({ files, ffa, ...(handover ? { handover } : {}) });
    return { kernel: linux.kernel, initrd: g.initrd === undefined || g.initrd === DEBIAN_GUEST ? linux.initrd : path(g.initrd), cmdline, ...input };
  }
  return { kernel: path(kernel), ...(g.initrd ? { initrd: path(g.initrd) } : {}), cmdline, ...input };
}

/** A Linux guest's console, boot by boot: each boot starts with its init's "SMCV-GUEST up" line. */
export function splitBoots(lines: readonly string[]): string[][] {
  const boots: string[][] = [];
  for (const l of lines) {
    if (l.includes(BOOT_MARKER)) boots.push([]);
    boots[boots.length - 1]?.push(l);
  }
  return boots;
}

/** Runs a scenario; `onConsole` sees every line as it comes. */
export async function runScenario(s: Scenario, opts: { onConsole?: (vm: string, line: string) => void; log?: (line: string) => void; onStart?: (m: QemuMachine) => void; observer?: HypervisorObserver } = {}): Promise<RunReport> {
  const images = new Map<string, GuestImage>();
  for (const [name, g] of s.guests) images.set(name, guestImage(name, g, s));
  // Each line is checked against the expectations as it comes; only a bounded part is kept (console-log.ts).
  const consoles = new Map<string, ConsoleLog>(s.config.vms.map((v) => [v.name, new ConsoleLog(s.guests.get(v.name)!.expect)]));
  const machine = await QemuMachine.create(s.config, {
    images,
    cwd: s.dir,
    traceCapacity: 1 << 20,
    clock: { now: () => performance.now() * 1e6 },
    entropy: (out) => randomFillSync(out),
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.observer ? { observer: opts.observer } : {}),
    console: (vm, line) => {
      consoles.get(vm)!.add(line);
      opts.onConsole?.(vm, line);
    },
  });
  opts.onStart?.(machine);
  const exits = await machine.run(s.timeoutMs);
  const trace = machine.hypervisor.router.trace;
  const events = trace.events();
  const vms = exits.map((exit) => vmReport(exit, s.guests.get(exit.name)!, consoles.get(exit.name)!, events));
  return { ok: vms.every((v) => v.failures.length === 0), vms, events, dropped: trace.dropped, policyChanges: [...machine.hypervisor.router.policySwaps] };
}

/**
 * One VM's part of the report: how it ended, what its console and trace show against its expectations.
 * Its own calls are the trace's events of that VM; the hypervisor's calls (for this VM or not) are told
 * apart by their conduit, never by name, since "hypervisor" is a name a VM may have.
 */
export function vmReport(exit: VmExit, g: GuestSpec, log: ConsoleLog, events: readonly TraceEvent[]): VmReport {
  const mine = events.filter((e) => e.conduit !== "hypervisor" && e.vm === exit.name);
  const failures: string[] = [];
  if (exit.state !== "off") failures.push(`did not power off cleanly: ${exit.reason}`);
  if (exit.boots !== g.boots) failures.push(`powered off on boot ${exit.boots}, not on boot ${g.boots}`);
  failures.push(...log.failures(g.boots));
  for (const c of g.expect.calls) if (!mine.some((e) => matchesCall(c, e))) failures.push(`the trace has no ${c} call`);
  for (const c of g.expect.denied) if (!mine.some((e) => e.action === "deny" && matchesCall(c, e))) failures.push(`the trace has no denied ${c}`);
  const byService = new Map<string, number>();
  for (const e of mine) {
    const owner = ownerName((e.fid >>> 24) & 0x3f, (e.fid & 0x8000_0000) !== 0);
    byService.set(owner, (byService.get(owner) ?? 0) + 1);
  }
  return {
    name: exit.name,
    exit,
    console: log.lines,
    failures,
    calls: mine.length,
    denied: mine.filter((e) => e.action === "deny").length,
    errors: mine.filter((e) => e.outcome === "error").length,
    byService,
  };
}

export async function runCommand(argv: readonly string[], io: Io): Promise<number> {
  const withoutUi = takeUiFlag(argv);
  const { positionals: positional, flags } = parseArgs(withoutUi.argv, ["quiet", "json"], ["trace", "record", "record-limit", "ui-host", "ui-token"]);
  if (positional.length !== 1) throw new UsageError("usage: smcvisor run <scenario.yaml> [--trace OUT] [--record FILE [--record-limit MIB]] [--quiet] [--json] [--ui [PORT] [--ui-host ADDR --ui-token TOKEN]]");
  const ui = withoutUi.ui === undefined ? null : uiSettings(withoutUi.ui, flags.get("ui-host") as string | undefined, (flags.get("ui-token") as string | undefined) ?? process.env.SMCVISOR_UI_TOKEN);
  if (ui === null && (flags.has("ui-host") || flags.has("ui-token"))) throw new UsageError("--ui-host and --ui-token go with --ui");
  if (ui !== null && "error" in ui) throw new UsageError(ui.error);
  const path = resolve(io.cwd, positional[0]!);
  const loaded = loadScenario(path);
  if (!loaded.ok) {
    for (const e of loaded.errors) io.err(`${positional[0]}: ${e.path}: ${e.message}`);
    return 2;
  }
  const s = loaded.scenario;
  // A trace that cannot be written is found now, before the VMs boot, not after the run.
  const tracePath = resolve(io.cwd, (flags.get("trace") as string | undefined) ?? s.trace);
  const refused = unwritable(tracePath);
  if (refused !== null) throw new UsageError(`${flags.has("trace") ? "--trace" : `${positional[0]}: trace`}: ${refused}`);
  const width = Math.max(...s.config.vms.map((v) => v.name.length));
  io.out(`smcvisor run: ${s.name}: ${s.config.vms.map((v) => `${v.name} (${v.vcpus} vCPU, ${s.guests.get(v.name)!.kernel ?? `firmware ${s.guests.get(v.name)!.firmware}`})`).join(", ")}`);
  // --record: checked, and the file opened, before the VMs boot (docs/record-replay.md).
  const recorder = openRecorder(flags, path, positional[0]!, io);
  // The dashboard (--ui) starts with the machine, before any VM boots, and closes when the run ends.
  let dashboard: Promise<Dashboard | null> = Promise.resolve(null);
  let report: RunReport;
  try {
    report = await runScenario(s, {
      log: io.err,
      ...(flags.has("quiet") ? {} : { onConsole: (vm: string, line: string) => io.out(`${vm.padEnd(width)} | ${line}`) }),
      ...(recorder ? { observer: recorder } : {}),
      ...(ui !== null
        ? {
            onStart: (m: QemuMachine) => {
              dashboard = startDashboard(m, ui, policyDocument(path), io.err).then(
                (d) => (io.err(`smcvisor run: dashboard at ${d.url}${ui.token !== undefined ? " (with its token: ?token=…)" : ""}`), d),
                (e: unknown) => {
                  for (const q of m.vms.values()) q.fail(`the dashboard could not start: ${e instanceof Error ? e.message : String(e)}`);
                  return null;
                },
              );
            },
          }
        : {}),
    });
  } finally {
    recorder?.close();
    await (await dashboard)?.close();
  }
  const code = finishRun(report, tracePath, flags.has("json"), io);
  if (recorder && !flags.has("json")) {
    io.out(
      recorder.failure !== null
        ? `  record: ${recorder.path}: NOT COMPLETE: cannot write it (${recorder.failure})`
        : `  record: ${recorder.path} (${recorder.bytes} bytes${recorder.limitReached ? ", STOPPED at --record-limit" : ""}; replay with \`smcvisor replay ${recorder.path}\`)`,
    );
  }
  return code;
}

/**
 * After a run: writes the trace and prints the summary (or the JSON report). If the trace cannot be
 * written after all, the summary is still printed and says so, and the exit status is 1.
 */
export function finishRun(report: RunReport, tracePath: string, json: boolean, io: Io): number {
  const traceFailed = writeOutput(tracePath, () => JSON.stringify(toChromeTrace(report.events, report.policyChanges)));
  const ok = report.ok && traceFailed === null;
  if (json) {
    io.out(JSON.stringify({ ok, trace: tracePath, ...(traceFailed !== null ? { traceError: traceFailed } : {}), vms: report.vms.map((v) => ({ name: v.name, state: v.exit.state, reason: v.exit.reason, calls: v.calls, denied: v.denied, errors: v.errors, byService: Object.fromEntries(v.byService), failures: v.failures })) }, null, 2));
    return ok ? 0 : 1;
  }
  io.out("");
  io.out("summary");
  for (const line of summaryLines(report)) io.out(line);
  io.out(
    traceFailed !== null
      ? `  trace: NOT WRITTEN: ${traceFailed}`
      : `  trace: ${tracePath} (${report.events.length} events${report.dropped > 0 ? `, ${report.dropped} oldest dropped` : ""}; open in https://ui.perfetto.dev)`,
  );
  io.out(ok ? "  every VM powered off cleanly and every expectation held" : "  FAILED");
  return ok ? 0 : 1;
}

/** CPU_SUSPEND's wake-up waits in the VM (docs/suspend.md), or null when it had none. */
export function wakeSummary(exit: VmExit): string | null {
  const w = exit.wakes ?? [];
  const sum = (f: (s: (typeof w)[number]) => number) => w.reduce((n, s) => n + f(s), 0);
  const all = sum((s) => s.wakes);
  if (all === 0) return null;
  const samples = w.flatMap((s) => s.samples).sort((a, b) => a - b);
  // QEMU virt's counter runs at 62.5 MHz: 62.5 ticks a microsecond.
  const median = samples.length > 0 ? `; timer wake-up latency median ${Math.round(samples[Math.floor(samples.length / 2)]! / 62.5)} µs over the last ${samples.length}` : "";
  return `suspend wake-ups: ${all} (${sum((s) => s.irq)} by the guest's interrupts, ${sum((s) => s.host)} by the host, ${sum((s) => s.bound)} standby bounds)${median}`;
}

/** The run's summary, a few lines per VM. */
export function summaryLines(report: RunReport): string[] {
  const out: string[] = [];
  // The counts come from the trace ring, which keeps the most recent events only.
  if (report.dropped > 0) out.push(`  (calls counted from the ${report.events.length} most recent trace events; ${report.dropped} older ones were dropped)`);
  for (const v of report.vms) {
    out.push(
      `  ${v.name}: ${v.exit.state} (${v.exit.reason}); ${v.exit.boots > 1 ? `${v.exit.boots} boots, ` : ""}${v.calls} calls, ${v.denied} denied, ${v.errors} handler errors${v.exit.localCalls > 0n ? `, ${v.exit.localCalls} answered in the shim` : ""}${v.exit.aborts > 0n ? `, ${v.exit.aborts} accesses outside its memory refused` : ""}${v.exit.handedOver ? `, vCPUs handed over: ${v.exit.handedOver.length > 0 ? v.exit.handedOver.join(", ") : "none"}` : ""}${v.exit.keptEl2?.length ? ` (vCPU ${v.exit.keptEl2.join(", ")} still owned EL2)` : ""}`,
    );
    if (v.byService.size > 0) out.push(`    by owner: ${[...v.byService].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")}`);
    const w = wakeSummary(v.exit);
    if (w) out.push(`    ${w}`);
    for (const f of v.failures) out.push(`    FAILED: ${f}`);
  }
  return out;
}
