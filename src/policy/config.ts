/**
 * The smcvisor config: the platform and its VMs, with each VM's policy. Validation is total: every
 * problem is reported as data with the path of the offending field (zod-style), unknown fields are
 * rejected, and nothing is thrown at the caller.
 */
import { z } from "zod";
import { CALL_TYPES } from "../smccc/fid.js";
import { OWNER_KEYS } from "../smccc/owners.js";
import { isSmcccVersionName, SMCCC_VERSIONS, type SmcccVersionName } from "../smccc/version.js";
import { CPU_PROFILES, WA1_ANSWERS, WA2_ANSWERS, WA3_ANSWERS, WA4_ANSWERS, workaroundProblems } from "./platform.js";
import { int, range, size, u32, uintBig, valueOrRange } from "./values.js";

/**
 * VM IDs are 16-bit: the secure world sees a VM's ID as its OP-TEE client ID (OPTEE_SMC_VM_CREATED's a1,
 * and a7, the "hypervisor client ID" register of every OPTEE_SMC_* call: optee_os
 * core/arch/arm/include/sm/optee_smc.h), a uint16_t in which 0 is the hypervisor (HYP_CLNT_ID,
 * core/include/kernel/virtualization.h). 0xFFFF is left out too, so that no 16-bit field that reads all
 * ones (an unset field, or -1 cut to 16 bits) names a VM.
 */
export const VM_ID_MIN = 1;
export const VM_ID_MAX = 0xfffe;

/** The highest SMCCC version whose every rule smcvisor implements (see src/smccc/version.ts). */
export const DEFAULT_SMCCC_VERSION: SmcccVersionName = "1.2";

export const ACTION_PATTERN = /^(emulate|forward|deny|(mediate|delegate):[a-z0-9][a-z0-9_-]*)$/;

const smcccVersion = z.string().refine(isSmcccVersionName, {
  message: `unknown SMCCC version; one of ${Object.keys(SMCCC_VERSIONS).join(", ")}`,
});

const ownerSchema = z.union([
  z.enum(Object.keys(OWNER_KEYS) as [keyof typeof OWNER_KEYS, ...(keyof typeof OWNER_KEYS)[]]),
  z.number().int().min(0).max(63),
]);

const argName = z.string().regex(/^[xw]([1-9]|1[0-7])$/, "argument constraints name registers x1-x17 (whole) or w1-w17 (low 32 bits)");

const ruleSchema = z
  .object({
    name: z.string().min(1).optional(),
    owner: ownerSchema.optional(),
    calls: z.array(z.enum(CALL_TYPES)).min(1).optional(),
    range: range(32, "range").optional(),
    id: u32("id").optional(),
    args: z.record(argName, z.array(valueOrRange(64, "allowed value")).min(1)).optional(),
    action: z.string().regex(ACTION_PATTERN, "action is emulate, forward, deny, mediate:<name> or delegate:<name>"),
    exclusive: z.boolean().optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const selectors = [r.owner !== undefined, r.range !== undefined, r.id !== undefined].filter(Boolean).length;
    if (selectors !== 1) {
      ctx.addIssue({ code: "custom", message: "a grant matches exactly one of: owner, range, id" });
    }
    if (r.calls !== undefined && r.owner === undefined) {
      ctx.addIssue({ code: "custom", path: ["calls"], message: "calls narrows an owner grant; range and id grants already fix the call type" });
    }
    if (r.exclusive && r.action === "deny") {
      ctx.addIssue({ code: "custom", path: ["exclusive"], message: "an exclusive deny grants nothing" });
    }
  });

const contentKey = z.string().regex(/^(0x)?[0-9a-fA-F]{64}$/, "a content key is 32 bytes of hex");

/**
 * One idle state the device tree offers the guest's cpuidle driver (Linux's binding,
 * Documentation/devicetree/bindings/cpu/idle-states.yaml with arm,psci.yaml's `arm,psci-suspend-param`):
 * its CPU_SUSPEND power_state is built from `powerDown` and `stateId` in the VM's format.
 */
const idleStateSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, "an idle state's name is a device-tree node name: lower-case letters, digits and '-', at most 31"),
    powerDown: z.boolean(),
    /** StateID: at most 16 bits, so the same state is valid in both power_state formats (DEN0022 §5.4.2). */
    stateId: u32("stateId", 0, 0xffff),
    entryLatencyUs: u32("entryLatencyUs", 0, 10_000_000),
    exitLatencyUs: u32("exitLatencyUs", 0, 10_000_000),
    minResidencyUs: u32("minResidencyUs", 0, 100_000_000),
  })
  .strict();

const psciConfig = z
  .object({
    /** Idle states for the guest's cpuidle (CPU_SUSPEND): true for smcvisor's two defaults, or a list. */
    cpuIdle: z.union([z.boolean(), z.array(idleStateSchema).min(1).max(8)]).optional(),
    version: z.enum(["0.2", "1.0", "1.1", "1.3"]).optional(),
    /** CPU_SUSPEND's power_state format (PSCI 1.0+; 0.2 always uses the original one). */
    powerStateFormat: z.enum(["original", "extended"]).optional(),
    /** PSCI 0.1 function IDs, as a device tree's cpu_suspend/cpu_off/cpu_on/migrate would name them. */
    v0_1: z.union([z.literal("kvm"), z.literal("xen"), z.object({
      cpu_suspend: u32("cpu_suspend"), cpu_off: u32("cpu_off"), cpu_on: u32("cpu_on"), migrate: u32("migrate"),
    }).strict()]).optional(),
  })
  .strict();

const pvtimeConfig = z.object({ base: uintBig(64, "base") }).strict();

const servicesSchema = z
  .object({
    arch: z.boolean().optional(),
    "hyp-info": z.boolean().optional(),
    psci: z.union([z.boolean(), psciConfig]).optional(),
    trng: z.boolean().optional(),
    pvtime: z.union([z.literal(false), pvtimeConfig]).optional(),
    kvm: z.boolean().optional(),
  })
  .strict();

const memorySchema = z
  .object({
    base: uintBig(64, "base").default(0x4000_0000n),
    size: size("size").default(256n << 20n),
    /** Where the RAM lives in the platform's physical address space; default: placed from 4 GiB up. */
    pa: uintBig(64, "pa").optional(),
  })
  .strict()
  .refine((m) => m.size > 0n && (m.base & 0xfffn) === 0n && (m.size & 0xfffn) === 0n, {
    message: "memory base and size must be non-zero multiples of 4 KiB",
  });

const vmSchema = z
  .object({
    id: u32("id", VM_ID_MIN, VM_ID_MAX).optional(),
    vcpus: int("vcpus", 1, 256).default(1),
    aarch32: z.boolean().default(false),
    /**
     * The hyp-stub handover (docs/handover.md): the kernel starts at EL2 with no hypervisor under it and
     * hands EL2 to smcvisor later through its hyp stub. QEMU backend only: memory.base 0x40200000, SMC conduit, AArch64; every CPU hands over itself.
     */
    handover: z.boolean().default(false),
    memory: memorySchema.default({ base: 0x4000_0000n, size: 256n << 20n }),
    /**
     * A TEE this VM may use through its mediator (enabled by the toolstack when the VM is created): OP-TEE's
     * SMC ABI (`optee`), or FF-A (`ffa`: the partitions of platform.spmc that list the VM, and `peers`, the
     * other FF-A VMs it may message and share memory with).
     */
    tee: z
      .union([
        z.enum(["optee", "ffa"]),
        z.object({
          mediator: z.literal("optee"),
          /** The content key provisioned to this VM alone in the TEE (32 bytes, hex). */
          contentKey: contentKey.optional(),
        }).strict(),
        z.object({
          mediator: z.literal("ffa"),
          contentKey: contentKey.optional(),
          peers: z.array(z.string().min(1)).max(64).optional(),
        }).strict(),
      ])
      .optional(),
    /** A board profile whose own SMC interface (not SMCCC) a board module serves, e.g. "omap4". */
    board: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "a board profile name").optional(),
    smccc: smcccVersion.optional(),
    conduit: z.enum(["smc", "hvc"]).optional(),
    immediate: z.enum(["not-supported", "undef"]).optional(),
    services: servicesSchema.default({}),
    grants: z.array(ruleSchema).default([]),
  })
  .strict();

const workaroundsSchema = z
  .object({
    wa1: z.enum(Object.keys(WA1_ANSWERS) as [keyof typeof WA1_ANSWERS]).optional(),
    wa2: z.enum(Object.keys(WA2_ANSWERS) as [keyof typeof WA2_ANSWERS]).optional(),
    wa3: z.enum(Object.keys(WA3_ANSWERS) as [keyof typeof WA3_ANSWERS]).optional(),
    wa4: z.enum(Object.keys(WA4_ANSWERS) as [keyof typeof WA4_ANSWERS]).optional(),
  })
  .strict();

const socIdSchema = z
  .object({
    jep106Bank: u32("jep106Bank", 0, 0x7f),
    jep106Id: u32("jep106Id", 0, 0xff),
    soc: u32("soc", 0, 0xffff),
    revision: u32("revision", 0, 0x7fff_ffff),
    name: z
      .string()
      .max(135, "the SoC name is at most 135 bytes (136 with its NUL, in x1-x17)")
      .regex(/^[\x20-\x7e]*$/, "the SoC name is printable ASCII")
      .optional(),
  })
  .strict();

const secureRegionSchema = z
  .object({
    name: z.string().min(1),
    base: uintBig(64, "base"),
    size: size("size"),
  })
  .strict()
  .refine((r) => r.size > 0n, { message: "a secure region has a size" });

/**
 * A secure partition of the modelled SPMC (FF-A, DEN0077): its endpoint ID (bit 15 set: the secure world's;
 * 0x8000 is the SPMC's own), its UUID, what runs in it (the modelled OP-TEE behind FF-A, or the test
 * partition) and the VMs that may reach it.
 */
const partitionSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "a partition name is lower-case letters, digits, _ or -"),
    id: u32("id", 0x8001, 0xfffe),
    uuid: z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, "a UUID is written 8-4-4-4-12 hex digits").optional(),
    runs: z.enum(["optee", "test"]),
    vms: z.array(z.string().min(1)).default([]),
  })
  .strict();

const sipNodeSchema = z
  .object({
    id: u32("id"),
    name: z.string().min(1).optional(),
    owner: z.string().optional(),
  })
  .strict();

const platformSchema = z
  .object({
    name: z.string().min(1).default("smcvisor-virt"),
    /** Secure RAM: no normal-world VM may read or write it by any path. */
    secureMemory: z.array(secureRegionSchema).default([]),
    /** A trusted OS in the modelled secure world, and the mediator's per-VM limits. */
    tee: z
      .object({
        os: z.literal("optee"),
        threads: int("threads", 1, 64).optional(),
        maxGuests: int("maxGuests", 1, 64).optional(),
        limits: z
          .object({
            callsInFlight: int("callsInFlight", 1, 64).optional(),
            registrations: int("registrations", 1, 65536).optional(),
            pages: int("pages", 1, 1 << 22).optional(),
            sessions: int("sessions", 1, 65536).optional(),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    /** A modelled SPMC (FF-A) and its secure partitions. */
    spmc: z.object({ partitions: z.array(partitionSchema).max(64).default([]) }).strict().optional(),
    /** The SiP platform-management service's device nodes and who holds them from boot. */
    sip: z.object({ nodes: z.array(sipNodeSchema).optional() }).strict().optional(),
    cpu: z.enum(Object.keys(CPU_PROFILES) as [keyof typeof CPU_PROFILES]).default("cortex-a57"),
    workarounds: workaroundsSchema.optional(),
    socId: z.union([z.literal(false), socIdSchema]).optional(),
  })
  .strict();

const defaultsSchema = z
  .object({
    smccc: smcccVersion.optional(),
    conduit: z.enum(["smc", "hvc"]).optional(),
    immediate: z.enum(["not-supported", "undef"]).optional(),
    services: servicesSchema.optional(),
  })
  .strict();

const delegateSchema = z.union([
  z.object({ module: z.string().min(1), timeoutMs: int("timeoutMs", 1, 60_000).optional(), thread: z.enum(["worker", "hypervisor"]).optional() }).strict(),
  z.object({ command: z.array(z.string().min(1)).min(1), timeoutMs: int("timeoutMs", 1, 60_000).optional() }).strict(),
]);

export const configSchema = z
  .object({
    platform: platformSchema.default({ name: "smcvisor-virt", cpu: "cortex-a57", secureMemory: [] }),
    /** User handlers for `delegate:<name>` grants: a module loaded in-process, or a process spoken to over a socket. */
    delegates: z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "a delegate name is lower-case letters, digits, _ or -"), delegateSchema).default({}),
    defaults: defaultsSchema.default({}),
    vms: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,31}$/, "a VM name is a letter then up to 31 letters, digits, _ or -"), vmSchema)
      .refine((vms) => Object.keys(vms).length > 0, "a config names at least one VM"),
  })
  .strict();

export type RawConfig = z.output<typeof configSchema>;
export type RuleConfig = z.output<typeof ruleSchema>;
export type VmRawConfig = z.output<typeof vmSchema>;
export type ServicesConfig = z.output<typeof servicesSchema>;
export type PsciConfig = z.output<typeof psciConfig>;
export type IdleStateConfig = z.output<typeof idleStateSchema>;

export interface ConfigError {
  /** Dotted path of the offending field, for example "vms.domU.grants[0].action". */
  readonly path: string;
  readonly message: string;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "(top level)" : out;
}


/**
 * Names the trace, the run summary and the secure world's view of a caller use for something other than a
 * VM: the hypervisor's own calls are recorded, summarized and sent to the secure monitor as "hypervisor".
 * Compared without regard to case, so that no VM's name reads like one of them.
 */
export const RESERVED_VM_NAMES: readonly string[] = ["hypervisor"];

/**
 * Each VM's ID: its own `id`, or by default the next free one after the previous VM's, in file order,
 * skipping IDs that any VM names explicitly; past VM_ID_MAX the lowest free one. IDs are unique and
 * always in range: a config with more VMs than IDs is refused.
 */
export function assignVmIds(vms: readonly (readonly [string, number | undefined])[]): { ids: Map<string, number>; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  const ids = new Map<string, number>();
  const owner = new Map<number, string>();
  const named = new Set<number>();
  for (const [, id] of vms) if (id !== undefined) named.add(id);
  let next = VM_ID_MIN;
  let lowest = VM_ID_MIN;
  for (const [name, explicit] of vms) {
    let id: number;
    if (explicit !== undefined) {
      id = explicit;
      const other = owner.get(id);
      if (other !== undefined) errors.push({ path: `vms.${name}.id`, message: `VM ID ${id} is already used by ${other}` });
    } else {
      while (next <= VM_ID_MAX && (named.has(next) || owner.has(next))) next++;
      if (next > VM_ID_MAX) {
        while (lowest <= VM_ID_MAX && (named.has(lowest) || owner.has(lowest))) lowest++;
        if (lowest > VM_ID_MAX) {
          errors.push({ path: `vms.${name}`, message: `no VM ID is free: IDs are ${VM_ID_MIN}-0x${VM_ID_MAX.toString(16).toUpperCase()}` });
          continue;
        }
        id = lowest;
      } else id = next;
    }
    next = Math.max(next, id + 1);
    if (!owner.has(id)) owner.set(id, name);
    ids.set(name, id);
  }
  return { ids, errors };
}

/** Problems the schema itself cannot see: cross-field rules. */
export function semanticProblems(cfg: RawConfig): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const [name, vm] of Object.entries(cfg.vms)) {
    if (RESERVED_VM_NAMES.includes(name.toLowerCase())) {
      errors.push({ path: `vms.${name}`, message: `"${name}" is reserved: the trace, the run summary and the secure monitor name the hypervisor's own calls so; choose another name` });
    }
    if (vm.aarch32) {
      vm.grants.forEach((g, i) => {
        if (g.id !== undefined && (g.id & 0x4000_0000) !== 0) {
          errors.push({ path: `vms.${name}.grants[${i}].id`, message: "an AArch32 VM cannot issue SMC64 calls (SMCCC §2.5: they return -1)" });
        }
      });
    }
  }
  for (const [name, vm] of Object.entries(cfg.vms)) {
    const pv = vm.services.pvtime ?? cfg.defaults.services?.pvtime;
    if (pv) {
      // DEN0057A §3.2: one 64-byte record per vCPU; the guest maps them, so they must be RAM it can see.
      const end = pv.base + BigInt(64 * vm.vcpus);
      if ((pv.base & 63n) !== 0n) errors.push({ path: `vms.${name}.services.pvtime.base`, message: "the stolen-time records must be 64-byte aligned (a 64 KiB page is advised)" });
      else if (pv.base < vm.memory.base || end > vm.memory.base + vm.memory.size) {
        errors.push({ path: `vms.${name}.services.pvtime.base`, message: `the ${vm.vcpus} records (64 bytes each) must lie in the VM's RAM 0x${vm.memory.base.toString(16)}-0x${(vm.memory.base + vm.memory.size - 1n).toString(16)}` });
      }
    }
  }
  const nodeIds = new Map<number, number>();
  cfg.platform.sip?.nodes?.forEach((n, i) => {
    const first = nodeIds.get(n.id);
    if (first !== undefined) errors.push({ path: `platform.sip.nodes[${i}].id`, message: `node ${n.id} is already platform.sip.nodes[${first}]` });
    else nodeIds.set(n.id, i);
    if (n.owner !== undefined && !Object.hasOwn(cfg.vms, n.owner)) errors.push({ path: `platform.sip.nodes[${i}].owner`, message: `no VM named "${n.owner}"` });
  });
  const w = { ...CPU_PROFILES[cfg.platform.cpu], ...(cfg.platform.workarounds ?? {}) };
  for (const p of workaroundProblems(w)) errors.push({ path: `platform.workarounds.${p.key}`, message: p.message });
  return errors;
}
