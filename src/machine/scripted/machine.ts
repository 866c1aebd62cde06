/**
 * The in-process machine: every VM of a config as a domain with scripted vCPUs, guest RAM and a manual
 * clock. Same hypervisor, same router, same services as under QEMU; only the trap source differs.
 */
import { Hypervisor, type Domain, type DomainResetResult, type HypervisorOptions } from "../../hypervisor/hypervisor.js";
import { parseConfigText, type Config, type VmConfig } from "../../policy/load.js";
import type { TraceRing } from "../../trace/ring.js";
import { ArrayGuestMemory, IN_PROCESS_RAM_MAX } from "./memory.js";
import { ManualTime } from "./time.js";
import { ScriptedVcpu } from "./vcpu.js";
import type { PowerPort } from "../../router/ports.js";
import type { PsciService } from "../../services/psci/psci.js";
import { loadDelegates } from "../delegates/load.js";
import { BOARDS } from "../boards/index.js";

/**
 * A config this machine cannot run, for reasons its schema cannot know (a mediator or board that is not
 * registered, a VM beyond the backend's limits): the operator's to fix. The message has one line per
 * problem, each with its path.
 */
export class MachineConfigError extends Error {
  constructor(readonly errors: readonly { readonly path: string; readonly message: string }[]) {
    super(errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
    this.name = "MachineConfigError";
  }
}

/** Power events a ScriptedPower keeps. */
export const POWER_EVENTS_KEPT = 1024;

/** The machine side of virtual PSCI for in-process VMs: vCPU power states and what happened to the VM. */
export class ScriptedPower implements PowerPort {
  vm: ScriptedVm | null = null;
  /** "running" or "off" (SYSTEM_OFF*). */
  state: "running" | "off" = "running";
  /**
   * What happened, in order: "cpu-on 1 by 0", "system-off PSCI_SYSTEM_OFF", ... The last POWER_EVENTS_KEPT
   * only: a guest that powers vCPUs on and off forever must not grow this without a bound.
   */
  readonly events: string[] = [];
  /** Events no longer in `events` (the oldest, dropped to keep it bounded). */
  dropped = 0;
  resets = 0;
  /** What the toolstack said about the last reset (null before the first, or while it is in progress). */
  lastReset: DomainResetResult | null = null;
  /** Settles when the last reset has completed and vCPU 0 runs again (the toolstack may answer later). */
  booted: Promise<void> = Promise.resolve();

  private vcpu(i: number): ScriptedVcpu {
    return this.vm!.vcpus[i]!;
  }

  private note(event: string): void {
    if (this.events.length >= POWER_EVENTS_KEPT) {
      // Dropped in halves, so that keeping the log bounded costs O(1) per event on average.
      this.events.splice(0, POWER_EVENTS_KEPT / 2);
      this.dropped += POWER_EVENTS_KEPT / 2;
    }
    this.events.push(event);
  }

  cpuOn(caller: number, target: number, entry: bigint, context: bigint): void {
    this.note(`cpu-on ${target} by ${caller}`);
    this.vcpu(target).start(entry, context);
  }

  cpuOff(vcpu: number): void {
    this.note(`cpu-off ${vcpu}`);
    this.vcpu(vcpu).power = "off";
  }

  cpuSuspend(vcpu: number, entry: bigint, context: bigint): void {
    this.note(`cpu-suspend ${vcpu}`);
    const v = this.vcpu(vcpu);
    v.power = "suspended";
    v.resumeAt = [entry, context];
  }

  /** A scripted vCPU's standby ends at once: the wake-up event a real core waits for is assumed to have come. */
  cpuStandby(vcpu: number): void {
    this.note(`cpu-standby ${vcpu}`);
  }

  systemOff(_vcpu: number, reason: string): void {
    this.note(`system-off ${reason}`);
    this.state = "off";
    for (const v of this.vm!.vcpus) v.power = "off";
  }

  /**
   * The machine resets: every vCPU stops, then the toolstack resets the domain (every layer's state for
   * the VM), then vCPU 0 boots again at the start of RAM. Nothing of the old boot runs while the domain is
   * reset (OP-TEE relies on it, as Xen's optee_domain_destroy notes).
   */
  systemReset(_vcpu: number, reason: string): void {
    this.note(`system-reset ${reason}`);
    this.resets++;
    const vm = this.vm!;
    for (const v of vm.vcpus) v.power = "off";
    this.lastReset = null;
    const boot = (r: DomainResetResult): void => {
      this.lastReset = r;
      vm.vcpus[0]!.start(vm.domain.config.memory.base, 0n);
    };
    const r = vm.domain.reset();
    if (r instanceof Promise) this.booted = r.then(boot);
    else boot(r);
  }
}

export class ScriptedVm {
  readonly vcpus: ScriptedVcpu[] = [];

  constructor(readonly domain: Domain, readonly memory: ArrayGuestMemory, readonly time: ManualTime, readonly power: ScriptedPower, trace: TraceRing) {
    power.vm = this;
    for (let i = 0; i < domain.config.vcpus; i++) {
      const v = new ScriptedVcpu(domain, trace, i, domain.config.aarch32);
      v.pc = domain.config.memory.base;
      // vCPU 0 boots; the others wait for PSCI CPU_ON (DEN0022 §6.3).
      if (i > 0) v.power = "off";
      this.vcpus.push(v);
    }
  }

  /** An interrupt for a vCPU in a power-down suspend: it resumes at its entry point with x0 = context. */
  wake(n: number): ScriptedVcpu {
    const v = this.vcpu(n);
    if (v.power !== "suspended" || v.resumeAt === null) throw new Error(`vCPU ${n} is not suspended`);
    const [entry, context] = v.resumeAt;
    v.start(entry, context);
    (this.domain.routed.services.get("psci") as PsciService | undefined)?.resumed(n);
    return v;
  }

  get name(): string {
    return this.domain.name;
  }

  vcpu(n: number): ScriptedVcpu {
    const v = this.vcpus[n];
    if (!v) throw new RangeError(`${this.name} has ${this.vcpus.length} vCPUs; there is no vCPU ${n}`);
    return v;
  }
}

export class ScriptedMachine {
  private readonly vms = new Map<string, ScriptedVm>();

  private constructor(readonly hypervisor: Hypervisor, readonly config: Config, ports: Map<string, { memory: ArrayGuestMemory; time: ManualTime; power: ScriptedPower }>) {
    for (const [name, domain] of hypervisor.domains) {
      const p = ports.get(name)!;
      this.vms.set(name, new ScriptedVm(domain, p.memory, p.time, p.power, hypervisor.router.trace));
    }
  }

  /**
   * Builds a machine from a validated config; throws a MachineConfigError with every problem listed if
   * the VMs cannot be created (what config validation cannot know: registered mediators, boards, this
   * backend's limits).
   */
  static fromConfig(config: Config, opts: HypervisorOptions = {}): ScriptedMachine {
    const limits = config.vms
      .filter((vm) => vm.memory.size > IN_PROCESS_RAM_MAX)
      .map((vm) => ({ path: `vms.${vm.name}.memory.size`, message: `in-process VMs have at most 1 TiB of RAM (this one has 0x${vm.memory.size.toString(16)} bytes)` }));
    if (limits.length > 0) throw new MachineConfigError(limits);
    const all = new Map<string, { memory: ArrayGuestMemory; time: ManualTime; power: ScriptedPower }>();
    const ports = (vm: VmConfig) => {
      const p = { memory: new ArrayGuestMemory(vm.memory.base, vm.memory.size), time: new ManualTime(), power: new ScriptedPower() };
      all.set(vm.name, p);
      return p;
    };
    const r = Hypervisor.fromConfig(config, { boards: BOARDS, ...opts }, ports);
    if (!r.ok) throw new MachineConfigError(r.errors);
    return new ScriptedMachine(r.hypervisor, config, all);
  }

  /**
   * Builds a machine whose config may name delegate handlers: they are loaded (modules) or started
   * (processes) first. `close()` stops the processes.
   */
  static async create(config: Config, opts: HypervisorOptions & { cwd?: string } = {}): Promise<ScriptedMachine> {
    let machine: ScriptedMachine | null = null;
    const delegates = await loadDelegates(config, {
      cwd: opts.cwd ?? process.cwd(),
      memoryOf: (vm) => machine?.vm(vm).memory,
      ...(opts.log ? { log: opts.log } : {}),
    });
    try {
      machine = ScriptedMachine.fromConfig(config, { ...opts, delegates: delegates.targets });
    } catch (e) {
      delegates.close();
      throw e;
    }
    machine.closers.push(() => delegates.close());
    return machine;
  }

  private readonly closers: (() => void)[] = [];

  /** Stops what the machine started (delegate processes). */
  close(): void {
    for (const c of this.closers.splice(0)) c();
  }

  /** Builds a machine from YAML or JSON text; throws with every config problem listed. For tests. */
  static fromText(text: string, format: "yaml" | "json" = "yaml", opts: HypervisorOptions = {}): ScriptedMachine {
    const parsed = parseConfigText(text, format);
    if (!parsed.ok) throw new MachineConfigError(parsed.errors);
    return ScriptedMachine.fromConfig(parsed.value, opts);
  }

  vm(name: string): ScriptedVm {
    const v = this.vms.get(name);
    if (!v) throw new Error(`no VM named "${name}" (have: ${[...this.vms.keys()].join(", ")})`);
    return v;
  }

  get trace(): TraceRing {
    return this.hypervisor.router.trace;
  }
}
