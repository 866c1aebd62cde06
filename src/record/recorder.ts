/**
 * The recorder behind `smcvisor run --record FILE`: a HypervisorObserver that writes every call a VM makes,
 * with everything its answer depended on from outside the hypervisor (guest memory it read, guest time,
 * entropy, delegates' answers) and what it changed (result registers, guest memory it wrote), to an
 * NDJSON file (format.ts, docs/record-replay.md).
 *
 * A guest decides how many calls it makes and how much memory they name, so the file is capped
 * (`limitBytes`): past it the recorder writes one `limit` record, says so once on the log, and records
 * nothing more; the run goes on.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { ByteGenerator } from "../firmware/monitor/entropy.js";
import type { HypervisorObserver } from "../hypervisor/observer.js";
import type { VmConfig } from "../policy/load.js";
import { OUTCOME_NAMES, type TraceEvent } from "../trace/ring.js";
import type { CallTarget, GuestMemory, GuestTime, VmPorts } from "../router/ports.js";
import { hex, RECORD_FORMAT_VERSION, RECORD_MAGIC, regsOf, type CallRecord, type RecordHeader, type RecordInput, type RecordLine, type RecordWrite } from "./format.js";

export interface RecorderOptions {
  /** The file stops growing at this many bytes (its `limit` record comes on top). */
  readonly limitBytes: number;
  /** Where the one line about reaching the limit goes. */
  readonly log?: (line: string) => void;
  /** Bytes buffered before they are written out (default 256 KiB). */
  readonly flushBytes?: number;
}

/** What the header says about the run; the recorder adds the format fields. */
export type RecordedRun = Omit<RecordHeader, "format" | "version" | "created" | "vms">;

const b64 = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("base64");

interface Pending {
  readonly rec: Omit<CallRecord, "out" | "outcome" | "action" | "rule">;
  readonly vm: string;
  readonly vcpu: number;
}

export class Recorder implements HypervisorObserver {
  private readonly fd: number;
  /** Records not yet written: one string (V8 concatenates lazily), written at flushBytes and at close. */
  private pending = "";
  private buffered = 0;
  private written = 0;
  private calls = 0;
  private started = 0;
  private stopped = false;
  private closed = false;
  private unattributed = 0;
  /** Why writing the file failed (an errno code), or null: nothing more is recorded then. */
  failure: string | null = null;
  /** The trap running now, synchronously: whatever is read or written meanwhile is its. */
  private current: Pending | null = null;
  /** Traps whose handler completes later, by VM: accesses from their continuations are charged to the first. */
  private readonly inFlight = new Map<string, Pending[]>();
  private readonly vms: RecordHeader["vms"] = [];
  private headerDone = false;

  /** Opens (truncates) `path`; throws if it cannot be written. */
  constructor(
    readonly path: string,
    private readonly run: RecordedRun,
    private readonly opts: RecorderOptions,
  ) {
    this.fd = openSync(path, "w");
  }

  /** Bytes written so far (the header included). */
  get bytes(): number {
    return this.written + this.buffered;
  }

  get limitReached(): boolean {
    return this.stopped;
  }

  ports(vm: VmConfig, ports: VmPorts): VmPorts {
    this.vms.push({ name: vm.name, id: vm.id, vcpus: vm.vcpus, memory: { base: hex(vm.memory.base), size: hex(vm.memory.size) } });
    return {
      ...ports,
      ...(ports.memory ? { memory: this.memory(vm.name, ports.memory) } : {}),
      ...(ports.time ? { time: this.time(vm.name, ports.time) } : {}),
    };
  }

  delegate(name: string, target: CallTarget): CallTarget {
    return {
      handle: (call, res, origin) => {
        const p = this.owner(origin.vmName, origin.vcpu);
        const done = () => {
          if (p) p.rec.inputs.push({ k: "delegate", name, out: regsOf(res.words, Math.max(4, Math.min(res.count, 18)), false) });
          else this.unattributed++;
        };
        const r = target.handle(call, res, origin);
        if (r instanceof Promise) return r.then(done);
        done();
        return undefined;
      },
    };
  }

  entropy(inner: ByteGenerator): ByteGenerator {
    return (out) => {
      inner(out);
      const p = this.current ?? this.onlyInFlight();
      if (p) p.rec.inputs.push({ k: "entropy", data: b64(out) });
      else this.unattributed++;
    };
  }

  trapStart(vm: string, vcpu: number, regs: Uint32Array, esr: number, pstate: number): void {
    this.started++;
    this.current = { vm, vcpu, rec: { t: "call", n: this.started, vm, vcpu, esr: hex(esr), pstate: hex(pstate), in: regsOf(regs), inputs: [], writes: [] } };
  }

  trapEnd(vm: string, vcpu: number, regs: Uint32Array, outcome: number, event: TraceEvent | null): void {
    let p = this.current;
    if (p !== null && p.vm === vm && p.vcpu === vcpu) {
      this.current = null;
    } else {
      // An asynchronous completion: the trap was parked when its handler returned a promise.
      const list = this.inFlight.get(vm);
      const i = list?.findIndex((x) => x.vcpu === vcpu) ?? -1;
      if (list === undefined || i < 0) return;
      p = list.splice(i, 1)[0]!;
    }
    this.calls++;
    const r = p.rec;
    this.emit({ t: "call", n: r.n, vm: r.vm, vcpu: r.vcpu, esr: r.esr, pstate: r.pstate, in: r.in, inputs: r.inputs, out: regsOf(regs), outcome: OUTCOME_NAMES[outcome] ?? String(outcome), action: event?.action ?? null, rule: event?.rule ?? null, writes: r.writes });
  }

  trapPending(): void {
    const p = this.current;
    if (p === null) return;
    this.current = null;
    const list = this.inFlight.get(p.vm) ?? [];
    list.push(p);
    this.inFlight.set(p.vm, list);
  }

  reset(vm: string): void {
    this.emit({ t: "reset", vm });
  }

  destroyed(vm: string): void {
    this.emit({ t: "destroy", vm });
  }

  /** A live policy change of `vm` (the control API's policy reload), with the new policy's text. */
  policyChanged(vm: string, text: string): void {
    this.emit({ t: "policy", vm, text });
  }

  /** Writes the end record and closes the file; nothing is recorded after. */
  close(): void {
    if (this.closed) return;
    if (!this.stopped) this.emit({ t: "end", calls: this.calls, unattributed: this.unattributed });
    this.flush();
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch (e) {
      this.failure ??= (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    }
  }

  private owner(vm: string, vcpu: number): Pending | null {
    const c = this.current;
    if (c !== null && c.vm === vm) return c;
    const list = this.inFlight.get(vm);
    return list?.find((x) => x.vcpu === vcpu) ?? list?.[0] ?? null;
  }

  private onlyInFlight(): Pending | null {
    let found: Pending | null = null;
    for (const list of this.inFlight.values()) {
      for (const p of list) {
        if (found !== null) return null;
        found = p;
      }
    }
    return found;
  }

  private charge(vm: string, f: (p: Pending) => void): void {
    const c = this.current;
    const p = c !== null && c.vm === vm ? c : (this.inFlight.get(vm)?.[0] ?? null);
    if (p) f(p);
    else this.unattributed++;
  }

  private memory(vm: string, inner: GuestMemory): GuestMemory {
    // No view(): bytes read or written in place could not be recorded, and every user of the port copies
    // when a backend offers no views (GuestMemory.view).
    return {
      base: inner.base,
      size: inner.size,
      read: (ipa, length) => {
        const data = inner.read(ipa, length);
        this.charge(vm, (p) => p.rec.inputs.push({ k: "read", ipa: hex(ipa), len: Math.max(0, length), data: data === null ? null : b64(data) }));
        return data;
      },
      write: (ipa, data) => {
        const ok = inner.write(ipa, data);
        this.charge(vm, (p) => p.rec.writes.push({ ipa: hex(ipa), data: b64(data), ok }));
        return ok;
      },
      ...(inner.clear
        ? {
            clear: () => {
              inner.clear!();
              this.charge(vm, (p) => p.rec.writes.push({ clear: true }));
            },
          }
        : {}),
    };
  }

  private time(vm: string, inner: GuestTime): GuestTime {
    const note = (what: "wall" | "virtual" | "physical", vcpu: number, value: bigint) => this.charge(vm, (p) => p.rec.inputs.push({ k: "time", what, vcpu, value: hex(value) }));
    return {
      wallClockNs: () => {
        const v = inner.wallClockNs();
        note("wall", 0, v);
        return v;
      },
      counter: (vcpu, physical) => {
        const v = inner.counter(vcpu, physical);
        note(physical ? "physical" : "virtual", vcpu, v);
        return v;
      },
    };
  }

  private header(): void {
    this.headerDone = true;
    const h: RecordHeader = { format: RECORD_MAGIC, version: RECORD_FORMAT_VERSION, ...this.run, created: new Date().toISOString(), vms: this.vms };
    this.push(JSON.stringify(h));
  }

  private emit(line: RecordLine): void {
    if (this.stopped || this.closed) return;
    if (!this.headerDone) this.header();
    const text = JSON.stringify(line);
    if (this.bytes + text.length + 1 > this.opts.limitBytes) {
      this.stopped = true;
      this.push(JSON.stringify({ t: "limit", bytes: this.bytes, calls: this.calls } satisfies RecordLine));
      this.flush();
      this.opts.log?.(`smcvisor: --record: ${this.path} reached its limit (${this.opts.limitBytes} bytes) after ${this.calls} calls; nothing after is recorded`);
      return;
    }
    this.push(text);
  }

  private push(text: string): void {
    this.pending += text + "\n";
    // Lengths in UTF-16 units: the JSON is ASCII but for names and policy text, close enough for a cap.
    this.buffered += text.length + 1;
    if (this.buffered >= (this.opts.flushBytes ?? 256 * 1024)) this.flush();
  }

  private flush(): void {
    if (this.buffered === 0 || this.failure !== null) return;
    const data = this.pending;
    this.pending = "";
    this.written += this.buffered;
    this.buffered = 0;
    try {
      writeSync(this.fd, data);
    } catch (e) {
      // A full disk (or a file system gone) ends the recording, never the call being recorded or the run.
      this.failure = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
      this.stopped = true;
      this.opts.log?.(`smcvisor: --record: cannot write ${this.path} (${this.failure}); recording stopped after ${this.calls} calls`);
    }
  }
}

export type { RecordInput, RecordWrite };
