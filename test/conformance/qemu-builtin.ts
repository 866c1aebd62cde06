/**
 * The peer backend: the same bare-metal guest and scripts under QEMU's own built-in PSCI (`-M virt`
 * without virtualization: the guest runs at EL1 and QEMU answers its HVCs itself; no smcvisor, no shim).
 * QEMU's PSCI is version 1.1 over HVC with no SMCCC_VERSION, TRNG or PV time, so `smcvisor conform` shows
 * where the two differ and which one the specification supports.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emptyReport, parseGuestLine, writeScriptImage } from "../../src/machine/qemu/baremetal.js";
import { runBuiltin } from "../../src/machine/qemu/builtin.js";
import { parseConfigText } from "../../src/policy/load.js";
import type { Backend, Case, CaseResult, Params, StepResult } from "./case.js";
import { scriptFor } from "./qemu.js";

export const qemuBuiltinBackend: Backend = {
  name: "qemu-builtin",
  capabilities: new Set(["system-events", "entry-registers"]),
  async run(c: Case, p: Params): Promise<CaseResult> {
    const parsed = parseConfigText(JSON.stringify({ vms: { vm0: { ...c.vm } } }), "json");
    if (!parsed.ok) throw new Error(`case config: ${JSON.stringify(parsed.errors)}`);
    const vm = parsed.value.vms[0]!;
    const dir = mkdtempSync(join(tmpdir(), "smcvisor-peer-"));
    const image = join(dir, "guest.img");
    writeScriptImage(image, scriptFor(c, p));
    const report = emptyReport();
    let reset = false;
    let run;
    try {
      run = await runBuiltin(["-smp", String(vm.vcpus), "-m", `${vm.memory.size >> 20n}M`, "-kernel", image], {
        stopWhen: (line) => {
          parseGuestLine(line, report);
          if (report.boots > 1) reset = true;
          return reset || report.done;
        },
        timeoutMs: 5000,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // A guest still making calls when the time is up is "running".
    const state: CaseResult["vmState"] = run.exitedOnItsOwn ? "off" : reset ? "reset" : "running";
    const steps: StepResult[] = c.steps.map((_s, i) => (report.halts.has(i) ? { regs: [], halted: true } : { regs: report.steps.get(i) ?? [], halted: false }));
    const starts = Array.from({ length: vm.vcpus }, (_, i) => report.entries.filter((e) => e.cpu === i).length);
    const entryContext = Array.from({ length: vm.vcpus }, (_, i) => report.entries.filter((e) => e.cpu === i).at(-1)?.x0 ?? 0n);
    return { steps, starts, entryContext, vmState: state };
  },
};
