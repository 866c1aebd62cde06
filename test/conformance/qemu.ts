/**
 * The QEMU backend for the conformance suite: each case boots the bare-metal guest (guests/baremetal) under
 * the EL2 shim with the case's steps as its script, so every call is a real `hvc` or `smc` from EL1.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emptyReport, GUEST_SECONDARY_ENTRY, HALT_ACKS_OFFSET, parseGuestLine, SCRIPT_ADDRESS, writeScriptImage, type ScriptStep } from "../../src/machine/qemu/baremetal.js";
import { QemuMachine } from "../../src/machine/qemu/machine.js";
import { parseConfigText } from "../../src/policy/load.js";
import { SECONDARY_ENTRY, type Backend, type Case, type CaseResult, type Params, type StepResult } from "./case.js";

function substitute(a: bigint | number): bigint {
  const v = BigInt(a);
  return (v & 0xffff_fffcn) === SECONDARY_ENTRY ? (v & ~0xffff_ffffn) | GUEST_SECONDARY_ENTRY | (v & 3n) : v;
}

/** The case's steps as a script; consecutive steps of one race form a group issued at the same moment. */
export function scriptFor(c: Case, p: Params): ScriptStep[] {
  const steps = c.steps.map((s): ScriptStep => ({ vcpu: s.vcpu, conduit: p.conduit, regs: [BigInt(s.fid), ...(s.args ?? []).map(substitute)], ...(s.halts ? { halts: true } : {}) }));
  const out = [...steps];
  for (let i = 0; i < c.steps.length; ) {
    const race = c.steps[i]!.race;
    let j = i + 1;
    while (race !== undefined && j < c.steps.length && c.steps[j]!.race === race) j++;
    if (j - i > 1) out[i] = { ...out[i]!, group: j - i };
    i = j;
  }
  return out;
}

export interface QemuRunInfo {
  /** The console, for failure messages. */
  readonly console: string[];
}

export const qemuBackend: Backend & { lastRun?: QemuRunInfo } = {
  name: "QEMU",
  capabilities: new Set(["aarch32", "system-events", "entropy-budget", "entry-registers"]),
  async run(c: Case, p: Params): Promise<CaseResult> {
    const vm = { aarch32: p.aarch32, conduit: p.conduit, ...c.vm, services: { psci: { version: p.psci }, ...((c.vm?.services as object) ?? {}) } };
    const parsed = parseConfigText(JSON.stringify({ vms: { vm0: vm } }), "json");
    if (!parsed.ok) throw new Error(`case config: ${JSON.stringify(parsed.errors)}`);
    const dir = mkdtempSync(join(tmpdir(), "smcvisor-case-"));
    const image = join(dir, "guest.img");
    writeScriptImage(image, scriptFor(c, p), 0, { hostAcksHalts: true, aarch32: p.aarch32 });
    const report = emptyReport();
    const consoleLines: string[] = [];
    let reset = false;
    let halts = 0n;
    try {
      const m = await QemuMachine.create(parsed.value, {
        images: new Map([["vm0", { kernel: image }]]),
        ...(c.entropyBudget !== undefined ? { entropyBudget: c.entropyBudget } : {}),
        console: (_vm, line) => {
          consoleLines.push(line);
          if (parseGuestLine(line, report) && report.done) m.vm("vm0").stop("script done");
        },
        // The guest waits for this count before the step after a call that does not return.
        onHalt: () => {
          const word = new Uint8Array(8);
          new DataView(word.buffer).setBigUint64(0, ++halts, true);
          m.vm("vm0").memory.write(SCRIPT_ADDRESS + BigInt(HALT_ACKS_OFFSET), word);
        },
        onReset: () => {
          reset = true;
          m.vm("vm0").stop("reset");
        },
      });
      const [exit] = await m.run(30_000);
      if (exit!.state === "failed") throw new Error(`${exit!.reason}\n${consoleLines.join("\n")}`);
      const steps: StepResult[] = c.steps.map((_s, i) => {
        if (report.halts.has(i)) return { regs: [], halted: true };
        const regs = report.steps.get(i);
        if (!regs) throw new Error(`step ${i} did not report (VM ${exit!.state}: ${exit!.reason})\n${consoleLines.join("\n")}`);
        return { regs, halted: false };
      });
      const vcpus = parsed.value.vms[0]!.vcpus;
      const starts = Array.from({ length: vcpus }, (_, i) => report.entries.filter((e) => e.cpu === i).length);
      const entryContext = Array.from({ length: vcpus }, (_, i) => report.entries.filter((e) => e.cpu === i).at(-1)?.x0 ?? 0n);
      const vmState = exit!.state === "off" ? "off" : reset ? "reset" : "running";
      return { steps, starts, entryContext, vmState };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
