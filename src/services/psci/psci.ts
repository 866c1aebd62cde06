/**
 * Virtual PSCI, per VM (DEN0022 F.b, PSCI 1.3; versions 0.2, 1.0, 1.1 and 1.3 offered, plus PSCI 0.1 IDs
 * on request). vCPU power states live here; the machine backend makes them real through the PowerPort,
 * and the hypervisor's own physical calls go through the router's hypervisor entry (R9).
 *
 * Like KVM and Xen, CPU_ON completes synchronously: the target is ON the moment CPU_ON succeeds, so of
 * several CPU_ONs racing for one target exactly one gets SUCCESS and the others ALREADY_ON, and
 * ON_PENDING is never returned. The backend starts the target only once the hypervisor's physical CPU_ON
 * has succeeded; a VM's reset puts every vCPU back to its boot state (reset(), from the toolstack).
 */
import type { ServiceClaim } from "../../policy/compile.js";
import type { VmConfig } from "../../policy/load.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { GuestMemory, HandlerReturn, PowerPort } from "../../router/ports.js";
import type { HypervisorCallResult, ServiceContext, ServiceDefinition, ServiceInstance } from "../../router/service.js";
import { ARCH_FUNCTIONS } from "../../smccc/functions/arch.js";
import { PSCI_0_1_KVM_FUNCTIONS, PSCI_FUNCTIONS as F } from "../../smccc/functions/psci.js";
import { decodePowerState, type PowerStateFormat } from "./power-state.js";
import { AFFINITY, PSCI_RET } from "./return-codes.js";
import { AFFINITY_LEVEL_MASK_LO, indexOfMpidr, mpidrLoOf, mpidrOf } from "./topology.js";
import { implementedIn, PSCI_VERSION_VALUES, type PsciVersionName } from "./versions.js";
import { CALL_TYPE } from "../../smccc/fid.js";
import { OEN } from "../../smccc/owners.js";

export const VCPU_OFF = 0;
export const VCPU_ON = 1;
/** Suspended in a power-down state: ON as far as AFFINITY_INFO is concerned (DEN0022 §5.7). */
export const VCPU_SUSPENDED = 2;

/** PSCI_FEATURES(CPU_SUSPEND) flags, DEN0022 §5.15.2. */
const FEATURE_EXTENDED_STATE_ID = 1 << 1;
/** PSCI_FEATURES(SYSTEM_OFF2): bitmap of supported types; bit 0 = HIBERNATE_OFF. */
const SYSTEM_OFF2_HIBERNATE = 1;

const PSCI_0_1_XEN = { cpu_suspend: 0, cpu_off: 1, cpu_on: 2, migrate: 3 };

type LegacyOp = "cpu_suspend" | "cpu_off" | "cpu_on" | "migrate";

/** The PSCI 0.1 IDs a VM asked for, as {id → operation}. */
export function legacyIds(vm: VmConfig): Map<number, LegacyOp> {
  const out = new Map<number, LegacyOp>();
  const psci = vm.services.psci;
  if (psci === false || psci.v0_1 === undefined) return out;
  const ids =
    psci.v0_1 === "kvm"
      ? {
          cpu_suspend: PSCI_0_1_KVM_FUNCTIONS.PSCI_0_1_CPU_SUSPEND.smc32,
          cpu_off: PSCI_0_1_KVM_FUNCTIONS.PSCI_0_1_CPU_OFF.smc32,
          cpu_on: PSCI_0_1_KVM_FUNCTIONS.PSCI_0_1_CPU_ON.smc32,
          migrate: PSCI_0_1_KVM_FUNCTIONS.PSCI_0_1_MIGRATE.smc32,
        }
      : psci.v0_1 === "xen"
        ? PSCI_0_1_XEN
        : psci.v0_1;
  for (const op of ["cpu_suspend", "cpu_off", "cpu_on", "migrate"] as const) out.set(ids[op] >>> 0, op);
  return out;
}

/** PSCI IDs are 0x84000000 + n (SMC32) and 0xC4000000 + n (SMC64), n < 0x20: slot n, or n + 32 for SMC64. */
function nameSlot(fid: number): number {
  return (fid & 0xbfff_ffe0) === (0x8400_0000 | 0) ? (fid & 0x1f) | ((fid >>> 25) & 0x20) : -1;
}

export class PsciService implements ServiceInstance {
  readonly version: number;
  readonly format: PowerStateFormat;
  /** VCPU_OFF / VCPU_ON / VCPU_SUSPENDED per vCPU. vCPU 0 is the boot CPU and starts ON. */
  readonly state: Uint8Array;
  /** MEM_PROTECT: overwrite guest RAM on the next reset (DEN0022 §5.20). */
  memProtect = false;
  /** Counts resets and power-offs: a CPU_ON whose physical answer comes after one belongs to a boot that is gone. */
  private boot = 0;
  private readonly functions: Map<number, string>;
  /** The same names by function number (0-31, +32 for SMC64): handle() reads this array, not the Map. */
  private readonly names: (string | undefined)[] = new Array<string | undefined>(64).fill(undefined);
  private readonly legacy: Map<number, LegacyOp>;
  private readonly memory: GuestMemory | undefined;
  private readonly power: PowerPort | undefined;

  constructor(private readonly vm: VmConfig, private readonly ctx: ServiceContext) {
    const psci = vm.services.psci as { version: PsciVersionName; powerStateFormat?: PowerStateFormat };
    this.version = PSCI_VERSION_VALUES[psci.version];
    // PSCI 0.2 predates the extended format; from 1.0 the default is extended, as KVM reports.
    this.format = this.version < 0x1_0000 ? "original" : (psci.powerStateFormat ?? "extended");
    this.functions = implementedIn(this.version);
    if (vm.aarch32) for (const fid of [...this.functions.keys()]) if (fid & 0x4000_0000) this.functions.delete(fid);
    for (const [fid, name] of this.functions) {
      if (nameSlot(fid) < 0) throw new Error(`PSCI function ${fid.toString(16)} is outside 0x84000000-0x8400001F and 0xC4000000-0xC400001F`);
      this.names[nameSlot(fid)] = name;
    }
    this.legacy = legacyIds(vm);
    this.state = new Uint8Array(vm.vcpus);
    this.state[0] = VCPU_ON;
    this.memory = ctx.vmPorts.memory;
    this.power = ctx.vmPorts.power;
  }

  features(fid: number): number {
    if (this.legacy.has(fid)) return 0;
    if (!this.functions.has(fid)) return -1;
    if (fid === F.PSCI_CPU_SUSPEND.smc32 || fid === F.PSCI_CPU_SUSPEND.smc64) return this.format === "extended" ? FEATURE_EXTENDED_STATE_ID : 0;
    if (fid === F.PSCI_SYSTEM_OFF2.smc32 || fid === F.PSCI_SYSTEM_OFF2.smc64) return SYSTEM_OFF2_HIBERNATE;
    return 0;
  }

  /** PSCI_VERSION and MIGRATE_INFO_TYPE answer the same every time; every other call reads arguments or state. */
  fixed(fid: number): boolean {
    const name = this.legacy.has(fid) ? undefined : this.functions.get(fid);
    return name === "PSCI_VERSION" || name === "PSCI_MIGRATE_INFO_TYPE";
  }

  handle(call: SmcCall, res: SmcResult): HandlerReturn {
    const fid = call.fid;
    if (this.legacy.size !== 0) {
      const legacyOp = this.legacy.get(fid);
      if (legacyOp !== undefined) return this.legacyCall(legacyOp, call, res);
    }
    const slot = nameSlot(fid);
    const name = slot < 0 ? undefined : this.names[slot];
    switch (name) {
      case "PSCI_VERSION": return res.ret(this.version);
      case "PSCI_CPU_SUSPEND": return this.cpuSuspend(call, res, call.w(1), call.x(2), call.x(3));
      case "PSCI_CPU_OFF": return this.cpuOff(call, res);
      case "PSCI_CPU_ON": return this.cpuOn(call, res, call.x(1), call.x(2), call.x(3), false);
      case "PSCI_AFFINITY_INFO": return res.ret(this.affinityInfo(call.hi(1), call.w(1), call.w(2)));
      // DEN0022 §5.9: 2 = no Trusted OS, or one that needs no migration.
      case "PSCI_MIGRATE_INFO_TYPE": return res.ret(2);
      case "PSCI_SYSTEM_OFF": return this.systemOff(call, res, "PSCI_SYSTEM_OFF");
      case "PSCI_SYSTEM_RESET": return this.systemReset(call, res, "PSCI_SYSTEM_RESET");
      case "PSCI_FEATURES": return res.ret(this.psciFeatures(call.w(1)));
      // Offered as a standby state (the implementation's choice, DEN0022 §5.16): it returns.
      case "PSCI_CPU_DEFAULT_SUSPEND": return this.standby(call, res);
      case "PSCI_SYSTEM_SUSPEND": return this.systemSuspend(call, res, call.x(1), call.x(2));
      case "PSCI_SYSTEM_RESET2": return this.systemReset2(call, res, call.w(1));
      case "PSCI_MEM_PROTECT": {
        const previous = this.memProtect ? 1 : 0;
        this.memProtect = call.w(1) !== 0;
        return res.ret(previous);
      }
      case "PSCI_MEM_PROTECT_CHECK_RANGE": return res.ret(this.memProtectCheckRange(call.x(1), call.x(2)));
      case "PSCI_SYSTEM_OFF2": return this.systemOff2(call, res, call.w(1), call.x(2));
      default: return res.ret(PSCI_RET.NOT_SUPPORTED);
    }
  }

  /**
   * AFFINITY_INFO (DEN0022 §5.7): ON if any vCPU in the node is ON (or suspended), OFF if none. The target
   * MPIDR comes as its two words (no BigInt: this is a hot call, Linux polls it while a CPU goes down).
   */
  affinityInfo(targetHi: number, targetLo: number, level: number): number {
    // Aff3 is bits 7:0 of the high word, Aff2-Aff0 bits 23:0 of the low word; anything else is stray.
    if (level > 3 || (targetHi & 0xffff_ff00) !== 0 || (targetLo & 0xff00_0000) !== 0) return PSCI_RET.INVALID_PARAMETERS;
    const mask = AFFINITY_LEVEL_MASK_LO[level]!;
    // Every vCPU's Aff3 is 0: a node with another Aff3 has none.
    if (targetHi !== 0) return PSCI_RET.INVALID_PARAMETERS;
    let found = false;
    for (let i = 0; i < this.state.length; i++) {
      if ((mpidrLoOf(i) & mask) !== (targetLo & mask)) continue;
      found = true;
      if (this.state[i] !== VCPU_OFF) return AFFINITY.ON;
    }
    return found ? AFFINITY.OFF : PSCI_RET.INVALID_PARAMETERS;
  }

  private psciFeatures(queried: number): number {
    const q = queried >>> 0;
    // PSCI 1.0 §5.15: PSCI_FEATURES also reports SMCCC_VERSION, the start of SMCCC 1.1 discovery.
    if (q === ARCH_FUNCTIONS.SMCCC_VERSION.smc32) return this.ctx.features(q) >= 0 ? 0 : PSCI_RET.NOT_SUPPORTED;
    if (!this.functions.has(q)) return PSCI_RET.NOT_SUPPORTED;
    // The VM's policy may deny a PSCI function (a grant over it): then it is not there for this VM.
    return this.ctx.features(q) >= 0 ? this.features(q) : PSCI_RET.NOT_SUPPORTED;
  }

  /** Entry points must lie in the VM's RAM; an AArch64 VM's must be 4-byte aligned, so the Thumb bit is an error (Xen). */
  private entryValid(entry: bigint): boolean {
    const { base, size } = this.vm.memory;
    if (!this.vm.aarch32 && (entry & 3n) !== 0n) return false;
    const pc = this.vm.aarch32 ? entry & ~1n : entry;
    return pc >= base && pc < base + size;
  }

  /**
   * CPU_ON (DEN0022 §5.6). The target is taken (ON) before the physical call, so a racing CPU_ON sees
   * ALREADY_ON whether the physical answer is immediate or a promise. The backend is told to start the
   * target only once the physical CPU_ON succeeded, and before the caller's call completes (PowerPort.cpuOn);
   * when it failed, the backend never hears of it, the target is OFF again and the caller gets
   * INTERNAL_FAILURE.
   */
  private cpuOn(call: SmcCall, res: SmcResult, target: bigint, entry: bigint, context: bigint, legacy: boolean): HandlerReturn {
    const index = indexOfMpidr(target, this.state.length);
    // PSCI 0.1 knows no ALREADY_ON or INVALID_ADDRESS: KVM and Xen answer INVALID_PARAMETERS there.
    if (index < 0) return res.ret(PSCI_RET.INVALID_PARAMETERS);
    if (!this.entryValid(entry)) return res.ret(legacy ? PSCI_RET.INVALID_PARAMETERS : PSCI_RET.INVALID_ADDRESS);
    if (this.state[index] !== VCPU_OFF) return res.ret(legacy ? PSCI_RET.INVALID_PARAMETERS : PSCI_RET.ALREADY_ON);
    // ON from this instant: a racing CPU_ON for the same target sees ALREADY_ON.
    this.state[index] = VCPU_ON;
    const caller = call.vcpu;
    const boot = this.boot;
    const x0 = legacy ? 0n : context;
    const physical = this.ctx.hypervisorCall(`psci: power on vCPU ${index}`, F.PSCI_CPU_ON.smc64, [0n, mpidrOf(index), entry, context], caller);
    const finish = (r: HypervisorCallResult): void => {
      // The VM was reset or powered off while the physical call was out: the state is the new boot's, and
      // the machine reset (a physical SYSTEM_RESET made after this CPU_ON) has turned the CPU off again.
      if (boot !== this.boot) return res.ret(PSCI_RET.INTERNAL_FAILURE);
      const code = Number(BigInt.asIntN(64, r.regs[0]!));
      if (code !== PSCI_RET.SUCCESS) {
        // The physical CPU did not start: the target is OFF again and nothing was started (DEN0022 §5.6:
        // INTERNAL_FAILURE).
        this.state[index] = VCPU_OFF;
        return res.ret(PSCI_RET.INTERNAL_FAILURE);
      }
      this.power?.cpuOn(caller, index, entry, x0);
      res.ret(PSCI_RET.SUCCESS);
    };
    if (physical instanceof Promise) return physical.then(finish);
    finish(physical);
  }

  private cpuOff(call: SmcCall, res: SmcResult): HandlerReturn {
    const vcpu = call.vcpu;
    this.state[vcpu] = VCPU_OFF;
    this.power?.cpuOff(vcpu);
    res.halt();
    const physical = this.ctx.hypervisorCall(`psci: power off vCPU ${vcpu}`, F.PSCI_CPU_OFF.smc32, [], vcpu);
    if (physical instanceof Promise) return physical.then(() => undefined);
  }

  private cpuSuspend(call: SmcCall, res: SmcResult, powerState: number, entry: bigint, context: bigint): HandlerReturn {
    const ps = decodePowerState(powerState, this.format);
    if (ps === null) return res.ret(PSCI_RET.INVALID_PARAMETERS);
    // Standby: the core waits for an interrupt and returns (KVM: a WFI).
    if (!ps.powerDown) return this.standby(call, res);
    if (!this.entryValid(entry)) return res.ret(PSCI_RET.INVALID_ADDRESS);
    // Power-down: the core loses its context and resumes at the entry point with x0 = context.
    this.state[call.vcpu] = VCPU_SUSPENDED;
    this.power?.cpuSuspend(call.vcpu, entry, context);
    res.halt();
  }

  /** A standby state (DEN0022 §5.4.2): SUCCESS once the core has waited for a wake-up event (the machine's wait). */
  private standby(call: SmcCall, res: SmcResult): HandlerReturn {
    this.power?.cpuStandby?.(call.vcpu);
    return res.ret(PSCI_RET.SUCCESS);
  }

  /** The machine woke a vCPU from a power-down suspend. */
  resumed(vcpu: number): void {
    if (this.state[vcpu] === VCPU_SUSPENDED) this.state[vcpu] = VCPU_ON;
  }

  /**
   * A vCPU that was started without smcvisor is ON from now: a handover VM's secondary, started by its
   * kernel through the machine's own PSCI before the kernel handed EL2 over (docs/handover.md), which
   * smcvisor learns of at that vCPU's handover. Its later CPU_OFF and CPU_ON then follow DEN0022 §5.5-5.6
   * (CPU_ON while it runs is ALREADY_ON). Only an OFF vCPU changes; returns whether it did.
   */
  startedOutside(vcpu: number): boolean {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.state.length) throw new RangeError(`psci: no vCPU ${vcpu} (the VM has ${this.state.length})`);
    if (this.state[vcpu] !== VCPU_OFF) return false;
    this.state[vcpu] = VCPU_ON;
    return true;
  }

  private systemSuspend(call: SmcCall, res: SmcResult, entry: bigint, context: bigint): HandlerReturn {
    // DEN0022 §5.17: every other core must be off (TF-A, KVM and Xen answer DENIED otherwise).
    for (let i = 0; i < this.state.length; i++) if (i !== call.vcpu && this.state[i] !== VCPU_OFF) return res.ret(PSCI_RET.DENIED);
    if (!this.entryValid(entry)) return res.ret(PSCI_RET.INVALID_ADDRESS);
    this.state[call.vcpu] = VCPU_SUSPENDED;
    this.power?.cpuSuspend(call.vcpu, entry, context);
    res.halt();
  }

  private systemOff(call: SmcCall, res: SmcResult, reason: string): HandlerReturn {
    this.boot++;
    this.state.fill(VCPU_OFF);
    this.power?.systemOff(call.vcpu, reason);
    res.halt();
  }

  /**
   * SYSTEM_RESET and SYSTEM_RESET2 (DEN0022): PSCI decides, the backend resets the machine and then
   * has the toolstack reset every layer's state for the VM (Hypervisor.resetDomain, which calls reset()
   * here). The vCPU states go back to boot here too, so that a VM without a backend behaves the same.
   */
  private systemReset(call: SmcCall, res: SmcResult, reason: string): HandlerReturn {
    if (this.memProtect && this.memory) wipe(this.memory);
    this.reset();
    this.power?.systemReset(call.vcpu, reason);
    res.halt();
  }

  /**
   * The VM restarts: vCPU 0 ON, every other vCPU OFF, no suspended state, and any CPU_ON still waiting for
   * its physical answer is void. MEM_PROTECT stays as it is: its setting survives resets (DEN0022 §5.20;
   * TF-A keeps it in non-volatile memory, plat_psci_ops write_mem_protect).
   */
  reset(): void {
    this.boot++;
    this.state.fill(VCPU_OFF);
    this.state[0] = VCPU_ON;
  }

  /** SYSTEM_RESET2 (DEN0022 §5.18): bit 31 set = vendor type (none offered); architectural type 0 = WARM_RESET. */
  private systemReset2(call: SmcCall, res: SmcResult, type: number): HandlerReturn {
    if (type !== 0) return res.ret(PSCI_RET.INVALID_PARAMETERS);
    return this.systemReset(call, res, "PSCI_SYSTEM_RESET2 (WARM_RESET)");
  }

  /** SYSTEM_OFF2 (DEN0022 F.b §5.25): HIBERNATE_OFF (1), and 0 which F.b also accepts for it; the cookie must be 0. */
  private systemOff2(call: SmcCall, res: SmcResult, type: number, cookie: bigint): HandlerReturn {
    if ((type !== 0 && type !== 1) || cookie !== 0n) return res.ret(PSCI_RET.INVALID_PARAMETERS);
    return this.systemOff(call, res, "PSCI_SYSTEM_OFF2 (HIBERNATE_OFF)");
  }

  /** MEM_PROTECT_CHECK_RANGE (DEN0022 §5.21): SUCCESS if the whole range is RAM that MEM_PROTECT covers. */
  private memProtectCheckRange(base: bigint, length: bigint): number {
    const { base: ram, size } = this.vm.memory;
    if (length === 0n || base + length - 1n > 0xffff_ffff_ffff_ffffn) return PSCI_RET.DENIED;
    return base >= ram && base + length <= ram + size ? PSCI_RET.SUCCESS : PSCI_RET.DENIED;
  }

  private legacyCall(op: LegacyOp, call: SmcCall, res: SmcResult): HandlerReturn {
    switch (op) {
      case "cpu_on": return this.cpuOn(call, res, call.x(1), call.x(2), 0n, true);
      case "cpu_off": return this.cpuOff(call, res);
      case "cpu_suspend": {
        // PSCI 0.1 uses the original format and has no context ID.
        const ps = decodePowerState(call.w(1), "original");
        if (ps === null) return res.ret(PSCI_RET.INVALID_PARAMETERS);
        if (!ps.powerDown) return this.standby(call, res);
        if (!this.entryValid(call.x(2))) return res.ret(PSCI_RET.INVALID_PARAMETERS);
        this.state[call.vcpu] = VCPU_SUSPENDED;
        this.power?.cpuSuspend(call.vcpu, call.x(2), 0n);
        return res.halt();
      }
      case "migrate": return res.ret(PSCI_RET.NOT_SUPPORTED);
    }
  }
}

/** MEM_PROTECT's promise: nothing the VM left in RAM survives the reset. */
function wipe(memory: GuestMemory): void {
  if (memory.clear) return memory.clear();
  const chunk = new Uint8Array(1 << 20);
  for (let off = 0n; off < memory.size; off += BigInt(chunk.length)) {
    const n = memory.size - off < BigInt(chunk.length) ? Number(memory.size - off) : chunk.length;
    memory.write(memory.base + off, n === chunk.length ? chunk : chunk.subarray(0, n));
  }
}

export const PSCI_SERVICE: ServiceDefinition = {
  name: "psci",
  enabled: (vm) => vm.services.psci !== false,
  claims: (vm): ServiceClaim[] => {
    const claims: ServiceClaim[] = [{ service: "psci", owner: OEN.STD_SECURE, types: vm.aarch32 ? [CALL_TYPE.fast32] : [CALL_TYPE.fast32, CALL_TYPE.fast64], first: 0x00, last: 0x1f }];
    const legacy = [...legacyIds(vm).keys()];
    if (legacy.length > 0) claims.push({ service: "psci", owner: -1, types: [], first: 0, last: -1, fids: legacy });
    return claims;
  },
  create: (ctx) => new PsciService(ctx.vm, ctx),
};
