/**
 * The QEMU backend for the conformance suite: each case boots the bare-metal guest (guests/baremetal) under
 * the EL2 shim with the case's steps as its script, so every call is a real `hvc` or `smc` from EL1.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { emptyReport, encodeScript, GUEST_LOAD, GUEST_SECONDARY_ENTRY, guestBinaryPath, HALT_ACKS_OFFSET, IMAGE_SIZE, parseGuestLine, SCRIPT_ADDRESS, SCRIPT_OFFSET, type ScriptStep } from "../../src/machine/qemu/baremetal.js";
import { QemuMachine } from "../../src/machine/qemu/machine.js";
import { parseConfigText } from "../../src/policy/load.js";
import { CASE_DATA_BASE, CASE_DATA_END, caseConfig, isResultOf, SECONDARY_ENTRY, type Arg, type Backend, type Case, type CaseResult, type MemoryBytes, type Params, type StepResult } from "./case.js";

/** guests/baremetal/guest.c: a step flag, and the register value it replaces with an earlier step's result. */
const STEP_REFS = 4;
const STEP_REF_MARK = 0x5ec0_f000_0000_0000n;
const MAX_REF_STEPS = 64;

/** Where a case's step writes wait in the image until the guest copies them (case.ts Step.write). */
const STAGING = CASE_DATA_BASE + 0x10_0000n;
/** guests/baremetal/guest.c: the step "conduit" that copies x3 bytes from x1 to x2 instead of calling. */
const CONDUIT_COPY = 4;

/** A case as the guest's script: its steps, each write before its call as a copy step. */
interface CaseScript {
  readonly steps: ScriptStep[];
  /** Script indices of copy steps. */
  readonly copies: ReadonlySet<number>;
  /** Script indices of steps that take earlier results (STEP_REFS). */
  readonly refs: ReadonlySet<number>;
  /** The script index of each case step. */
  readonly index: readonly number[];
  /** Bytes the copies take from the image. */
  readonly staged: readonly MemoryBytes[];
}

function caseScript(c: Case, p: Params): CaseScript {
  const index: number[] = [];
  let n = 0;
  for (const s of c.steps) {
    if (s.write) n++;
    index.push(n++);
  }
  const substitute = (a: Arg): bigint => {
    if (isResultOf(a)) {
      const at = index[a.step];
      if (at === undefined || at >= MAX_REF_STEPS || a.reg > 17) throw new Error(`the bare-metal guest keeps the results of its first ${MAX_REF_STEPS} script steps only`);
      return STEP_REF_MARK | (BigInt(at) << 8n) | BigInt(a.reg);
    }
    const v = BigInt(a);
    return (v & 0xffff_fffcn) === SECONDARY_ENTRY ? (v & ~0xffff_ffffn) | GUEST_SECONDARY_ENTRY | (v & 3n) : v;
  };
  const steps: ScriptStep[] = [];
  const copies = new Set<number>(), refs = new Set<number>(), staged: MemoryBytes[] = [];
  let stage = STAGING;
  c.steps.forEach((s, i) => {
    if (s.write) {
      copies.add(steps.length);
      steps.push({ vcpu: s.vcpu, conduit: p.conduit, regs: [0n, stage, s.write.at, BigInt(s.write.bytes.length)] });
      staged.push({ at: stage, bytes: s.write.bytes });
      stage += (BigInt(s.write.bytes.length) + 15n) & ~15n;
    }
    if ((s.args ?? []).some(isResultOf)) refs.add(steps.length);
    const group = race(c, i);
    steps.push({ vcpu: s.vcpu, conduit: p.conduit, regs: [BigInt(s.fid), ...(s.args ?? []).map(substitute)], ...(s.halts ? { halts: true } : {}), ...(group > 1 ? { group } : {}) });
  });
  return { steps, copies, refs, index, staged };
}

/** The size of the race group that starts at step i (1: no race, or not its first step). */
function race(c: Case, i: number): number {
  const id = c.steps[i]!.race;
  if (id === undefined || (i > 0 && c.steps[i - 1]!.race === id)) return 1;
  let j = i + 1;
  while (j < c.steps.length && c.steps[j]!.race === id) j++;
  return j - i;
}

/** The case's steps as a script; consecutive steps of one race form a group issued at the same moment. */
export function scriptFor(c: Case, p: Params): ScriptStep[] {
  return caseScript(c, p).steps;
}

/**
 * The guest, its script and the case's memory as one image: the guest's own writeScriptImage, plus the
 * STEP_REFS flag on steps that take earlier results, copy steps, and the case's bytes at their addresses
 * (which the image covers: CASE_DATA_BASE..CASE_DATA_END).
 */
function writeCaseImage(path: string, c: Case, p: Params, cs: CaseScript): void {
  const script = encodeScript(cs.steps, 0, { hostAcksHalts: true });
  const header = encodeScript([]).length;
  const stepSize = encodeScript([{ vcpu: 0, conduit: "hvc", regs: [] }]).length - header;
  const view = new DataView(script.buffer, script.byteOffset, script.byteLength);
  for (const i of cs.refs) {
    const flags = header + i * stepSize + 8;
    view.setUint32(flags, view.getUint32(flags, true) | STEP_REFS, true);
  }
  for (const i of cs.copies) view.setUint32(header + i * stepSize + 4, CONDUIT_COPY, true);
  const data = [...(c.memory ?? []), ...cs.staged];
  const end = data.reduce((e, w) => {
    if (w.at < CASE_DATA_BASE || w.at + BigInt(w.bytes.length) > CASE_DATA_END) throw new Error(`case memory at 0x${w.at.toString(16)} is outside the guest image's data area`);
    return Math.max(e, Number(w.at - GUEST_LOAD) + w.bytes.length);
  }, SCRIPT_OFFSET + script.length);
  const bin = readFileSync(guestBinaryPath(p.aarch32));
  if (bin.length > SCRIPT_OFFSET || SCRIPT_OFFSET + script.length > Number(CASE_DATA_BASE - GUEST_LOAD) || end > IMAGE_SIZE) throw new Error("the guest, its script and the case's memory do not fit the image");
  const image = new Uint8Array(end);
  image.set(bin);
  image.set(script, SCRIPT_OFFSET);
  for (const w of data) image.set(w.bytes, Number(w.at - GUEST_LOAD));
  writeFileSync(path, image);
}

export interface QemuRunInfo {
  /** The console, for failure messages. */
  readonly console: string[];
}

export const qemuBackend: Backend & { lastRun?: QemuRunInfo } = {
  name: "QEMU",
  capabilities: new Set(["aarch32", "wake", "system-events", "entropy-budget", "entry-registers"]),
  async run(c: Case, p: Params): Promise<CaseResult> {
    const parsed = parseConfigText(JSON.stringify(caseConfig(c, p)), "json");
    if (!parsed.ok) throw new Error(`case config: ${JSON.stringify(parsed.errors)}`);
    const dir = mkdtempSync(join(tmpdir(), "smcvisor-case-"));
    const image = join(dir, "guest.img");
    const cs = caseScript(c, p);
    writeCaseImage(image, c, p, cs);
    let memoryAfter: (Uint8Array | null)[] = (c.memoryAfter ?? []).map(() => null);
    const report = emptyReport();
    const consoleLines: string[] = [];
    let reset = false;
    let halts = 0n;
    // A step with wakeFirst: the host's wake-up event for that vCPU once the script step before it is done
    // (reported, or for a call that does not return, taken by the hypervisor).
    const wakeAfter = new Map<number, number>();
    c.steps.forEach((s, k) => {
      if (s.wakeFirst !== undefined) wakeAfter.set(cs.index[k]! - 1, s.wakeFirst);
    });
    const haltSteps = cs.steps.flatMap((s, i) => (s.halts ? [i] : []));
    const woken = new Set<number>();
    let machine: QemuMachine | null = null;
    const wakeAfterStep = (i: number | undefined) => {
      const vcpu = i === undefined ? undefined : wakeAfter.get(i);
      if (vcpu === undefined || woken.has(i!)) return;
      woken.add(i!);
      machine?.vm("vm0").wake(vcpu);
    };
    try {
      const m = (machine = await QemuMachine.create(parsed.value, {
        images: new Map([["vm0", { kernel: image }]]),
        ...(c.entropyBudget !== undefined ? { entropyBudget: c.entropyBudget } : {}),
        console: (_vm, line) => {
          consoleLines.push(line);
          const stepLine = /^SMCV-STEP (\d+) /.exec(line.trim());
          if (parseGuestLine(line, report) && stepLine) wakeAfterStep(Number(stepLine[1]));
          if (report.done) {
            // The RAM goes with the VM: read what the case checks while the guest idles after its script.
            memoryAfter = (c.memoryAfter ?? []).map((e) => m.vm("vm0").memory.read(e.at, e.bytes.length));
            m.vm("vm0").stop("script done");
          }
        },
        // The guest waits for this count before the step after a call that does not return.
        onHalt: () => {
          const word = new Uint8Array(8);
          new DataView(word.buffer).setBigUint64(0, ++halts, true);
          m.vm("vm0").memory.write(SCRIPT_ADDRESS + BigInt(HALT_ACKS_OFFSET), word);
          wakeAfterStep(haltSteps[Number(halts) - 1]);
        },
        onReset: () => {
          reset = true;
          m.vm("vm0").stop("reset");
        },
      }));
      const [exit] = await m.run(30_000);
      if (exit!.state === "failed") throw new Error(`${exit!.reason}\n${consoleLines.join("\n")}`);
      const steps: StepResult[] = c.steps.map((_s, k) => {
        const i = cs.index[k]!;
        if (report.halts.has(i)) return { regs: [], halted: true };
        const regs = report.steps.get(i);
        if (!regs) throw new Error(`step ${i} did not report (VM ${exit!.state}: ${exit!.reason})\n${consoleLines.join("\n")}`);
        return { regs, halted: false };
      });
      const vcpus = parsed.value.vms[0]!.vcpus;
      const starts = Array.from({ length: vcpus }, (_, i) => report.entries.filter((e) => e.cpu === i).length);
      const entryContext = Array.from({ length: vcpus }, (_, i) => report.entries.filter((e) => e.cpu === i).at(-1)?.x0 ?? 0n);
      const vmState = exit!.state === "off" ? "off" : reset ? "reset" : "running";
      return { steps, starts, entryContext, vmState, memoryAfter };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
