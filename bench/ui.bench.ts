/**
 * The dashboard's cost to the guests (issue 14: Linux boot with the page open ≤ 1.05x without): Debian
 * Linux (2 vCPUs) booting to its first userspace line under smcvisor, without the dashboard, and with it
 * serving a page open in Debian's chromium (headless, playwright-core) that polls the API and tails the
 * trace stream. Each repetition runs both, interleaved; the ratio is paired per repetition (harness.ts).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { ensureLinuxGuest } from "../guests/linux/guest.js";
import { QemuMachine } from "../src/machine/qemu/machine.js";
import { parseConfigText } from "../src/policy/load.js";
import { startDashboard } from "../src/ui/dashboard.js";

const MARKER = "SMCV-GUEST up";
const CHROMIUM = "/usr/bin/chromium";
const SETTLE_MS = 5000;

export interface UiBenchResult {
  readonly boots: { name: string; ms: number[] }[];
  /** CPU seconds the browser's processes used during each boot with the page open: what it took from the guests. */
  readonly browserCpuSeconds: number[];
  readonly ratios: Record<string, number>;
}

const POLICY = 'vms:\n  vm0:\n    vcpus: 2\n    memory: { size: 512MiB }\n    grants:\n      - { name: no-hyp-uid, id: 0x8600FF01, action: deny }\n';

/**
 * CPU seconds (user + system) used so far by this process's descendants that are not QEMU (the browser's
 * processes), from /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
 */
export function browserCpuSeconds(): number {
  const parent = new Map<number, number>(), ticks = new Map<number, number>(), names = new Map<number, string>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, "utf8");
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(")");
    const f = stat.slice(close + 2).split(" ");
    parent.set(Number(d), Number(f[1]));
    ticks.set(Number(d), Number(f[11]) + Number(f[12]));
    names.set(Number(d), stat.slice(stat.indexOf("(") + 1, close));
  }
  let sum = 0;
  for (const [pid, t] of ticks) {
    if (names.get(pid)!.startsWith("qemu")) continue;
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) {
      if (p === process.pid) {
        sum += t;
        break;
      }
    }
  }
  return sum / 100;
}

let lastBrowserCpu = 0;

async function boot(kernel: string, initrd: string, browser: Browser | null): Promise<number> {
  const c = parseConfigText(POLICY);
  if (!c.ok) throw new Error(JSON.stringify(c.errors));
  let ms = 0;
  const m = await QemuMachine.create(c.value, {
    images: new Map([["vm0", { kernel, initrd, cmdline: "console=ttyAMA0 rdinit=/init panic=-1" }]]),
    console: (_vm, line) => {
      if (ms === 0 && line.includes(MARKER)) {
        ms = performance.now() - t0;
        m.vm("vm0").stop("marker");
      }
    },
  });
  const dash = browser ? await startDashboard(m, { port: 0, host: "127.0.0.1" }, POLICY) : null;
  const page = browser && dash ? await browser.newPage({ viewport: { width: 1440, height: 900 } }) : null;
  if (page && dash) {
    await page.goto(dash.url);
    await page.locator("#vms .vm").first().waitFor();
    // The page open, not the page opening: loading it (fonts, first layout, the JIT) costs the browser about
    // a CPU-second, which a boot that starts at once would pay; a user's page is open before the boot.
    await new Promise((r) => setTimeout(r, SETTLE_MS));
  }
  const cpu0 = browserCpuSeconds();
  const t0 = performance.now();
  await m.run(180_000);
  lastBrowserCpu = browserCpuSeconds() - cpu0;
  await page?.close();
  await dash?.close();
  if (ms === 0) throw new Error("Linux did not reach its marker");
  return ms;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function uiBench(opts: { quick: boolean }): Promise<UiBenchResult | null> {
  if (!existsSync(CHROMIUM)) return null;
  const linux = ensureLinuxGuest();
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
  const without: number[] = [], withPage: number[] = [], cpu: number[] = [];
  const withBrowser = async () => {
    withPage.push(await boot(linux.kernel, linux.initrd, browser));
    cpu.push(lastBrowserCpu);
  };
  try {
    // Alternating which goes first, so a machine that speeds up or slows down over the run favours neither.
    for (let r = 0; r < (opts.quick ? 1 : 5); r++) {
      if (r % 2 === 0) {
        without.push(await boot(linux.kernel, linux.initrd, null));
        await withBrowser();
      } else {
        await withBrowser();
        without.push(await boot(linux.kernel, linux.initrd, null));
      }
    }
  } finally {
    await browser.close();
  }
  const paired = median(withPage.map((w, i) => w / without[i]!));
  return {
    boots: [
      { name: "Linux boot to userspace, no dashboard", ms: without },
      { name: "Linux boot to userspace, dashboard open in chromium", ms: withPage },
    ],
    browserCpuSeconds: cpu,
    ratios: {
      "Linux boot with the page open / without (issue 14: <= 1.05x)": paired,
      "browser CPU time / boot time with the page open (share of one core)": median(cpu.map((c, i) => c / (withPage[i]! / 1000))),
    },
  };
}

// `node bin/run-ts.mjs bench/ui.bench.ts [--quick]`: this benchmark alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await uiBench({ quick: process.argv.includes("--quick") });
  console.log(JSON.stringify(r, null, 2));
}
