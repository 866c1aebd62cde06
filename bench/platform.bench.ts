/**
 * Platform benchmarks (docs/performance.md): the same bare-metal loop of N `hvc` PSCI_VERSION calls
 * from EL1 under (a) QEMU's built-in PSCI, (b) the shim answering from its fast table with no host round
 * trip (the null trap: the limit of this design), (c) smcvisor's full path (shim → mailbox → Node router →
 * back); two C round trips between host processes over the channel's notification mechanism
 * (bench/native/pingpong.c: the doorbell socket alone, and the mailbox protocol); and Debian Linux's boot
 * to its first userspace line under smcvisor against QEMU's built-in PSCI. Times come from the guest's own
 * counter (CNTVCT_EL0) or the host's clock, as ratios in one run; the cases are interleaved per repetition.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ensureLinuxGuest } from "../guests/linux/guest.js";
import { emptyReport, parseGuestLine, writeScriptImage } from "../src/machine/qemu/baremetal.js";
import { QemuMachine } from "../src/machine/qemu/machine.js";
import type { FastAnswer } from "../src/machine/qemu/qemu-vm.js";
import { runBuiltin } from "../src/machine/qemu/builtin.js";
import { parseConfigText } from "../src/policy/load.js";

const PSCI_VERSION = 0x8400_0000n;
const MARKER = "SMCV-GUEST up";

export interface PlatformResult {
  readonly loops: { name: string; calls: number; nsPerCall: number }[];
  readonly boots: { name: string; ms: number[] }[];
  readonly ratios: Record<string, number>;
}

function config(vcpus: number, mem = "256MiB") {
  const c = parseConfigText(`vms:\n  vm0:\n    vcpus: ${vcpus}\n    memory: { size: ${mem} }\n`);
  if (!c.ok) throw new Error(JSON.stringify(c.errors));
  return c.value;
}

/** One loop under smcvisor; `fast` answers PSCI_VERSION in the shim. */
async function smcvisorLoop(image: string, fast: boolean): Promise<number> {
  const report = emptyReport();
  const fastTable: FastAnswer[] = fast ? [{ fid: Number(PSCI_VERSION), value: 0x1_0001n, hvc: true, smc: true }] : [];
  const m = await QemuMachine.create(config(1), {
    images: new Map([["vm0", { kernel: image }]]),
    fastTable,
    console: (_vm, line) => {
      if (parseGuestLine(line, report) && report.done) m.vm("vm0").stop("done");
    },
  });
  await m.run(300_000);
  if (!report.loop) throw new Error(`the loop did not finish: ${report.errors.join("; ")}`);
  return (report.loop.ticks / report.loop.freq / report.loop.calls) * 1e9;
}

async function builtinLoop(image: string): Promise<number> {
  const report = emptyReport();
  const { lines } = await runBuiltin(["-smp", "1", "-m", "256M", "-kernel", image], {
    stopWhen: (l) => {
      parseGuestLine(l, report);
      return report.done;
    },
  });
  if (!report.loop) throw new Error(`the loop did not finish under QEMU's PSCI: ${lines.slice(-3).join(" / ")}`);
  return (report.loop.ticks / report.loop.freq / report.loop.calls) * 1e9;
}

async function smcvisorBoot(kernel: string, initrd: string): Promise<number> {
  let ms = 0;
  const t0 = performance.now();
  const m = await QemuMachine.create(config(2, "512MiB"), {
    images: new Map([["vm0", { kernel, initrd, cmdline: "console=ttyAMA0 rdinit=/init panic=-1" }]]),
    console: (_vm, line) => {
      if (ms === 0 && line.includes(MARKER)) {
        ms = performance.now() - t0;
        m.vm("vm0").stop("marker");
      }
    },
  });
  await m.run(120_000);
  if (ms === 0) throw new Error("Linux did not reach its marker under smcvisor");
  return ms;
}

async function builtinBoot(kernel: string, initrd: string): Promise<number> {
  const { ms, lines } = await runBuiltin(["-smp", "2", "-m", "512M", "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyAMA0 rdinit=/init panic=-1"], { stopWhen: (l) => l.includes(MARKER) });
  if (!lines.some((l) => l.includes(MARKER))) throw new Error("Linux did not reach its marker under QEMU's PSCI");
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** bench/native/pingpong.c, built with the host's C compiler into build/bench when missing or older than its source. */
function pingpong(): string {
  const src = join(import.meta.dirname, "native", "pingpong.c");
  const out = join(import.meta.dirname, "..", "build", "bench", "pingpong");
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(dirname(out), { recursive: true });
    execFileSync("cc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", out, src]);
  }
  return out;
}

/** ns per round trip of the C baseline `mode`. */
function cPingPong(mode: "socket" | "mailbox", n: number): number {
  const [, ns] = execFileSync(pingpong(), [mode, String(n)], { encoding: "utf8" }).trim().split(" ");
  return Number(ns);
}

export async function platformBench(opts: { quick: boolean }): Promise<PlatformResult> {
  const dir = mkdtempSync(join(tmpdir(), "smcvisor-bench-"));
  try {
    const nFast = opts.quick ? 200_000 : 1_000_000;
    const nSlow = opts.quick ? 5_000 : 20_000;
    const img = (n: number) => {
      const p = join(dir, `loop-${n}.img`);
      writeScriptImage(p, [{ vcpu: 0, conduit: "hvc", regs: [PSCI_VERSION] }], n);
      return p;
    };
    const fastImg = img(nFast), slowImg = img(nSlow);
    const reps = opts.quick ? 1 : 3;
    const a: number[] = [], b: number[] = [], c: number[] = [], sock: number[] = [], mbox: number[] = [];
    for (let r = 0; r < reps; r++) {
      a.push(await builtinLoop(fastImg));
      b.push(await smcvisorLoop(fastImg, true));
      c.push(await smcvisorLoop(slowImg, false));
      sock.push(cPingPong("socket", nSlow));
      mbox.push(cPingPong("mailbox", nSlow * 5));
    }
    const linux = ensureLinuxGuest();
    const bootReps = opts.quick ? 1 : 3;
    const bq: number[] = [], bs: number[] = [];
    for (let r = 0; r < bootReps; r++) {
      bq.push(await builtinBoot(linux.kernel, linux.initrd));
      bs.push(await smcvisorBoot(linux.kernel, linux.initrd));
    }
    const loops = [
      { name: "(a) QEMU built-in PSCI, hvc at EL1", calls: nFast, nsPerCall: median(a) },
      { name: "(b) smcvisor shim fast table (null trap)", calls: nFast, nsPerCall: median(b) },
      { name: "(c) smcvisor full path (shim → Node → shim)", calls: nSlow, nsPerCall: median(c) },
      { name: "C ping-pong between host processes, doorbell socket only", calls: nSlow, nsPerCall: median(sock) },
      { name: "C ping-pong between host processes, the mailbox protocol", calls: nSlow * 5, nsPerCall: median(mbox) },
    ];
    return {
      loops,
      boots: [
        { name: "Linux boot to userspace, QEMU built-in PSCI", ms: bq },
        { name: "Linux boot to userspace, smcvisor", ms: bs },
      ],
      ratios: {
        "null trap / QEMU built-in": median(b) / median(a),
        "full path / QEMU built-in": median(c) / median(a),
        "full path / null trap": median(c) / median(b),
        "full path / C socket ping-pong (aim: 2x or less)": median(c.map((x, i) => x / sock[i]!)),
        "full path / C mailbox ping-pong": median(c.map((x, i) => x / mbox[i]!)),
        "Linux boot smcvisor / built-in": median(bs) / median(bq),
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
