/**
 * The isolation invariants a campaign checks, as pure functions of what it observed: the registers of a
 * call, the state each VM holds outside its RAM (its vCPUs, its OP-TEE guest, the mediator's view of it,
 * its SiP nodes, its physical CPUs), and the limits the platform configures.
 */
import type { Hypervisor } from "../hypervisor/hypervisor.js";
import type { ScriptedVm } from "../machine/scripted/machine.js";
import type { VmConfig } from "../policy/load.js";
import { OUTCOME_ERROR, OUTCOME_HALT, OUTCOME_RETURN } from "../router/outcome.js";
import { registerRules } from "../smccc/convention.js";
import { FFA_HYPERVISOR_OWNER } from "../mediators/ffa/mediator.js";

/**
 * What may change in a caller's registers (x0-x30 as 62 words), by the rules of DEN0028 §2.6-2.8 as
 * `registerRules` encodes them for the VM's SMCCC version: only result registers x0..x(lastResult) of a
 * call that returns (1.0 and 1.1: x0-x3; 1.2+: x0-x17 for SMC64, x0-x7 for SMC32); results of an SMC32
 * call, or of any call from AArch32, are W registers (upper halves zero once written); a call answered with
 * UNDEF, skipped (a failed condition) or refused as a bad trap changes nothing; one that halts the vCPU
 * (CPU_OFF, a power-down suspend, SYSTEM_OFF or RESET) is not checked (the vCPU does not return).
 * Returns the problem, or null.
 */
export function registerProblem(smccc: number, before: Uint32Array, after: Uint32Array, outcome: number, aarch32: boolean, imm: number): string | null {
  if (outcome === OUTCOME_HALT) return null;
  const fid = before[0]!;
  const smc64 = (fid & 0x4000_0000) !== 0 && !aarch32;
  const returns = outcome === OUTCOME_RETURN || outcome === OUTCOME_ERROR;
  const last = returns ? registerRules(smccc, smc64).lastResult : -1;
  for (let i = 2 * (last + 1); i < before.length; i++) {
    if (before[i] !== after[i]) return `x${i >> 1} ${i & 1 ? "(upper half) " : ""}changed from 0x${before[i]!.toString(16)} to 0x${after[i]!.toString(16)}, beyond the results (x0-x${last < 0 ? "none" : last}) of a${smc64 ? "n SMC64" : "n SMC32"} call under SMCCC ${smccc >>> 16}.${smccc & 0xffff}, outcome ${outcome}`;
  }
  // A non-zero immediate answered "not supported" writes x0 = ~0 (KVM's answer); only #0 calls are results.
  if (!smc64 && imm === 0 && returns) {
    for (let n = 0; n <= last; n++) {
      const hi = 2 * n + 1;
      if (after[hi] !== 0 && after[hi] !== before[hi]) return `x${n}'s upper half is 0x${after[hi]!.toString(16)} after an SMC32 call: W results are zero-extended`;
    }
  }
  return null;
}

/**
 * What a VM holds outside its RAM, as numbers to compare: its vCPUs' power states and starts, its OP-TEE
 * guest (sessions, threads, registrations, pages, RPC buffers, each thread's step, the guest's own fields),
 * the mediator's counters for it, the SiP nodes it holds with their state, and its physical CPUs. Fields
 * are read by shape, so that a model that grows a field is still compared.
 */
export function heldState(hv: Hypervisor, vm: ScriptedVm, out: number[]): number[] {
  out.length = 0;
  const config = vm.domain.config;
  for (const v of vm.vcpus) out.push(v.power === "on" ? 0 : v.power === "off" ? 1 : 2, v.starts);
  const optee = hv.optee;
  if (optee !== null) {
    for (const v of Object.values(optee.counters(config.id))) out.push(v);
    shallow(optee.guests.get(config.id), out);
    const threads = (optee as unknown as { threads?: unknown }).threads;
    if (Array.isArray(threads)) {
      threads.forEach((t: unknown, slot) => {
        const th = t as { guest?: number; step?: { kind?: string } | null } | null;
        if (th && th.guest === config.id) out.push(slot, hashString(th.step?.kind ?? ""));
      });
    }
  }
  if (config.tee) {
    const c = hv.mediators.get(config.tee.mediator)?.counters(config.name) ?? {};
    for (const v of Object.values(c)) out.push(v);
  }
  for (const n of hv.platform.sipNodes ?? []) {
    const st = hv.model.eemi.nodeState(n.id);
    if (st?.owner !== config.name) continue;
    out.push(n.id);
    shallow(st, out);
  }
  const cpus = hv.model.psci.cpus(config.name);
  out.push(cpus.length % 4 === 0 ? sum32(new Uint32Array(cpus.buffer, cpus.byteOffset, cpus.length / 4)) : checksum(cpus));
  return out;
}

/** The first index where two states differ, or -1. */
export function firstDifference(a: readonly number[], b: readonly number[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/**
 * The platform's limits against what each VM holds: the mediator's per-VM counters (calls in flight,
 * registrations, pages, and any other counter a limit of the same name bounds), OP-TEE's per-guest
 * counters under the same limits (threads at most the calls in flight), OP-TEE's threads in all (at most
 * the pool), and the hypervisor's heap (nothing held while no call is in flight: a leak grows with every
 * call). After a call only the caller's counters are read again: what another VM holds is compared as its
 * held state (heldState), so a call that changed it is reported there.
 */
export class Quotas {
  private readonly limits: Readonly<Record<string, number>>;
  /** Per VM: its calls in flight and suspended in RPC, when last read (what keeps heap pages). */
  private readonly inFlight: number[];

  constructor(private readonly hv: Hypervisor, private readonly vms: readonly VmConfig[]) {
    this.limits = (hv.platform.tee?.limits ?? {}) as unknown as Readonly<Record<string, number>>;
    this.inFlight = vms.map(() => 0);
  }

  /** After a call of VM `index`; `all` reads every VM's counters again (checkpoints). Returns the problem, or null. */
  check(index: number, all = false): string | null {
    const tee = this.hv.platform.tee;
    if (tee === null) return null;
    for (let v = 0; v < this.vms.length; v++) {
      if (v !== index && !all) continue;
      const p = this.vm(v);
      if (p !== null) return p;
    }
    const optee = this.hv.optee;
    if (optee !== null && optee.busyThreads > tee.threads) return `OP-TEE has ${optee.busyThreads} busy threads; the pool is ${tee.threads}`;
    let held = 0;
    for (const n of this.inFlight) held += n;
    // The FF-A mediator's own RX/TX buffers (mapped with the SPMC at probe) stay for the hypervisor's life.
    const vmPages = this.hv.heap.inUse - this.hv.heap.heldBy(FFA_HYPERVISOR_OWNER);
    if (held === 0 && vmPages !== 0) return `the hypervisor's heap holds ${vmPages} pages for VMs with no OP-TEE call in flight`;
    return null;
  }

  private vm(v: number): string | null {
    const vm = this.vms[v]!;
    const limits = this.limits;
    if (!vm.tee) return null;
    const c = this.hv.mediators.get(vm.tee.mediator)?.counters(vm.name) ?? {};
    this.inFlight[v] = (c["inFlight"] ?? 0) + (c["pendingRpc"] ?? 0);
    if ((c["inFlight"] ?? 0) > limits["callsInFlight"]!) return `${vm.name} has ${c["inFlight"]} OP-TEE calls in flight; its limit is ${limits["callsInFlight"]}`;
    for (const k in c) if (limits[k] !== undefined && c[k]! > limits[k]) return `${vm.name}: mediator counter ${k} = ${c[k]} exceeds its limit ${limits[k]}`;
    const optee = this.hv.optee;
    if (optee !== null) {
      const os = optee.counters(vm.id) as Readonly<Record<string, number>>;
      if (os["threads"]! > limits["callsInFlight"]!) return `${vm.name} holds ${os["threads"]} OP-TEE threads; its calls in flight are limited to ${limits["callsInFlight"]}`;
      for (const k in os) if (k !== "threads" && limits[k] !== undefined && os[k]! > limits[k]) return `${vm.name}: OP-TEE's ${k} = ${os[k]} exceeds its limit ${limits[k]}`;
    }
    return null;
  }
}

/** Numbers, booleans, sizes and byte checksums of an object's own fields, in their order. */
function shallow(o: unknown, out: number[]): void {
  if (o === null || typeof o !== "object") {
    out.push(o === undefined ? -1 : -2);
    return;
  }
  for (const v of Object.values(o as Record<string, unknown>)) {
    if (typeof v === "number") out.push(v);
    else if (typeof v === "boolean") out.push(v ? 1 : 0);
    else if (typeof v === "string") out.push(hashString(v));
    else if (v === null) out.push(-3);
    else if (v instanceof Map || v instanceof Set) out.push(v.size);
    else if (v instanceof Uint8Array) out.push(checksum(v));
  }
}

function hashString(s: string): number {
  let h = 0x811c_9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x0100_0193);
  return h >>> 0;
}

function sum32(w: Uint32Array): number {
  let h = 0;
  for (let i = 0; i < w.length; i++) h = (Math.imul(h, 31) + w[i]!) | 0;
  return h;
}

function checksum(b: Uint8Array): number {
  let h = 0x811c_9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x0100_0193);
  return h >>> 0;
}
