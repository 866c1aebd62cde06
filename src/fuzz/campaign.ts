/**
 * A fuzzing campaign: random and mutated calls from every VM of a config, through the in-process core
 * (the same Hypervisor and scripted machine `smcvisor call` and `demo` use), with the isolation invariants
 * checked after every call (docs/fuzz.md):
 *
 * - exception: nothing a guest does makes the core throw;
 * - registers: nothing beyond the call's results changes (DEN0028 §2.6-2.8, per the VM's SMCCC version);
 * - memory: no VM's RAM is read, written or viewed during another VM's call, and no page a VM handed out
 *   as a view changes while other VMs run;
 * - held-state: no VM's vCPUs (registers, power), OP-TEE guest, mediator state, SiP nodes or physical CPUs
 *   change while other VMs run;
 * - quota: the mediator's and OP-TEE's per-VM limits hold, the hypervisor's heap holds nothing when no
 *   call is in flight, and the error log stays within its rate limit;
 * - trace: every call is one event, and each VM's counts are the calls it made;
 * - answer-cache: a second machine with the answer cache off gives every call the same outcome, registers,
 *   events and counts.
 *
 * Calls come in bursts of one VM (as guests make them); what other VMs hold is compared when their next
 * burst starts (and at the end), against a copy taken when their last one ended. A difference found that way
 * names a window of calls; the campaign then replays the seed with the comparison after every call of that
 * window, and reports the exact call. Everything is deterministic for a config and a seed (the model's
 * entropy is seeded, and no clock reaches the core), so `seed` and `calls` replay a campaign.
 */
import type { HypervisorOptions } from "../hypervisor/hypervisor.js";
import { ScriptedMachine, type ScriptedVm } from "../machine/scripted/machine.js";
import type { Config } from "../policy/load.js";
import { OUTCOME_ERROR, OUTCOME_HALT } from "../router/outcome.js";
import { esrFor } from "../smccc/esr.js";
import { hex32 } from "../smccc/fid.js";
import { OUTCOME_NAMES } from "../trace/ring.js";
import { CallGenerator, FuzzGuest, type CallPlan, type GuestRead, type GuestWrite } from "./guest.js";
import { firstDifference, heldState, Quotas, registerProblem } from "./invariants.js";
import { MemoryWatch, WatchedRam } from "./memory-watch.js";
import { Random } from "./random.js";

export type ViolationKind = "exception" | "registers" | "memory" | "held-state" | "quota" | "trace" | "answer-cache";

export interface Violation {
  readonly kind: ViolationKind;
  /** Index (from 0) of the call after which it was found; the call that caused it when `exact`. */
  readonly call: number;
  /** Whether `call` is known to be the call that caused it (else the earliest candidate is `since`). */
  readonly exact: boolean;
  readonly since: number;
  /** The call at `call`: its VM, vCPU, function ID and conduit. */
  readonly vm: string;
  readonly vcpu: number;
  readonly fid: number;
  readonly conduit: string;
  readonly message: string;
}

export interface CampaignStats {
  /** Calls per VM. */
  readonly perVm: Record<string, number>;
  /** Calls per outcome (return, undef, skip, halt, bad-trap, error). */
  readonly outcomes: Record<string, number>;
  /** Restarts and wake-ups the host gave VMs whose vCPUs were all off or suspended. */
  hostActions: number;
  /** Calls a handler failed (the guest got -1 and the failure was logged): contained, but worth reading. */
  handlerErrors: number;
  firstHandlerError: string | null;
  /** Pages of VM RAM handed out as views (compared after other VMs' calls). */
  exposedPages: number;
  /** Lines the hypervisor's rate-limited error log let through. */
  logLines: number;
  /** The OP-TEE driver: sessions opened, messages OP-TEE completed with success, RPCs answered. */
  optee: { sessions: number; succeeded: number; rpcs: number };
}

export interface CampaignOptions {
  readonly config: Config;
  readonly calls: number;
  readonly seed: number;
  /** Where relative delegate paths are resolved. */
  readonly cwd: string;
  /** Compare with a machine whose answer cache is off (default true). */
  readonly reference?: boolean;
  /**
   * Check the invariants (default true). Without: the same calls, and nothing else (no watch, no copies, no
   * reference machine): the baseline the benchmark measures the checks against.
   */
  readonly checks?: boolean;
  /** Find the exact call of a violation noticed later (default true). */
  readonly locate?: boolean;
  /** Compare what every VM holds after every call from this call on (default: at burst boundaries only). */
  readonly eagerFrom?: number;
  /** Tests: options for both machines (extra services, say). */
  readonly hypervisor?: HypervisorOptions;
  /** Tests: change a machine after it is built (a deliberately broken port or handler). */
  readonly tamper?: (machine: ScriptedMachine, role: "subject" | "reference") => void;
  /** Milliseconds, for the rate (default performance.now). */
  readonly now?: () => number;
  /** Called every `progressEvery` calls with the calls done. */
  readonly onProgress?: (calls: number) => void;
  readonly progressEvery?: number;
}

export interface CampaignResult {
  readonly seed: number;
  /** Calls made (fewer than asked when a violation stopped the campaign). */
  readonly calls: number;
  readonly elapsedMs: number;
  readonly violation: Violation | null;
  readonly stats: CampaignStats;
}

/** Calls between the checks that read the whole trace (per-VM counts, cache on/off counters). */
const CHECKPOINT = 1 << 16;
const WORDS = 62;

interface Vm {
  readonly index: number;
  readonly name: string;
  readonly guest: FuzzGuest;
  readonly subject: ScriptedVm;
  readonly reference: ScriptedVm | null;
  readonly ram: WatchedRam;
  /** The reference machine's RAM (never watched). */
  readonly refRam: { write(ipa: bigint, data: Uint8Array): boolean } | null;
  readonly callWords: Uint32Array[];
  readonly refCallWords: Uint32Array[];
  readonly conduit: "smc" | "hvc";
  /** Registers of every vCPU, and what the VM holds, when its last burst ended; `since` is the next call. */
  readonly regs: Uint32Array;
  held: number[];
  scratch: number[];
  snapshotValid: boolean;
  since: number;
  calls: number;
}

/** Runs a campaign; on a violation found after the fact, replays it to name the exact call. */
export async function runCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  const first = await runOnce(opts, opts.calls, opts.eagerFrom ?? Infinity);
  const elapsedMs = first.elapsedMs;
  let violation = first.violation;
  if (violation !== null && !violation.exact && (opts.locate ?? true)) {
    const replay = await runOnce(opts, violation.call + 1, violation.since);
    if (replay.violation !== null && replay.violation.exact) violation = replay.violation;
  }
  return { seed: opts.seed, calls: first.calls, elapsedMs, violation, stats: first.stats };
}

/** One run of the campaign on fresh machines; its time is the calls' (machines built, delegates loaded before). */
async function runOnce(opts: CampaignOptions, limit: number, eagerFrom: number): Promise<{ calls: number; violation: Violation | null; stats: CampaignStats; elapsedMs: number }> {
  const { config } = opts;
  let logLines = 0;
  const base: HypervisorOptions = { ...opts.hypervisor, log: () => logLines++ };
  const subjectMachine = await ScriptedMachine.create(config, { ...base, cwd: opts.cwd });
  let referenceMachine: ScriptedMachine | null = null;
  try {
    if ((opts.reference ?? true) && (opts.checks ?? true)) referenceMachine = await ScriptedMachine.create(config, { ...opts.hypervisor, answerCache: false, cwd: opts.cwd });
    opts.tamper?.(subjectMachine, "subject");
    if (referenceMachine) opts.tamper?.(referenceMachine, "reference");
    const now = opts.now ?? (() => performance.now());
    const t0 = now();
    const r = await drive(opts, subjectMachine, referenceMachine, limit, eagerFrom, () => logLines);
    return { ...r, elapsedMs: now() - t0 };
  } finally {
    subjectMachine.close();
    referenceMachine?.close();
  }
}

async function drive(opts: CampaignOptions, subject: ScriptedMachine, reference: ScriptedMachine | null, limit: number, eagerFrom: number, logLines: () => number): Promise<{ calls: number; violation: Violation | null; stats: CampaignStats }> {
  const { config } = opts;
  const hv = subject.hypervisor;
  const rng = new Random(opts.seed);
  const checking = opts.checks ?? true;
  const watch = new MemoryWatch();
  const vms: Vm[] = config.vms.map((c, index) => {
    const s = subject.vm(c.name);
    const r = reference?.vm(c.name) ?? null;
    return {
      index,
      name: c.name,
      guest: new FuzzGuest(c, hv.router.claimsFor(c)),
      subject: s,
      reference: r,
      ram: checking ? watch.watch(c.name, s.memory) : new WatchedRam(c.name, index, s.memory),
      refRam: r?.memory ?? null,
      callWords: s.vcpus.map((v) => v.words.subarray(0, 36)),
      refCallWords: r?.vcpus.map((v) => v.words.subarray(0, 36)) ?? [],
      conduit: c.conduit,
      regs: new Uint32Array(c.vcpus * WORDS),
      held: [],
      scratch: [],
      snapshotValid: false,
      since: 0,
      calls: 0,
    };
  });
  if (checking) watch.watchHeap(hv.heap);
  const gen = new CallGenerator(config, vms.map((v) => v.guest), rng);
  // What the quotas bound lives in the mediators and the secure world, and changes only when the secure
  // world is called (every mediator call to OP-TEE goes through the router's monitor, as the hypervisor's own
  // call): the quotas are checked after each call that reached it, and at every checkpoint.
  let entered = true;
  const quotas = new Quotas(hv, config.vms);
  const monitor = hv.router.monitor;
  if (checking) hv.router.monitor = { handle: (call, res, origin) => ((entered = true), monitor.handle(call, res, origin)) };
  const stats: CampaignStats = { perVm: Object.fromEntries(vms.map((v) => [v.name, 0])), outcomes: Object.fromEntries(OUTCOME_NAMES.map((n) => [n, 0])), hostActions: 0, handlerErrors: 0, firstHandlerError: null, exposedPages: 0, logLines: 0, optee: gen.optee };
  const byGuest = new Map(vms.map((v) => [v.guest, v]));
  // The guest's own accesses to its RAM: through the port's own methods, not the watched ones.
  const write: GuestWrite = (g, ipa, bytes) => {
    const vm = byGuest.get(g)!;
    vm.ram.raw.write(ipa, bytes);
    vm.refRam?.write(ipa, bytes);
  };
  const read: GuestRead = (g, ipa, length) => byGuest.get(g)!.ram.raw.read(ipa, length);
  const plan: CallPlan = { conduit: "smc", aarch32: false, imm: 0, cond: -1, nzcv: 0, kind: 0, argIpa: 0n, cmd: -1, thread: -1, ta: -1 };
  const before = new Uint32Array(WORDS);
  const trace = subject.trace;
  const refTrace = reference?.trace ?? null;

  let current: Vm | null = null;
  let burst = 0;
  let vcpu = 0;
  let fid = 0;
  let i = 0;
  /** A violation of the call just made. */
  const found = (kind: ViolationKind, message: string, exact = true, since = i): Violation => ({ kind, call: i, exact, since, vm: current?.name ?? "", vcpu, fid, conduit: plan.conduit, message });

  /** What `vm` holds now against its copy from the end of its last burst: the problem, or null. */
  const compareHeld = (vm: Vm): { kind: ViolationKind; message: string } | null => {
    if (!vm.snapshotValid) return null;
    const changed = vm.ram.compare();
    if (changed !== null) return { kind: "memory", message: `${vm.name}'s RAM at IPA 0x${changed.toString(16)} (a page it had handed out as a view) changed while other VMs ran` };
    const state = heldState(hv, vm.subject, vm.scratch);
    const d = firstDifference(vm.held, state);
    if (d >= 0) return { kind: "held-state", message: `what ${vm.name} holds outside its RAM changed while other VMs ran (item ${d} of its vCPU power states, OP-TEE guest, mediator counters, SiP nodes and physical CPUs: ${vm.held[d]} → ${state[d]})` };
    for (let v = 0; v < vm.subject.vcpus.length; v++) {
      const w = vm.subject.vcpus[v]!.words;
      for (let k = 0; k < WORDS; k++) {
        if (w[k] !== vm.regs[v * WORDS + k]) return { kind: "held-state", message: `${vm.name} vCPU ${v}: x${k >> 1} changed while other VMs ran` };
      }
    }
    return null;
  };
  /** A difference noticed now, caused by one of the calls since the oldest copy: replayed to find which. */
  const noticed = (p: { kind: ViolationKind; message: string }, call: number): Violation => {
    const since = Math.min(...vms.filter((v) => v.snapshotValid).map((v) => v.since));
    return { kind: p.kind, call, exact: call === since, since, vm: "", vcpu: -1, fid: 0, conduit: "", message: p.message };
  };
  const snapshot = (vm: Vm): void => {
    vm.ram.snapshot();
    const t = vm.held;
    vm.held = heldState(hv, vm.subject, vm.scratch);
    vm.scratch = t;
    vm.subject.vcpus.forEach((v, n) => vm.regs.set(v.words, n * WORDS));
    vm.snapshotValid = true;
    vm.since = i + 1;
  };
  const countsProblem = (): string | null => {
    const counters = trace.counters();
    for (const vm of vms) {
      let n = 0;
      for (const c of counters) if (c.key.startsWith(`${vm.name}|`) && c.key !== `${vm.name}|refused`) n += c.calls;
      if (n !== vm.calls) return `the trace counts ${n} calls for ${vm.name}; it made ${vm.calls}`;
    }
    if (refTrace !== null) {
      const a = JSON.stringify(counters), b = JSON.stringify(refTrace.counters());
      if (a !== b) return `the trace's counters differ with the answer cache off: ${diffCounters(counters, refTrace.counters())}`;
    }
    const lines = logLines();
    if (lines > 1025 * (6 + Math.ceil(Math.log2(i + 2)))) return `the error log let ${lines} lines through in ${i + 1} calls`;
    return null;
  };
  /** The host restarts a VM whose vCPUs are all off, or wakes a suspended vCPU (a backend's interrupt). */
  const hostAction = async (vm: Vm): Promise<void> => {
    stats.hostActions++;
    watch.actor = vm.index;
    const suspended = vm.subject.vcpus.findIndex((v) => v.power === "suspended");
    if (suspended >= 0) {
      vm.subject.wake(suspended);
      vm.reference?.wake(suspended);
    } else {
      vm.subject.power.systemReset(0, "fuzz: the host restarts the VM");
      vm.reference?.power.systemReset(0, "fuzz: the host restarts the VM");
      await vm.subject.power.booted;
      if (vm.reference) await vm.reference.power.booted;
    }
    watch.actor = -1;
  };

  for (i = 0; i < limit; i++) {
    if (opts.onProgress && i % (opts.progressEvery ?? CHECKPOINT) === 0 && i > 0) opts.onProgress(i);
    // A burst of one VM's calls; what the next VM holds is compared before its burst starts.
    if (burst === 0 || current === null) {
      if (current !== null && checking) snapshot(current);
      current = vms[rng.below(vms.length)]!;
      burst = 1 + rng.below(16);
      const p = checking ? compareHeld(current) : null;
      if (p !== null) return { calls: i, violation: noticed(p, i - 1), stats: finish() };
    }
    burst--;
    const vm: Vm = current;
    let on = onVcpus(vm.subject);
    if (on.length === 0) {
      await hostAction(vm);
      on = onVcpus(vm.subject);
      if (on.length === 0) return { calls: i, violation: found("exception", `${vm.name} has no running vCPU after the host restarted it`), stats: finish() };
    }
    vcpu = rng.pick(on);
    const words = vm.subject.vcpus[vcpu]!.words;
    gen.next(vm.guest, vm.subject.vcpus.length, vm.subject.domain.config.aarch32, vm.conduit, words, write, plan);
    fid = words[0]!;
    before.set(words);
    if (vm.reference) vm.reference.vcpus[vcpu]!.words.set(words);
    let esr = esrFor(plan.conduit, plan.aarch32, plan.imm);
    if (plan.cond >= 0) esr |= (1 << 24) | (plan.cond << 20);
    esr >>>= 0;
    const pstate = ((plan.aarch32 ? 0x1d3 : 0x3c5) | (plan.nzcv << 28)) >>> 0;

    const total = trace.total;
    const refTotal = refTrace?.total ?? 0;
    let outcome: number;
    watch.actor = vm.index;
    try {
      const r = vm.subject.domain.trap(vcpu, vm.callWords[vcpu]!, esr, pstate);
      outcome = typeof r === "number" ? r : await r;
    } catch (e) {
      watch.actor = -1;
      return { calls: i + 1, violation: found("exception", `the core threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`), stats: finish() };
    }
    watch.actor = -1;
    if (outcome === OUTCOME_HALT) await vm.subject.power.booted;
    vm.calls++;
    stats.perVm[vm.name]!++;
    stats.outcomes[OUTCOME_NAMES[outcome] ?? String(outcome)] = (stats.outcomes[OUTCOME_NAMES[outcome] ?? String(outcome)] ?? 0) + 1;
    if (outcome === OUTCOME_ERROR) {
      stats.handlerErrors++;
      stats.firstHandlerError ??= `call ${i}: ${vm.name} vCPU ${vcpu} ${hex32(fid)} (${trace.latest()?.rule ?? "?"})`;
    }

    if (!checking) {
      gen.observe(vm.guest, plan, words, read);
      continue;
    }

    // The invariants this call must keep.
    const crossed = watch.crossed;
    if (crossed !== null) {
      const what = crossed.where === "ram" ? `${crossed.owner}'s RAM` : `a page of the hypervisor's heap held for ${crossed.owner}`;
      const at = crossed.where === "ram" ? `IPA 0x${crossed.ipa.toString(16)}` : `PA 0x${crossed.ipa.toString(16)}`;
      return { calls: i + 1, violation: found("memory", `${crossed.actor === null ? "outside any call" : `during a call of ${crossed.actor}`}, ${what} was ${crossed.kind === "read" ? "read" : crossed.kind === "write" ? "written" : "viewed"} at ${at} (${crossed.length} bytes)`), stats: finish() };
    }
    const regs = registerProblem(vm.subject.domain.config.smccc, before, words, outcome, plan.aarch32, plan.imm);
    if (regs !== null) return { calls: i + 1, violation: found("registers", `${vm.name} vCPU ${vcpu}: ${regs}`), stats: finish() };
    const events = trace.total - total;
    if (events < 1) return { calls: i + 1, violation: found("trace", `the call left no trace event`), stats: finish() };
    if (entered || i >= eagerFrom || (i + 1) % CHECKPOINT === 0) {
      entered = false;
      const quota = quotas.check(vm.index, i >= eagerFrom || (i + 1) % CHECKPOINT === 0);
      if (quota !== null) return { calls: i + 1, violation: found("quota", quota), stats: finish() };
    }

    if (vm.reference) {
      let refOutcome: number;
      try {
        const r = vm.reference.domain.trap(vcpu, vm.refCallWords[vcpu]!, esr, pstate);
        refOutcome = typeof r === "number" ? r : await r;
      } catch (e) {
        return { calls: i + 1, violation: found("exception", `the core with the answer cache off threw: ${e instanceof Error ? e.message : String(e)}`), stats: finish() };
      }
      if (refOutcome === OUTCOME_HALT) await vm.reference.power.booted;
      const refWords = vm.reference.vcpus[vcpu]!.words;
      if (refOutcome !== outcome) return { calls: i + 1, violation: found("answer-cache", `outcome ${OUTCOME_NAMES[outcome]} with the answer cache, ${OUTCOME_NAMES[refOutcome]} without`), stats: finish() };
      for (let k = 0; k < WORDS; k++) {
        if (refWords[k] !== words[k]) return { calls: i + 1, violation: found("answer-cache", `x${k >> 1}${k & 1 ? " (upper half)" : ""} is 0x${words[k]!.toString(16)} with the answer cache, 0x${refWords[k]!.toString(16)} without`), stats: finish() };
      }
      if (refTrace!.total - refTotal !== events) return { calls: i + 1, violation: found("answer-cache", `${events} trace events with the answer cache, ${refTrace!.total - refTotal} without`), stats: finish() };
      for (let v = 0; v < vm.subject.vcpus.length; v++) {
        if (vm.subject.vcpus[v]!.power !== vm.reference.vcpus[v]!.power) return { calls: i + 1, violation: found("answer-cache", `vCPU ${v} is ${vm.subject.vcpus[v]!.power} with the answer cache, ${vm.reference.vcpus[v]!.power} without`), stats: finish() };
      }
    }
    gen.observe(vm.guest, plan, words, read);

    if (i >= eagerFrom) {
      // Replaying a window: what every other VM holds, after every call.
      snapshot(vm);
      for (const other of vms) {
        if (other === vm) continue;
        const p = compareHeld(other);
        if (p !== null) return { calls: i + 1, violation: found(p.kind, p.message), stats: finish() };
      }
      const c = countsProblem();
      if (c !== null) return { calls: i + 1, violation: found("trace", c), stats: finish() };
    } else if ((i + 1) % CHECKPOINT === 0) {
      const c = countsProblem();
      if (c !== null) return { calls: i + 1, violation: found("trace", c, false, i + 1 - CHECKPOINT), stats: finish() };
    }
  }
  // The end: every VM not in the middle of its burst against its copy, and the whole trace.
  if (!checking) return { calls: i, violation: null, stats: finish() };
  for (const vm of vms) {
    if (vm === current) continue;
    const p = compareHeld(vm);
    if (p !== null) return { calls: i, violation: noticed(p, i - 1), stats: finish() };
  }
  const c = countsProblem();
  if (c !== null) return { calls: i, violation: { kind: "trace", call: i - 1, exact: false, since: Math.max(0, i - CHECKPOINT), vm: "", vcpu: -1, fid: 0, conduit: "", message: c }, stats: finish() };
  return { calls: i, violation: null, stats: finish() };

  function finish(): CampaignStats {
    stats.exposedPages = vms.reduce((n, v) => n + v.ram.exposedPages, 0);
    stats.logLines = logLines();
    return stats;
  }
}

function onVcpus(vm: ScriptedVm): number[] {
  const out: number[] = [];
  for (let v = 0; v < vm.vcpus.length; v++) if (vm.vcpus[v]!.power === "on") out.push(v);
  return out;
}

function diffCounters(a: readonly { key: string; calls: number }[], b: readonly { key: string; calls: number }[]): string {
  const m = new Map(b.map((c) => [c.key, c.calls]));
  for (const c of a) if (m.get(c.key) !== c.calls) return `${c.key}: ${c.calls} with, ${m.get(c.key) ?? 0} without`;
  const n = new Map(a.map((c) => [c.key, c.calls]));
  for (const c of b) if (n.get(c.key) !== c.calls) return `${c.key}: ${n.get(c.key) ?? 0} with, ${c.calls} without`;
  return "in order";
}
