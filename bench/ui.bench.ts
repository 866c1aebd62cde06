/**
 * The dashboard's cost to the guests (issue 14: Linux boot with the page open ≤ 1.05x without): Debian
 * Linux (2 vCPUs) booting to its first userspace line under smcvisor, without the dashboard, and with it
 * serving a page open in Debian's chromium (headless, playwright-core) that polls the API and tails the
 * trace stream. Each repetition runs both, interleaved; the ratio is paired per repetition (harness.ts).
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { ensureLinuxGuest } from "../guests/linux/guest.js";
import { QemuMachine } from "../src/machine/qemu/machine.js";
import { parseConfigText } from "../src/policy/load.js";
import { startDashboard } from "../src/ui/dashboard.js";

const MARKER = "SMCV-GUEST up";
const CHROMIUM = "/usr/bin/chromium";

export interface UiBenchResult {
  readonly boots: { name: string; ms: number[] }[];
  readonly ratios: Record<string, number>;
}

const POLICY = 'vms:\n  vm0:\n    vcpus: 2\n    memory: { size: 512MiB }\n    grants:\n      - { name: no-hyp-uid, id: 0x8600FF01, action: deny }\n';

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
  }
  const t0 = performance.now();
  await m.run(180_000);
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
  const without: number[] = [], withPage: number[] = [];
  try {
    // Alternating which goes first, so a machine that speeds up or slows down over the run favours neither.
    for (let r = 0; r < (opts.quick ? 1 : 5); r++) {
      if (r % 2 === 0) {
        without.push(await boot(linux.kernel, linux.initrd, null));
        withPage.push(await boot(linux.kernel, linux.initrd, browser));
      } else {
        withPage.push(await boot(linux.kernel, linux.initrd, browser));
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
    ratios: { "Linux boot with the page open / without (issue 14: <= 1.05x)": paired },
  };
}

// `node bin/run-ts.mjs bench/ui.bench.ts [--quick]`: this benchmark alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await uiBench({ quick: process.argv.includes("--quick") });
  console.log(JSON.stringify(r, null, 2));
}
