/**
 * Loading a config: text (YAML or JSON) → validated raw config → normalized `Config`.
 * Errors are returned as data with paths; this module never throws on bad input.
 */
import { LineCounter, parseDocument } from "yaml";
import { CALL_TYPES, type CallType } from "../smccc/fid.js";
import { ownerRange } from "../smccc/owners.js";
import { SMCCC_VERSIONS } from "../smccc/version.js";
import { checkOpteeLimits, defaultCallsInFlight, OPTEE_DEFAULTS, type OpteeMediatorLimits } from "../smccc/optee/limits.js";
import {
  configSchema,
  DEFAULT_SMCCC_VERSION,
  formatPath,
  semanticProblems,
  type ConfigError,
  type PsciConfig,
  type RawConfig,
  type RuleConfig,
  type ServicesConfig,
} from "./config.js";
import { CPU_PROFILES, type SocId, type Workarounds } from "./platform.js";
import { parseAction, selectorIntervals, type Rule, type Selector } from "./rules.js";
import { MemoryMap, memoryMapProblems, placeVms, type SecureRegion } from "./memory-map.js";

export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: readonly ConfigError[] };

export type PsciVersionName = "0.2" | "1.0" | "1.1" | "1.3";

export interface ResolvedServices {
  readonly arch: boolean;
  readonly hypInfo: boolean;
  readonly psci: false | { readonly version: PsciVersionName; readonly v0_1?: PsciConfig["v0_1"]; readonly powerStateFormat?: "original" | "extended" };
  readonly trng: boolean;
  readonly pvtime: false | { readonly base: bigint };
  readonly kvm: boolean;
}

export interface VmConfig {
  readonly name: string;
  readonly id: number;
  readonly vcpus: number;
  readonly aarch32: boolean;
  /** RAM: its IPA base and size, and where it lives in the platform's physical address space. */
  readonly memory: { readonly base: bigint; readonly size: bigint; readonly pa: bigint };
  /** A board profile whose own SMC interface a board module serves (seed 004). */
  readonly board: string | null;
  /** The TEE mediator enabled for the VM, and the content key provisioned to it. */
  readonly tee: { readonly mediator: string; readonly contentKey: Uint8Array | null } | null;
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

/** The SoC identity used when a config does not give one (example values, not a real SoC). */
export const DEFAULT_SOC_ID: SocId = { jep106Bank: 0x4, jep106Id: 0x3b, soc: 0x5356, revision: 1, name: "smcvisor virtual platform" };

export function parseConfigText(text: string, format: "yaml" | "json" = "yaml"): Result<Config> {
  let data: unknown;
  if (format === "json") {
    try {
      data = JSON.parse(text);
    } catch (e) {
      return { ok: false, errors: [{ path: "(file)", message: `not valid JSON: ${(e as Error).message}` }] };
    }
  } else {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
    if (doc.errors.length > 0) {
      return {
        ok: false,
        errors: doc.errors.map((e) => ({
          path: ((p) => `(line ${p.line}, column ${p.col})`)(lineCounter.linePos(e.pos[0])),
          message: `not valid YAML: ${e.message.split("\n")[0]}`,
        })),
      };
    }
    data = doc.toJS({ maxAliasCount: 100 });
  }
  return validateConfig(data ?? {});
}

export function validateConfig(data: unknown): Result<Config> {
  const parsed = configSchema.safeParse(data);
  if (!parsed.success) {
    return {
      ok: false,
      errors: parsed.error.issues.map((i) => {
        const keys = (i as { keys?: string[] }).keys;
        if (i.code === "unrecognized_keys" && keys) {
          return { path: formatPath([...i.path, keys[0]!]), message: `unknown field${keys.length > 1 ? `s ${keys.join(", ")}` : ""}` };
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
  const placed = placeVms(Object.entries(raw.vms).map(([name, vm]) => ({ name, base: vm.memory.base, size: vm.memory.size, pa: vm.memory.pa })));
  const memoryMap = new MemoryMap(raw.platform.secureMemory, placed);
  for (const p of memoryMapProblems(memoryMap)) errors.push({ path: p.vm ? `vms.${p.vm}.memory` : "platform.secureMemory", message: p.message });
  const sipNodes = raw.platform.sip?.nodes ?? null;
  sipNodes?.forEach((n, i) => {
    if (n.owner !== undefined && !(n.owner in raw.vms)) errors.push({ path: `platform.sip.nodes[${i}].owner`, message: `no VM named "${n.owner}"` });
  });
  const platform: PlatformConfig = {
    name: raw.platform.name,
    cpu: raw.platform.cpu,
    workarounds: { ...CPU_PROFILES[raw.platform.cpu], ...(raw.platform.workarounds ?? {}) },
    socId: raw.platform.socId === false ? null : (raw.platform.socId ?? DEFAULT_SOC_ID),
    secureMemory: raw.platform.secureMemory,
    sipNodes,
    memoryMap,
    tee: raw.platform.tee
      ? {
          os: raw.platform.tee.os,
          threads: raw.platform.tee.threads ?? OPTEE_DEFAULTS.threads,
          maxGuests: raw.platform.tee.maxGuests ?? OPTEE_DEFAULTS.maxGuests,
          // Per-VM calls in flight default to an equal share of OP-TEE's threads, so no VM can starve another.
          limits: { callsInFlight: defaultCallsInFlight(raw.platform.tee.threads ?? OPTEE_DEFAULTS.threads, raw.platform.tee.maxGuests ?? OPTEE_DEFAULTS.maxGuests), ...OPTEE_DEFAULTS.limits, ...(raw.platform.tee.limits ?? {}) },
        }
      : null,
  };
  if (platform.tee) errors.push(...checkOpteeLimits({ threads: platform.tee.threads, maxGuests: platform.tee.maxGuests, callsInFlight: platform.tee.limits.callsInFlight }));
  const vms: VmConfig[] = [];
  let nextId = 1;
  for (const [name, vm] of Object.entries(raw.vms)) {
    const id = vm.id ?? nextId;
    nextId = Math.max(nextId, id) + 1;
    const services = resolveServices(raw.defaults.services ?? {}, vm.services);
    vms.push({
      name,
      id,
      vcpus: vm.vcpus,
      aarch32: vm.aarch32,
      memory: { base: vm.memory.base, size: vm.memory.size, pa: placed.find((p) => p.vm === name)!.pa },
      board: vm.board ?? null,
      tee: vm.tee === undefined ? null : typeof vm.tee === "string" ? { mediator: vm.tee, contentKey: null } : { mediator: vm.tee.mediator, contentKey: vm.tee.contentKey ? hexBytes(vm.tee.contentKey) : null },
      smccc: SMCCC_VERSIONS[(vm.smccc ?? raw.defaults.smccc ?? DEFAULT_SMCCC_VERSION) as keyof typeof SMCCC_VERSIONS],
      conduit: vm.conduit ?? raw.defaults.conduit ?? "hvc",
      immediate: vm.immediate ?? raw.defaults.immediate ?? "not-supported",
      services,
      rules: vm.grants.map((g, i) => normalizeRule(g, i, `vms.${name}.grants[${i}]`, errors)),
    });
  }
  errors.push(...exclusivityProblems(vms));
  for (const [name, vm] of Object.entries(raw.vms)) {
    if (vm.tee !== undefined && !raw.platform.tee) errors.push({ path: `vms.${name}.tee`, message: "the platform has no TEE (platform.tee)" });
  }
  for (const vm of vms) {
    for (const r of vm.rules) {
      if (r.action.kind === "delegate" && !(r.action.target! in raw.delegates)) {
        errors.push({ path: `${r.path}.action`, message: `no delegate named "${r.action.target}" in delegates (have: ${Object.keys(raw.delegates).join(", ") || "none"})` });
      }
    }
  }
  const delegates: Record<string, DelegateConfig> = {};
  for (const [name, d] of Object.entries(raw.delegates)) {
    delegates[name] = "module" in d ? { module: d.module, timeoutMs: d.timeoutMs ?? DEFAULT_DELEGATE_TIMEOUT_MS, thread: d.thread ?? "worker" } : { command: d.command, timeoutMs: d.timeoutMs ?? DEFAULT_DELEGATE_TIMEOUT_MS };
  }
  return { platform, vms, delegates };
}

function hexBytes(hex: string): Uint8Array {
  const h = hex.replace(/^0x/, "");
  return Uint8Array.from(h.match(/../g)!.map((b) => parseInt(b, 16)));
}

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
          },
    trng: pick("trng") ?? true,
    pvtime: pvtime === undefined || pvtime === false ? false : { base: pvtime.base },
    kvm: pick("kvm") ?? false,
  };
}

function normalizeRule(g: RuleConfig, index: number, path: string, errors: ConfigError[]): Rule {
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

/** An exclusive grant gives one VM sole use of its IDs: no other VM may hold a non-deny grant over them. */
function exclusivityProblems(vms: readonly VmConfig[]): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const owner of vms) {
    for (const ex of owner.rules) {
      if (!ex.exclusive) continue;
      const exIv = selectorIntervals(ex.selector);
      for (const other of vms) {
        if (other === owner) continue;
        for (const r of other.rules) {
          if (r.action.kind === "deny") continue;
          const overlaps = selectorIntervals(r.selector).some(([lo, hi]) => exIv.some(([elo, ehi]) => lo <= ehi && elo <= hi));
          if (overlaps) errors.push({ path: r.path, message: `overlaps ${ex.path}, which grants those IDs exclusively to ${owner.name}` });
        }
      }
    }
  }
  return errors;
}
