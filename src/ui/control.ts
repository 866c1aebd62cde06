/**
 * The control API's actions on a running machine: reset, power off or destroy a VM, and a live policy
 * change. A new policy is a whole config document, validated with the config's own schema (the same
 * errors, with paths, as `smcvisor config-check`); it may change the VMs' grants only, since everything
 * else is state the running VMs were built with. Every VM's new rules are compiled and bound first
 * (Router.preparePolicy), then all are swapped in one synchronous step (Router.swapPolicy): between two
 * calls, never inside one, and all VMs or none.
 */
import type { Hypervisor } from "../hypervisor/hypervisor.js";
import type { ConfigError } from "../policy/config.js";
import { validateConfig, type Config, type VmConfig } from "../policy/load.js";
import { formatAction, type Rule } from "../policy/rules.js";
import type { PreparedPolicy } from "../router/router.js";
import { ARCH_FUNCTIONS } from "../smccc/functions/arch.js";
import { hex32 } from "../smccc/fid.js";

/** What the backend does for the control API's VM actions. */
export interface VmActions {
  reset(name: string): { ok: true; detail: string } | { ok: false; error: string } | Promise<{ ok: true; detail: string } | { ok: false; error: string }>;
  powerOff(name: string): { ok: true; detail: string } | { ok: false; error: string };
  destroy(name: string): { ok: true; detail: string } | { ok: false; error: string };
}

/** JSON of config values: bigints as hex, byte arrays as hex strings (for comparing and showing). */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === "bigint") return "0x" + x.toString(16);
    if (x instanceof Uint8Array) return Buffer.from(x).toString("hex");
    return x;
  });
}

function selectorText(r: Rule): string {
  const s = r.selector;
  if (s.kind === "id") return `id ${hex32(s.fid)}`;
  if (s.kind === "range") return `range ${hex32(s.lo)}-${hex32(s.hi)}`;
  return `owner ${s.first === s.last ? s.first : `${s.first}-${s.last}`} [${s.calls.join(", ")}]`;
}

/** A VM's grants as lines: what the page shows as the policy, and what a change is a diff of. */
export function policyLines(config: Config): string[] {
  const out: string[] = [];
  for (const vm of config.vms) {
    out.push(`${vm.name}:`);
    if (vm.rules.length === 0) out.push("  (no grants: each service's own calls, the rest denied)");
    for (const r of vm.rules) {
      const args = r.constraints.map((c) => ` ${c.low32 ? "w" : "x"}${c.reg} in ${c.ranges.map(([lo, hi]) => (lo === hi ? `0x${lo.toString(16)}` : `0x${lo.toString(16)}-0x${hi.toString(16)}`)).join(",")}`).join("");
      out.push(`  ${r.label}: ${selectorText(r)}${args} -> ${formatAction(r.action)}${r.exclusive ? " (exclusive)" : ""}`);
    }
  }
  return out;
}

/** A line diff (longest common subsequence): "  " kept, "- " removed, "+ " added. Inputs are small (grants). */
export function lineDiff(a: readonly string[], b: readonly string[]): string[] {
  const n = a.length, m = b.length;
  if (n * m > 4_000_000) return [...a.map((l) => `- ${l}`), ...b.map((l) => `+ ${l}`)];
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: string[] = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push(`- ${a[i++]}`);
    else out.push(`+ ${b[j++]}`);
  }
  while (i < n) out.push(`- ${a[i++]}`);
  while (j < m) out.push(`+ ${b[j++]}`);
  return out;
}

/** The calls a QEMU VM's shim answers itself for the boot it is in (machine/qemu/fast-path.ts). */
const SHIM_ANSWERED = [ARCH_FUNCTIONS.SMCCC_ARCH_WORKAROUND_1.smc32, ARCH_FUNCTIONS.SMCCC_ARCH_WORKAROUND_2.smc32, ARCH_FUNCTIONS.SMCCC_ARCH_WORKAROUND_3.smc32];

const VM_FIELDS = ["id", "vcpus", "aarch32", "memory", "board", "tee", "ffa", "smccc", "conduit", "immediate", "services"] as const;

export type PolicyPlan = { ok: true; apply: () => { changed: string[]; diff: string[] }; diff: string[] } | { ok: false; errors: readonly ConfigError[] };

/**
 * Validates a new policy document against the running one and prepares it; `apply` swaps it in. Errors
 * name the field (`vms.dom0.vcpus`) as config errors do.
 */
export function planPolicy(h: Hypervisor, current: Config, data: unknown, onApplied: (next: Config) => void): PolicyPlan {
  const v = validateConfig(data);
  if (!v.ok) return { ok: false, errors: v.errors };
  const next = v.value;
  const errors: ConfigError[] = [];
  if (canonical(next.platform) !== canonical(current.platform)) errors.push({ path: "platform", message: "cannot change while the VMs run (only the VMs' grants can)" });
  if (canonical(next.delegates) !== canonical(current.delegates)) errors.push({ path: "delegates", message: "cannot change while the VMs run (only the VMs' grants can)" });
  const names = new Set(next.vms.map((x) => x.name));
  for (const vm of current.vms) if (!names.has(vm.name)) errors.push({ path: `vms.${vm.name}`, message: "missing: a new policy keeps every VM (destroy a VM with its own action)" });
  const prepared: PreparedPolicy[] = [];
  for (const vm of next.vms) {
    const old = current.vms.find((x) => x.name === vm.name);
    if (!old) {
      errors.push({ path: `vms.${vm.name}`, message: "no such VM is running (a new policy cannot add VMs)" });
      continue;
    }
    for (const f of VM_FIELDS) if (canonical(vm[f]) !== canonical(old[f])) errors.push({ path: `vms.${vm.name}.${f}`, message: "cannot change while the VM runs (only its grants can)" });
    const routed = h.router.getVm(vm.name);
    if (!routed) continue; // ended or destroyed: nothing to swap
    const p = h.router.preparePolicy(routed, vm);
    if (!p.ok) {
      errors.push(...p.errors);
      continue;
    }
    for (const fid of SHIM_ANSWERED) {
      const was = routed.single[routed.table.chainIndex(fid)]?.service ?? null;
      const now = p.policy.single[p.policy.table.chainIndex(fid)]?.service ?? null;
      if (was !== now) errors.push({ path: `vms.${vm.name}.grants`, message: `changes how ${hex32(fid)} (an Arm Architecture workaround call) is answered: its shim answers it itself for this boot` });
    }
    prepared.push(p.policy);
  }
  if (errors.length > 0) return { ok: false, errors };
  const diff = lineDiff(policyLines(current), policyLines(next));
  const changed = next.vms.filter((vm) => canonical(vm.rules) !== canonical(current.vms.find((x) => x.name === vm.name)!.rules)).map((vm) => vm.name);
  return {
    ok: true,
    diff,
    apply: () => {
      // One synchronous loop: no call runs between the first VM's swap and the last's. A VM whose grants
      // are the same keeps its tables (and its cached answers); only a real change is marked in the trace.
      for (const p of prepared) if (changed.includes(p.vm.name)) h.router.swapPolicy(p);
      // A recording (--record) keeps the change where it happened, so that replay applies it there too.
      if (h.observer !== null) {
        const text = JSON.stringify(data);
        for (const vm of changed) h.observer.policyChanged?.(vm, text);
      }
      onApplied(next);
      return { changed, diff };
    },
  };
}

export type { VmConfig };
