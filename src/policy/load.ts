/**
 * Loading a config: text (YAML or JSON) → validated raw config → normalized `Config`.
 * Errors are returned as data with paths; this module never throws on bad input.
 */
import { registerRules } from "../smccc/convention.js";
import { CALL_TYPES, type CallType } from "../smccc/fid.js";
import { ownerRange } from "../smccc/owners.js";
import { SMCCC_VERSIONS } from "../smccc/version.js";
import { checkOpteeLimits, defaultCallsInFlight, OPTEE_DEFAULTS, type OpteeMediatorLimits } from "../smccc/optee/limits.js";
import {
  assignVmIds,
  configSchema,
  DEFAULT_SMCCC_VERSION,
  formatPath,
  semanticProblems,
  type ConfigError,
  type IdleStateConfig,
  type PsciConfig,
  type RawConfig,
  type RuleConfig,
  type ServicesConfig,
} from "./config.js";
import { CPU_PROFILES, type SocId, type Workarounds } from "./platform.js";
import { exclusiveGrantProblems, mediatedForwardProblems } from "./isolation.js";
import { ffaVmProblems, mediatorOf, spmcConfig, type SpmcConfig } from "./ffa.js";
import { HYPERVISOR_HEAP, MemoryMap, memoryMapProblems, placeVms, type SecureRegion } from "./memory-map.js";
import { parseAction, type ArgConstraint, type Rule, type Selector } from "./rules.js";
import { inWrittenForm, parseConfigData, protoKeyProblems } from "./source.js";

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: readonly ConfigError[] };

export type PsciVersionName = "0.2" | "1.0" | "1.1" | "1.3";

export interface ResolvedServices {
  readonly arch: boolean;
  readonly hypInfo: boolean;
  readonly psci:
    | false
    | { readonly version: PsciVersionName; readonly v0_1?: PsciConfig["v0_1"]; readonly powerStateFormat?: "original" | "extended"; readonly cpuIdle?: readonly IdleStateConfig[] };
  readonly trng: boolean;
  readonly pvtime: false | { readonly base: bigint };
  readonly kvm: boolean;
}

export interface VmConfig {
  readonly name: string;
  readonly id: number;
  readonly vcpus: number;
  readonly aarch32: boolean;
  /** Booted at EL2 as on a board without a hypervisor; hands EL2 over later through its hyp stub (docs/handover.md). */
  readonly handover: boolean;
  /** RAM: its IPA base and size, and where it lives in the platform's physical address space. */
  readonly memory: { readonly base: bigint; readonly size: bigint; readonly pa: bigint };
  /** A board profile whose own SMC interface a board module serves (R12 in docs/requirements.md). */
  readonly board: string | null;
  /** The TEE mediator enabled for the VM, and the content key provisioned to it. */
  readonly tee: { readonly mediator: string; readonly contentKey: Uint8Array | null } | null;
  /** For a VM with `tee: ffa`: the other FF-A VMs it may message and share memory with. */
  readonly ffa: { readonly peers: readonly string[] } | null;
  /** SMCCC version told to the VM, encoded as SMCCC_VERSION returns it. */
  readonly smccc: number;
  readonly conduit: "smc" | "hvc";
  /** What a non-zero SMC/HVC immediate gets: KVM's -1-and-skip ("not-supported") or Xen's UNDEF. */
  readonly immediate: "not-supported" | "undef";
  readonly services: ResolvedServices;
  readonly rules: readonly Rule[];
}

export interface PlatformConfig {
  readonly name: string;
  readonly cpu: string;
  readonly workarounds: Workarounds;
  readonly socId: SocId | null;
  readonly secureMemory: readonly SecureRegion[];
  /** SiP device nodes (default: the model's ZynqMP-shaped table) with their boot-time holders. */
  readonly sipNodes: readonly { readonly id: number; readonly name?: string; readonly owner?: string }[] | null;
  readonly memoryMap: MemoryMap;
  /** The trusted OS in the modelled secure world, if any. */
  readonly tee: { readonly os: "optee"; readonly threads: number; readonly maxGuests: number; readonly limits: OpteeMediatorLimits } | null;
  /** The modelled SPMC (FF-A) and its partitions, if any. */
  readonly spmc: SpmcConfig | null;
}

/** A delegate handler: a module (run in a worker thread, or on the hypervisor's: docs/delegates.md) or a process. */
export type DelegateConfig = { readonly module: string; readonly timeoutMs: number; readonly thread: "worker" | "hypervisor" } | { readonly command: readonly string[]; readonly timeoutMs: number };

export interface Config {
  readonly platform: PlatformConfig;
  readonly vms: readonly VmConfig[];
  readonly delegates: Readonly<Record<string, DelegateConfig>>;
  /** The directory of the file the config was read from: relative paths in it (delegates) are resolved there. */
  readonly baseDir?: string;
}

/** How long a delegate may take before the guest gets its error. */
export const DEFAULT_DELEGATE_TIMEOUT_MS = 1000;

/**
 * The SoC identity when a config gives none: none. SMCCC_ARCH_SOC_ID then answers NOT_SUPPORTED, as DEN0028
 * (§7.4) says it does where it is not implemented, and SMCCC_ARCH_FEATURES says so too: a SoC ID names a
 * silicon vendor by its JEP-106 code, and smcvisor claims no vendor's silicon unless the config says to.
 */
export const DEFAULT_SOC_ID: SocId | null = null;

/** Reads a config from YAML or JSON text (at most MAX_CONFIG_BYTES; see source.ts) and validates it. */
export function parseConfigText(text: string, format: "yaml" | "json" = "yaml"): Result<Config> {
  const data = parseConfigData(text, format);
  if (!data.ok) return { ok: false, errors: data.errors };
  return validateConfig(data.data ?? {});
}

export function validateConfig(data: unknown): Result<Config> {
  const r = validateData(data);
  return r.ok ? r : { ok: false, errors: inWrittenForm(r.errors, data) };
}

type UnionIssue = { readonly code?: string; readonly path: readonly PropertyKey[]; readonly message: string; readonly errors?: readonly (readonly UnionIssue[])[] };

/**
 * A value no branch of a union takes (`psci: true | { ... }`): the problem of the branch that got furthest
 * into it (a field of the object form), with its full path, rather than "Invalid input" at the union.
 */
function deepestUnionIssue(i: UnionIssue): { path: PropertyKey[]; message: string } {
  let best: { path: PropertyKey[]; message: string } = { path: [...i.path], message: i.message };
  for (const inner of (i.errors ?? []).flat()) {
    const d = inner.code === "invalid_union" ? deepestUnionIssue(inner) : { path: [...inner.path], message: inner.message };
    const path = [...i.path, ...d.path];
    if (path.length > best.path.length) best = { path, message: d.message };
  }
  return best;
}

function validateData(data: unknown): Result<Config> {
  const proto = protoKeyProblems(data);
  if (proto.length > 0) return { ok: false, errors: proto };
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((i) => {
        const keys = (i as { keys?: string[] }).keys;
        if (i.code === "unrecognized_keys" && keys) {
          return { path: formatPath([...i.path, keys[0]!]), message: `unknown field${keys.length > 1 ? `s ${keys.join(", ")}` : ""}` };
        }
        // A name the record refuses (a VM or delegate name): say why, not "Invalid key in record".
        const inner = (i as { issues?: { message: string }[] }).issues;
        if (i.code === "invalid_key" && inner?.[0]) return { path: formatPath(i.path), message: inner[0].message };
        if (i.code === "invalid_union") {
          const d = deepestUnionIssue(i);
          return { path: formatPath(d.path), message: d.message };
        }
        return { path: formatPath(i.path), message: i.message };
      }).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    };
  }
  const raw = parsed.data;
  const errors = semanticProblems(raw);
  const config = normalize(raw, errors);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: config };
}

function normalize(raw: RawConfig, errors: ConfigError[]): Config {
  const entries = Object.entries(raw.vms);
  const ids = assignVmIds(entries.map(([name, vm]) => [name, vm.id] as const));
  errors.push(...ids.errors);
  const placed = placeVms(
    entries.map(([name, vm]) => ({ name, base: vm.memory.base, size: vm.memory.size, pa: vm.memory.pa })),
    [HYPERVISOR_HEAP, ...raw.platform.secureMemory],
  );
  const memoryMap = new MemoryMap(raw.platform.secureMemory, placed, HYPERVISOR_HEAP);
  for (const p of memoryMapProblems(memoryMap)) {
    errors.push({ path: p.vm !== null ? `vms.${p.vm}.memory${p.field ? `.${p.field}` : ""}` : `platform.secureMemory[${p.region}]`, message: p.message });
  }
  const sipNodes = raw.platform.sip?.nodes ?? null;
  const platform: PlatformConfig = {
    name: raw.platform.name,
    cpu: raw.platform.cpu,
    workarounds: { ...CPU_PROFILES[raw.platform.cpu], ...(raw.platform.workarounds ?? {}) },
    socId: raw.platform.socId === false ? null : (raw.platform.socId ?? DEFAULT_SOC_ID),
    secureMemory: raw.platform.secureMemory,
    sipNodes,
    memoryMap,
    tee: raw.platform.tee ? teeConfig(raw.platform.tee, errors) : null,
    spmc: spmcConfig(raw, ids.ids, errors),
  };
  errors.push(...ffaVmProblems(raw, ids.ids));
  const vms: VmConfig[] = [];
  entries.forEach(([name, vm], k) => {
    const services = resolveServices(raw.defaults.services ?? {}, vm.services);
    const smccc = SMCCC_VERSIONS[(vm.smccc ?? raw.defaults.smccc ?? DEFAULT_SMCCC_VERSION) as keyof typeof SMCCC_VERSIONS];
    vms.push({
      name,
      id: ids.ids.get(name) ?? 0,
      vcpus: vm.vcpus,
      aarch32: vm.aarch32,
      handover: vm.handover,
      memory: { base: vm.memory.base, size: vm.memory.size, pa: placed[k]!.pa },
      board: vm.board ?? null,
      tee: vm.tee === undefined ? null : typeof vm.tee === "string" ? { mediator: vm.tee, contentKey: null } : { mediator: vm.tee.mediator, contentKey: vm.tee.contentKey ? hexBytes(vm.tee.contentKey) : null },
      ffa: mediatorOf(vm.tee) === "ffa" ? { peers: typeof vm.tee === "object" && vm.tee.mediator === "ffa" ? (vm.tee.peers ?? []) : [] } : null,
      smccc,
      conduit: vm.conduit ?? raw.defaults.conduit ?? "hvc",
      immediate: vm.immediate ?? raw.defaults.immediate ?? "not-supported",
      services,
      rules: vm.grants.map((g, i) => normalizeRule(g, i, `vms.${name}.grants[${i}]`, errors, { aarch32: vm.aarch32, smccc })),
    });
  });
  errors.push(...exclusiveGrantProblems(vms));
  if (raw.platform.tee || raw.platform.spmc) errors.push(...mediatedForwardProblems(vms, { tee: raw.platform.tee !== undefined, spmc: raw.platform.spmc !== undefined }));
  for (const [name, vm] of entries) {
    if (mediatorOf(vm.tee) === "optee" && !raw.platform.tee) errors.push({ path: `vms.${name}.tee`, message: "the platform has no TEE (platform.tee)" });
    // A content key lives in the platform's OP-TEE, which an FF-A VM reaches through its OP-TEE partition.
    if (mediatorOf(vm.tee) === "ffa" && typeof vm.tee === "object" && vm.tee.contentKey !== undefined && !raw.platform.tee) {
      errors.push({ path: `vms.${name}.tee.contentKey`, message: "a content key is kept by the platform's OP-TEE: set platform.tee" });
    }
  }
  for (const vm of vms) {
    for (const r of vm.rules) {
      if (r.action.kind === "delegate" && !Object.hasOwn(raw.delegates, r.action.target!)) {
        errors.push({ path: `${r.path}.action`, message: `no delegate named "${r.action.target}" in delegates (have: ${Object.keys(raw.delegates).join(", ") || "none"})` });
      }
    }
  }
  const delegates: Record<string, DelegateConfig> = Object.create(null);
  for (const [name, d] of Object.entries(raw.delegates)) {
    delegates[name] =
      "module" in d
        ? { module: d.module, timeoutMs: d.timeoutMs ?? DEFAULT_DELEGATE_TIMEOUT_MS, thread: d.thread ?? "worker" }
        : { command: d.command, timeoutMs: d.timeoutMs ?? DEFAULT_DELEGATE_TIMEOUT_MS };
  }
  return { platform, vms, delegates };
}

/** OP-TEE's sizes and the mediator's per-VM limits, defaults filled in; limits that let one VM starve another are errors. */
function teeConfig(tee: NonNullable<RawConfig["platform"]["tee"]>, errors: ConfigError[]): NonNullable<PlatformConfig["tee"]> {
  const threads = tee.threads ?? OPTEE_DEFAULTS.threads;
  const maxGuests = tee.maxGuests ?? OPTEE_DEFAULTS.maxGuests;
  const limits: OpteeMediatorLimits = {
    // Per-VM calls in flight default to an equal share of OP-TEE's threads, so no VM can starve another.
    callsInFlight: tee.limits?.callsInFlight ?? defaultCallsInFlight(threads, maxGuests),
    registrations: tee.limits?.registrations ?? OPTEE_DEFAULTS.limits.registrations,
    pages: tee.limits?.pages ?? OPTEE_DEFAULTS.limits.pages,
    sessions: tee.limits?.sessions ?? OPTEE_DEFAULTS.limits.sessions,
  };
  errors.push(...checkOpteeLimits({ threads, maxGuests, callsInFlight: limits.callsInFlight }));
  return { os: tee.os, threads, maxGuests, limits };
}

function hexBytes(hex: string): Uint8Array {
  const h = hex.replace(/^0x/, "");
  return Uint8Array.from(h.match(/../g)!.map((b) => parseInt(b, 16)));
}

/**
 * `cpuIdle: true`: a shallow standby and a core power-down, with latencies of the order a board's firmware
 * gives its cores (the guest's governor picks by how long it expects to idle).
 */
export const DEFAULT_IDLE_STATES: readonly IdleStateConfig[] = [
  { name: "cpu-standby", powerDown: false, stateId: 1, entryLatencyUs: 20, exitLatencyUs: 40, minResidencyUs: 100 },
  { name: "cpu-power-down", powerDown: true, stateId: 2, entryLatencyUs: 150, exitLatencyUs: 300, minResidencyUs: 1000 },
];

function resolveServices(defaults: ServicesConfig, vm: ServicesConfig): ResolvedServices {
  const pick = <K extends keyof ServicesConfig>(k: K): ServicesConfig[K] => (vm[k] !== undefined ? vm[k] : defaults[k]);
  const psci = pick("psci");
  const pvtime = pick("pvtime");
  return {
    arch: pick("arch") ?? true,
    hypInfo: pick("hyp-info") ?? true,
    psci:
      psci === false
        ? false
        : {
            version: (typeof psci === "object" ? psci.version : undefined) ?? "1.1",
            ...(typeof psci === "object" && psci.v0_1 ? { v0_1: psci.v0_1 } : {}),
            ...(typeof psci === "object" && psci.powerStateFormat ? { powerStateFormat: psci.powerStateFormat } : {}),
            ...(typeof psci === "object" && psci.cpuIdle ? { cpuIdle: psci.cpuIdle === true ? DEFAULT_IDLE_STATES : psci.cpuIdle } : {}),
          },
    trng: pick("trng") ?? true,
    pvtime: pvtime === undefined || pvtime === false ? false : { base: pvtime.base },
    kvm: pick("kvm") ?? false,
  };
}

function normalizeRule(g: RuleConfig, index: number, path: string, errors: ConfigError[], vm: { aarch32: boolean; smccc: number }): Rule {
  let selector: Selector;
  if (g.id !== undefined) {
    if ((g.id & 0x8000_0000) !== 0 && (g.id & 0x00ff_0000) !== 0) {
      errors.push({ path: `${path}.id`, message: "bits 23:16 of a fast call ID are must-be-zero or the SVE hint, which dispatch ignores; give the ID without them" });
    } else if ((g.id & 0x00ff_0000) !== 0) {
      errors.push({ path: `${path}.id`, message: "IDs with bits 23:16 set can only be matched by an owner grant" });
    }
    selector = { kind: "id", fid: g.id };
  } else if (g.range !== undefined) {
    selector = { kind: "range", lo: Number(g.range[0]), hi: Number(g.range[1]) };
  } else {
    const [first, last] = ownerRange(g.owner!);
    selector = { kind: "owner", first, last, calls: (g.calls ?? [...CALL_TYPES]) as CallType[] };
  }
  const constraints = Object.entries(g.args ?? {})
    .map(([reg, ranges]) => ({ reg: Number(reg.slice(1)), low32: reg.startsWith("w"), ranges }))
    .sort((a, b) => a.reg - b.reg);
  for (const c of constraints) {
    const problem = constraintProblem(c, selector, vm);
    if (problem) errors.push({ path: `${path}.args.${c.low32 ? "w" : "x"}${c.reg}`, message: problem });
  }
  return {
    index,
    path,
    label: g.name ?? path,
    selector,
    constraints,
    action: parseAction(g.action),
    exclusive: g.exclusive ?? false,
  };
}

/** Which call widths a selector can match for a VM (an AArch32 VM makes SMC32 calls only: SMCCC §2.5). */
function widthsOf(s: Selector, aarch32: boolean): { smc32: boolean; smc64: boolean } {
  let smc32: boolean, smc64: boolean;
  if (s.kind === "id") {
    smc64 = (s.fid & 0x4000_0000) !== 0;
    smc32 = !smc64;
  } else if (s.kind === "range") {
    // Bit 30 set: 0x40000000-0x7FFFFFFF and 0xC0000000-0xFFFFFFFF.
    const hits = (lo: number, hi: number) => s.lo <= hi && lo <= s.hi;
    smc64 = hits(0x4000_0000, 0x7fff_ffff) || hits(0xc000_0000, 0xffff_ffff);
    smc32 = hits(0, 0x3fff_ffff) || hits(0x8000_0000, 0xbfff_ffff);
  } else {
    smc64 = s.calls.some((t) => t.endsWith("64"));
    smc32 = s.calls.some((t) => t.endsWith("32"));
  }
  return { smc32, smc64: smc64 && !aarch32 };
}

/**
 * Why an argument constraint can never hold, or null. Constraints compare what the callee sees: W_n (the
 * low 32 bits) for a `w` register and for every SMC32 call (SMCCC §2.6: SMC32 arguments are 32-bit), and
 * zero for a register beyond the convention's arguments (x7 and up before SMCCC 1.2; docs/policy.md).
 */
function constraintProblem(c: ArgConstraint, s: Selector, vm: { aarch32: boolean; smccc: number }): string | null {
  const name = `${c.low32 ? "w" : "x"}${c.reg}`;
  const w = widthsOf(s, vm.aarch32);
  if (!w.smc32 && !w.smc64) return null;
  const max = c.low32 || !w.smc64 ? 0xffff_ffffn : 0xffff_ffff_ffff_ffffn;
  const over = c.ranges.find(([, hi]) => hi > max);
  if (over) {
    const why = c.low32 ? `${name} is the low 32 bits of x${c.reg}` : `every call this grant matches is SMC32, whose arguments are 32 bits (SMCCC §2.6)`;
    return `0x${(over[0] > max ? over[0] : over[1]).toString(16)} is above 0xffffffff and can never match: ${why}`;
  }
  const lastArg = Math.max(w.smc32 ? registerRules(vm.smccc, false).lastArg : 0, w.smc64 ? registerRules(vm.smccc, true).lastArg : 0);
  if (c.reg > lastArg && !c.ranges.some(([lo]) => lo === 0n)) {
    return `${name} is not an argument of these calls under this VM's SMCCC version (arguments end at x${lastArg}), so it reads as 0, which the constraint does not allow: it can never match`;
  }
  return null;
}
