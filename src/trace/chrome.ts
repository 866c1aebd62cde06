/**
 * Export to the Chrome trace-event JSON format, which Perfetto (ui.perfetto.dev) and chrome://tracing
 * open: one complete ("X") event per call, a process per VM and a thread per vCPU, and an instant ("i")
 * event, process-wide, for each live policy change of a VM (the control API's, docs/api.md).
 * Format: "Trace Event Format", Google, 2016 (docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU).
 */
import { fidName } from "../smccc/names.js";
import { hex32 } from "../smccc/fid.js";
import type { TraceEvent } from "./ring.js";

export interface ChromeTraceEvent {
  name: string;
  cat?: string;
  ph: "X" | "M" | "i";
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
  s?: "t" | "p" | "g";
}

/** The process the hypervisor's own calls appear in: a name no VM can have (VM names have no spaces). */
export const HYPERVISOR_PROCESS_NAME = "hypervisor (its own calls)";

/** A VM's policy was swapped at `at` (ns, the trace's clock): Router.policySwaps. */
export interface PolicyMark {
  readonly vm: string;
  readonly at: number;
}

export function toChromeTrace(events: readonly TraceEvent[], policyChanges: readonly PolicyMark[] = []): { traceEvents: ChromeTraceEvent[]; displayTimeUnit: "ns" } {
  // Processes are keyed by who made the call, not by name: a VM may be called "hypervisor".
  const pids = new Map<string, number>();
  const out: ChromeTraceEvent[] = [];
  const pidOf = (e: { readonly conduit: string; readonly vm: string }): number => {
    const own = e.conduit === "hypervisor";
    const key = own ? "h" : `v:${e.vm}`;
    let pid = pids.get(key);
    if (pid === undefined) {
      pid = pids.size + 1;
      pids.set(key, pid);
      out.push({ name: "process_name", ph: "M", ts: 0, pid, tid: 0, args: { name: own ? HYPERVISOR_PROCESS_NAME : e.vm } });
    }
    return pid;
  };
  const threads = new Set<string>();
  for (const e of events) {
    const pid = pidOf(e);
    const threadKey = `${pid}/${e.vcpu}`;
    if (!threads.has(threadKey)) {
      threads.add(threadKey);
      out.push({ name: "thread_name", ph: "M", ts: 0, pid, tid: e.vcpu, args: { name: e.conduit === "hypervisor" ? "hypervisor" : `vCPU ${e.vcpu}` } });
    }
    const fidForName = (e.fid & 0x8000_0000) !== 0 ? e.fid & 0xfffe_ffff : e.fid;
    out.push({
      name: fidName(fidForName) ?? hex32(e.fid),
      cat: e.action,
      ph: "X",
      // A trace taken without a clock (deterministic in-process runs) is laid out one call per µs.
      ts: e.start === 0 && e.duration === 0 ? e.seq : e.start / 1000,
      dur: e.start === 0 && e.duration === 0 ? 0.5 : Math.max(e.duration, 1) / 1000,
      pid,
      tid: e.vcpu,
      args: {
        seq: e.seq,
        fid: hex32(e.fid),
        conduit: e.conduit,
        aarch32: e.aarch32,
        action: e.action,
        rule: e.rule,
        outcome: e.outcome,
        x0: "0x" + e.x0.toString(16),
        ...(e.origin ? { origin: e.origin } : {}),
        ...(e.stage ? { stage: e.stage } : {}),
      },
    });
  }
  for (const p of policyChanges) {
    const pid = pidOf({ conduit: "vm", vm: p.vm });
    out.push({ name: "policy change", cat: "policy", ph: "i", s: "p", ts: p.at / 1000, pid, tid: 0, args: { vm: p.vm } });
  }
  return { traceEvents: out, displayTimeUnit: "ns" };
}
