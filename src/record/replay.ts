/**
 * Replay (`smcvisor replay`): a recording's calls, in the order they completed, through a fresh hypervisor
 * built from the recording's config or a new one, in this process and without QEMU. What a call's answer
 * depended on from outside comes from the recording, charged to that call: the guest memory its handlers
 * read, guest time, entropy, delegates' answers. The modelled secure world (OP-TEE, the SPMC, the monitor)
 * runs again: it is part of the build being checked, and given the same calls and inputs it answers the
 * same. Each call's decision, outcome, result registers x0..x17 and guest-memory writes are compared with
 * the recording's; anything the new run asks for that the recording does not have is reported with the
 * call, never a crash.
 */
import { hostChaCha20 } from "../machine/host/chacha20.js";
import { BOARDS } from "../machine/boards/index.js";
import { parseScenario } from "../machine/qemu/scenario.js";
import { Hypervisor, type DomainResetResult } from "../hypervisor/hypervisor.js";
import type { HypervisorObserver } from "../hypervisor/observer.js";
import { parseConfigText, validateConfig, type Config, type VmConfig } from "../policy/load.js";
import { parseConfigData } from "../policy/source.js";
import type { CallTarget, GuestMemory, GuestTime, PowerPort } from "../router/ports.js";
import { EC_HVC32, EC_HVC64, EC_SMC32, EC_SMC64, esrEc } from "../smccc/esr.js";
import { hex32 } from "../smccc/fid.js";
import { fidName } from "../smccc/names.js";
import { OUTCOME_NAMES, type TraceEvent } from "../trace/ring.js";
import { hex, RECORD_REGS, regAt, regsOf, wordsOf, type CallRecord, type RecordHeader, type RecordInput, type RecordLine, type RecordWrite } from "./format.js";

/** One side of a compared call. */
export interface CallSide {
  readonly action: string | null;
  readonly rule: string | null;
  readonly outcome: string;
  /** x0..x17 as 0x hex, the zero registers at the end left out. */
  readonly regs: readonly string[];
  readonly writes: readonly RecordWrite[];
}

export interface CallDiff {
  /** The call's number in the recording. */
  readonly n: number;
  readonly vm: string;
  readonly vcpu: number;
  readonly conduit: string;
  readonly fid: string;
  readonly name: string;
  readonly before: CallSide;
  /** Null when the call could not be replayed (its VM is not in the config). */
  readonly after: CallSide | null;
  /** What differs: "decision", "outcome", "x<n>", "writes", "inputs", "vm". */
  readonly changed: readonly string[];
  /** What the replayed call needed that the recording does not hold (a read it never made, say). */
  readonly missing: readonly string[];
}

export interface ReplayReport {
  readonly calls: number;
  readonly diffs: readonly CallDiff[];
  /** What the replay could not reproduce outside any one call (resets of unknown VMs, a limit, ...). */
  readonly notes: readonly string[];
}

export type ReplayConfigResult = { readonly ok: true; readonly config: Config } | { readonly ok: false; readonly errors: readonly string[] };

/** The config a recording was made with, from the text in its header. */
export function recordedConfig(header: RecordHeader): ReplayConfigResult {
  const c = header.config;
  if (c.kind === "config") {
    const r = parseConfigText(c.text);
    return r.ok ? { ok: true, config: r.value } : { ok: false, errors: r.errors.map((e) => `${c.name}: ${e.path}: ${e.message}`) };
  }
  const data = parseConfigData(c.text);
  if (!data.ok) return { ok: false, errors: data.errors.map((e) => `${c.name}: ${e.path}: ${e.message}`) };
  const r = parseScenario(c.name, data.data, () => {
    if (c.policyText === undefined) throw new Error("the recording does not hold the policy file's text");
    const p = parseConfigData(c.policyText);
    if (!p.ok) throw new Error(p.errors.map((e) => `${e.path}: ${e.message}`).join("; "));
    return p.data;
  });
  return r.ok ? { ok: true, config: r.scenario.config } : { ok: false, errors: r.errors.map((e) => `${c.name}: ${e.path}: ${e.message}`) };
}

export function conduitOf(esr: number): string {
  switch (esrEc(esr)) {
    case EC_SMC64: return "smc";
    case EC_HVC64: return "hvc";
    case EC_SMC32: return "smc (AArch32)";
    case EC_HVC32: return "hvc (AArch32)";
    default: return `EC ${hex(esrEc(esr))}`;
  }
}

const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, "base64"));
const b64 = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");

/** What the call being replayed may take from the recording, and what it did instead. */
class CallInputs {
  private inputs: RecordInput[] = [];
  private used: boolean[] = [];
  private entropy: Uint8Array = new Uint8Array(0);
  private entropyAt = 0;
  writes: RecordWrite[] = [];
  missing: string[] = [];
  /** Per VM, the bytes this call wrote, which later reads of the same call see. */
  written = new Map<string, { ipa: bigint; data: Uint8Array }[]>();
  active = false;

  begin(rec: CallRecord | null): void {
    this.inputs = rec?.inputs ?? [];
    this.used = this.inputs.map(() => false);
    const chunks = this.inputs.flatMap((i) => (i.k === "entropy" ? [bytes(i.data)] : []));
    this.entropy = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      this.entropy.set(c, at);
      at += c.length;
    }
    this.entropyAt = 0;
    this.writes = [];
    this.missing = [];
    this.written = new Map();
    this.active = rec !== null;
  }

  /** The first unused input that matches, marked used. */
  take<K extends RecordInput["k"]>(k: K, match: (i: Extract<RecordInput, { k: K }>) => boolean): Extract<RecordInput, { k: K }> | null {
    for (let j = 0; j < this.inputs.length; j++) {
      const i = this.inputs[j]!;
      if (!this.used[j] && i.k === k && match(i as Extract<RecordInput, { k: K }>)) {
        this.used[j] = true;
        return i as Extract<RecordInput, { k: K }>;
      }
    }
    return null;
  }

  /** Bytes covered by this call's recorded reads and its own writes, or null if any byte is not. */
  compose(vm: string, ipa: bigint, length: number): Uint8Array | null {
    const out = new Uint8Array(length);
    const known = new Uint8Array(length);
    const lay = (at: bigint, data: Uint8Array) => {
      const from = at > ipa ? at : ipa;
      const to = at + BigInt(data.length) < ipa + BigInt(length) ? at + BigInt(data.length) : ipa + BigInt(length);
      if (from >= to) return;
      const src = Number(from - at), dst = Number(from - ipa), n = Number(to - from);
      out.set(data.subarray(src, src + n), dst);
      known.fill(1, dst, dst + n);
    };
    for (const i of this.inputs) if (i.k === "read" && i.data !== null) lay(BigInt(i.ipa), bytes(i.data));
    for (const w of this.written.get(vm) ?? []) lay(w.ipa, w.data);
    return known.every((k) => k === 1) ? out : null;
  }

  drawEntropy(out: Uint8Array): void {
    const n = Math.min(out.length, this.entropy.length - this.entropyAt);
    out.set(this.entropy.subarray(this.entropyAt, this.entropyAt + n));
    out.fill(0, n);
    this.entropyAt += n;
    if (n < out.length) this.note(`${out.length - n} bytes of entropy the recording does not hold (zeros given)`);
  }

  note(what: string): void {
    // A handler in a loop must not grow the report without bound.
    if (this.missing.length < 16) this.missing.push(what);
    else if (this.missing.length === 16) this.missing.push("(more)");
  }
}

class ReplayMemory implements GuestMemory {
  constructor(readonly base: bigint, readonly size: bigint, private readonly vm: string, private readonly call: CallInputs) {}

  private inside(ipa: bigint, length: number): boolean {
    return length >= 0 && ipa >= this.base && ipa + BigInt(length) <= this.base + this.size;
  }

  read(ipa: bigint, length: number): Uint8Array | null {
    if (!this.call.active) {
      this.call.note(`a read of ${length} bytes at ${hex(ipa)} outside any call`);
      return null;
    }
    // The same read, in the order the recorded call made it, gets what it got then (the guest may have
    // changed the bytes between two reads of one call).
    const same = this.call.take("read", (i) => i.ipa === hex(ipa) && i.len === length);
    if (same) return same.data === null ? null : bytes(same.data);
    if (!this.inside(ipa, length)) return null;
    const composed = this.call.compose(this.vm, ipa, length);
    if (composed === null) this.call.note(`a read of ${length} bytes at ${hex(ipa)} the recording does not hold`);
    return composed;
  }

  write(ipa: bigint, data: Uint8Array): boolean {
    const ok = this.inside(ipa, data.length);
    this.call.writes.push({ ipa: hex(ipa), data: b64(data), ok });
    if (ok) {
      const list = this.call.written.get(this.vm) ?? [];
      list.push({ ipa, data: data.slice() });
      this.call.written.set(this.vm, list);
    }
    return ok;
  }

  clear(): void {
    this.call.writes.push({ clear: true });
  }
}

class ReplayTime implements GuestTime {
  constructor(private readonly call: CallInputs) {}

  private value(what: "wall" | "virtual" | "physical", vcpu: number): bigint {
    const i = this.call.take("time", (t) => t.what === what && (what === "wall" || t.vcpu === vcpu));
    if (i) return BigInt(i.value);
    this.call.note(`a reading of the ${what} ${what === "wall" ? "clock" : `counter of vCPU ${vcpu}`} the recording does not hold`);
    return 0n;
  }

  wallClockNs(): bigint {
    return this.value("wall", 0);
  }

  counter(vcpu: number, physical: boolean): bigint {
    return this.value(physical ? "physical" : "virtual", vcpu);
  }
}

/** The backend's side of PSCI does nothing: resets come from the recording's reset records. */
const NO_POWER: PowerPort = { cpuOn() {}, cpuOff() {}, cpuSuspend() {}, systemOff() {}, systemReset() {} };

function replayDelegate(name: string, call: CallInputs): CallTarget {
  return {
    handle(_c, res) {
      const i = call.take("delegate", (d) => d.name === name);
      if (i === null) {
        call.note(`an answer of delegate ${name} the recording does not hold (NOT_SUPPORTED given)`);
        res.ret(-1);
        return;
      }
      // As many registers as the delegate set (its result's count): the router writes back those.
      const w = wordsOf(i.out);
      for (let r = 0; r < i.out.length; r++) res.setWords(r, w[2 * r]!, w[2 * r + 1]!);
    },
  };
}

/** Swaps in `vm`'s policy from a recorded policy document; why not, or null when done. */
function applyRecordedPolicy(hv: Hypervisor, vm: string, text: string): string | null {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return `its text is not JSON (${(e as Error).message})`;
  }
  const v = validateConfig(data);
  if (!v.ok) return v.errors.map((e) => `${e.path}: ${e.message}`).join("; ");
  const config = v.value.vms.find((x) => x.name === vm);
  const routed = hv.router.getVm(vm);
  if (config === undefined || routed === undefined) return `no VM ${vm} ${config === undefined ? "in the recorded policy" : "running"}`;
  const p = hv.router.preparePolicy(routed, config);
  if (!p.ok) return p.errors.map((e) => `${e.path}: ${e.message}`).join("; ");
  hv.router.swapPolicy(p.policy);
  return null;
}

/** Writes as compared: equal lists in the same order. */
function sameWrites(a: readonly RecordWrite[], b: readonly RecordWrite[]): boolean {
  return a.length === b.length && a.every((w, i) => JSON.stringify(w) === JSON.stringify(b[i]));
}

function sideOf(r: CallRecord): CallSide {
  return { action: r.action, rule: r.rule, outcome: r.outcome, regs: r.out, writes: r.writes };
}

/**
 * Replays `recording` against `config`; errors only for a config the hypervisor cannot build. The records
 * are consumed once, in order, so they may come from a reader of a file of any size (an exception from
 * the iterator, a bad line, ends the replay and propagates).
 */
export async function replayRecording(recording: { readonly header: RecordHeader; readonly records: Iterable<RecordLine> }, config: Config, opts: { truncated?: () => boolean; livePolicies?: boolean } = {}): Promise<{ ok: true; report: ReplayReport } | { ok: false; errors: string[] }> {
  const call = new CallInputs();
  let last: { vm: string; vcpu: number; outcome: number; event: TraceEvent | null } | null = null;
  const observer: HypervisorObserver = {
    trapStart() {},
    trapEnd(vm, vcpu, _regs, outcome, event) {
      last = { vm, vcpu, outcome, event };
    },
  };
  const delegates = new Map<string, CallTarget>(Object.keys(config.delegates).map((n) => [n, replayDelegate(n, call)]));
  let built: ReturnType<typeof Hypervisor.fromConfig>;
  try {
    built = Hypervisor.fromConfig(
      config,
      { boards: BOARDS, chacha20: hostChaCha20, traceCapacity: 1 << 10, entropy: (out) => call.drawEntropy(out), delegates, observer },
      (vm: VmConfig) => ({ memory: new ReplayMemory(vm.memory.base, vm.memory.size, vm.name, call), time: new ReplayTime(call), power: NO_POWER }),
    );
  } catch (e) {
    return { ok: false, errors: [`the config cannot run: ${(e as Error).message}`] };
  }
  if (!built.ok) return { ok: false, errors: built.errors.map((e) => `${e.path}: ${e.message}`) };
  const hv = built.hypervisor;
  const diffs: CallDiff[] = [];
  const notes: string[] = [];
  const regs = new Uint32Array(2 * RECORD_REGS);
  let calls = 0;
  const unknown = new Set<string>();
  for (const r of recording.records) {
    switch (r.t) {
      case "call": {
        calls++;
        const esr = Number(r.esr);
        const fid = Number(BigInt(r.in[0]!) & 0xffff_ffffn);
        const base = { n: r.n, vm: r.vm, vcpu: r.vcpu, conduit: conduitOf(esr), fid: hex32(fid), name: fidName(fid) ?? hex32(fid), before: sideOf(r) };
        const domain = hv.domains.get(r.vm);
        if (domain === undefined || r.vcpu >= domain.config.vcpus) {
          diffs.push({ ...base, after: null, changed: ["vm"], missing: [domain === undefined ? `no VM ${r.vm} in the config` : `${r.vm} has no vCPU ${r.vcpu} in the config`] });
          break;
        }
        wordsOf(r.in, regs);
        call.begin(r);
        last = null;
        let outcome: number;
        try {
          outcome = await domain.trap(r.vcpu, regs, esr, Number(r.pstate));
        } catch (e) {
          // A handler's exception is the router's to turn into -1; one escaping it is a bug worth a line.
          call.note(`the hypervisor failed: ${(e as Error).message}`);
          outcome = -1;
        }
        const ended = last as { event: TraceEvent | null } | null;
        const event = ended?.event ?? null;
        const after: CallSide = { action: event?.action ?? null, rule: event?.rule ?? null, outcome: OUTCOME_NAMES[outcome] ?? String(outcome), regs: regsOf(regs), writes: call.writes };
        const changed: string[] = [];
        if (after.action !== r.action || after.rule !== r.rule) changed.push("decision");
        if (after.outcome !== r.outcome) changed.push("outcome");
        for (let i = 0; i < RECORD_REGS; i++) if (regAt(after.regs, i) !== regAt(r.out, i)) changed.push(`x${i}`);
        if (!sameWrites(after.writes, r.writes)) changed.push("writes");
        if (call.missing.length > 0) changed.push("inputs");
        if (changed.length > 0) diffs.push({ ...base, after, changed, missing: call.missing });
        call.begin(null);
        break;
      }
      case "reset": {
        if (!hv.domains.has(r.vm)) {
          unknown.add(r.vm);
          break;
        }
        const done: DomainResetResult = await hv.resetDomain(r.vm);
        if (!done.ok) notes.push(`reset of ${r.vm}: ${done.errors.map((e) => e.message).join("; ")}`);
        break;
      }
      case "destroy":
        hv.destroyDomain(r.vm);
        break;
      case "policy":
        // Against the recorded config the change is made where it was made, as the control API made it
        // (validated, then swapped between two calls); against a new config, the new config stands.
        if (!opts.livePolicies) notes.push(`the recording has a live policy change of ${r.vm} after call ${calls}: the replay keeps the config it was given`);
        else {
          const failed = applyRecordedPolicy(hv, r.vm, r.text);
          notes.push(failed === null ? `applied the recording's live policy change of ${r.vm} after call ${calls}` : `the recording's live policy change of ${r.vm} after call ${calls} was not applied: ${failed}`);
        }
        break;
      case "limit":
        notes.push(`the recording stopped at its size limit (${r.bytes} bytes) after ${r.calls} calls: later calls were not recorded`);
        break;
      case "end":
        if (r.unattributed > 0) notes.push(`${r.unattributed} accesses during the run belonged to no call and are not replayed`);
        break;
    }
  }
  for (const vm of unknown) notes.push(`the recording resets ${vm}, which is not in the config`);
  if (opts.truncated?.()) notes.push("the recording is cut short (no end record): the run did not finish writing it");
  return { ok: true, report: { calls, diffs, notes } };
}
