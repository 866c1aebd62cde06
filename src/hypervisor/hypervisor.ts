/**
 * The hypervisor: domains (VMs) and the toolstack operations on them, over one router. Machine backends
 * (scripted vCPUs in-process, QEMU with the EL2 shim) create domains here and hand every trap to
 * `domain.trap()`. Every VM, the privileged one included, goes through the same path (R7).
 */
import { exclusiveClaimProblems } from "../policy/isolation.js";
import { RESERVED_VM_NAMES, VM_ID_MAX, VM_ID_MIN } from "../policy/config.js";
import type { Config, PlatformConfig, VmConfig } from "../policy/load.js";
import type { VmMemory } from "../policy/memory-map.js";
import { hex32 } from "../smccc/fid.js";
import { Router, type AddVmError } from "../router/router.js";
import type { BoardFirmware, CallTarget, Clock, GuestMemory, VmPorts } from "../router/ports.js";
import type { RoutedVm } from "../router/routed-vm.js";
import type { HypervisorCallResult, ServiceDefinition } from "../router/service.js";
import { PSCI_FUNCTIONS } from "../smccc/functions/psci.js";
import { STANDARD_SERVICES } from "../services/standard.js";
import type { ByteGenerator } from "../firmware/monitor/entropy.js";
import { MonitorModel } from "../firmware/monitor/monitor.js";
import { OpteeOs } from "../firmware/optee/os.js";
import { defaultTas } from "../firmware/optee/tas/index.js";
import type { EnableResult, Mediator, MediatorFactory } from "../mediators/mediator.js";
import { OpteeMediator } from "../mediators/optee/mediator.js";
import { FFA_HYPERVISOR_OWNER, FfaMediator } from "../mediators/ffa/mediator.js";
import type { FfaMediatorHost } from "../mediators/ffa/spmc-port.js";
import { SpmcModel, type SpmcMemory, type SpmcPartitionEntry } from "../firmware/spmc/spmc.js";
import { TestPartition } from "../firmware/spmc/partitions/test-sp.js";
import { OpteeFfaPartition } from "../firmware/optee/ffa.js";
import type { SecurePartition } from "../firmware/spmc/partition.js";
import { HypervisorHeap, PAGE } from "./heap.js";
import { TraceRing } from "../trace/ring.js";
import { RateLimitedLog } from "./rate-limited-log.js";
import type { ChaCha20 } from "../firmware/optee/chacha20.js";
import { seededGenerator } from "../firmware/monitor/entropy.js";
import type { HypervisorObserver } from "./observer.js";

export interface HypervisorOptions {
  /** Timestamps for trace events; null (the default) records none, which keeps runs deterministic. */
  readonly clock?: Clock | null;
  readonly traceCapacity?: number;
  /** The router's answer cache for fixed answers (default on; AnswerCache.remember). */
  readonly answerCache?: boolean;
  /** The secure monitor; the modelled one (src/firmware/monitor) when not given. */
  readonly monitor?: CallTarget;
  /** Entropy behind the model's TRNG source: the host's CSPRNG in real runs; seeded (deterministic) by default. */
  readonly entropy?: ByteGenerator;
  /** Entropy bytes the model may hand out before it runs dry (default unlimited). */
  readonly entropyBudget?: number;
  /** Where handler failures are reported, rate-limited; silent by default. */
  readonly log?: (line: string) => void;
  readonly services?: readonly ServiceDefinition[];
  /** Handlers for `delegate:<name>` grants (the machine layer creates them from the config). */
  readonly delegates?: ReadonlyMap<string, CallTarget>;
  /** Board profiles VMs may name (`board: <name>`). */
  readonly boards?: ReadonlyMap<string, (vm: VmConfig) => BoardFirmware>;
  /** Mediators beyond the built-in ones, for `mediate:<name>` grants (each probes the secure world once). */
  readonly mediators?: readonly MediatorFactory[];
  /** ChaCha20 for the modelled OP-TEE's TAs: a Node host gives OpenSSL's; the portable one by default. */
  readonly chacha20?: ChaCha20;
  /** Sees every trap and wraps the ports (the recorder, src/record); none by default, which costs nothing. */
  readonly observer?: HypervisorObserver;
}

export type DomainState = "created" | "running" | "destroyed";

/** What a reset could not restore (the VM restarts anyway), with paths as the config's errors have them. */
export type DomainResetResult = { readonly ok: true } | { readonly ok: false; readonly errors: AddVmError[] };

export class Domain {
  #state: DomainState = "created";

  private readonly router: Router;

  constructor(readonly routed: RoutedVm, private readonly hypervisor: Hypervisor) {
    this.router = hypervisor.router;
    // A VM that traps before anyone started it starts then (the router calls this from its full path,
    // which every call takes until the VM has started).
    routed.beforeFirstTrap = () => this.start();
  }

  get name(): string {
    return this.routed.name;
  }

  get config(): VmConfig {
    return this.routed.config;
  }

  get state(): DomainState {
    return this.#state;
  }

  /** The VM runs from now on: its policy is sealed (docs/policy.md). */
  start(): void {
    if (this.#state !== "created") return;
    this.routed.table.seal();
    this.#state = "running";
    this.router.markStarted(this.routed);
  }

  /** A call of vCPU `vcpu` the machine answered itself (a hyp-stub call, docs/handover.md); see Router.recordMachineCall. */
  recordMachineCall(vcpu: number, hvc: boolean, fid: number, action: "emulate" | "deny", rule: string, x0: bigint, detail?: string): void {
    this.router.recordMachineCall(this.routed.name, vcpu, hvc, fid, action, rule, x0, detail);
  }

  /** One trapped SMC or HVC of vCPU `vcpu`; see Router.handleTrap. */
  trap(vcpu: number, regs: Uint32Array, esr: number, pstate: number): number | Promise<number> {
    const observer = this.hypervisor.observer;
    if (observer === null) return this.router.handleTrap(this.routed, vcpu, regs, esr, pstate);
    return this.observedTrap(observer, vcpu, regs, esr, pstate);
  }

  private observedTrap(observer: HypervisorObserver, vcpu: number, regs: Uint32Array, esr: number, pstate: number): number | Promise<number> {
    const name = this.name;
    observer.trapStart(name, vcpu, regs, esr, pstate);
    const fid = regs[0]! | 0;
    const done = (outcome: number): number => {
      // The router writes the call's event when the call completes: then it is the latest one, unless
      // the call wrote none (an AArch32 SMC whose condition failed) or another completed in between.
      const e = this.router.trace.latest();
      const event = e !== null && e.vm === name && e.vcpu === vcpu && e.conduit !== "hypervisor" && (e.fid | 0) === fid ? e : null;
      observer.trapEnd(name, vcpu, regs, outcome, event);
      return outcome;
    };
    const outcome = this.router.handleTrap(this.routed, vcpu, regs, esr, pstate);
    if (!(outcome instanceof Promise)) return done(outcome);
    observer.trapPending?.(name, vcpu);
    return outcome.then(done);
  }

  /**
   * The stage of the guest's boot (firmware or kernel: trace STAGE_NAMES) the trace records with the calls
   * that follow, until set back to 0; the machine backend sets it around a trap it can attribute.
   */
  set traceStage(stage: number) {
    this.router.trace.stage = stage;
  }

  /** Toolstack: the VM restarts; see Hypervisor.resetDomain. For backends, which hold a Domain. */
  reset(): DomainResetResult | Promise<DomainResetResult> {
    return this.hypervisor.resetDomain(this.name);
  }

  markDestroyed(): void {
    this.#state = "destroyed";
  }
}

/** A VM the secure world serves calls for, by the client ID its calls carry: whose memory those calls may reach. */
interface TeeClient {
  readonly vm: string;
  /** Where its RAM is in the platform's physical space. */
  readonly ram: VmMemory | undefined;
  readonly memory: GuestMemory | undefined;
}

/** `f` applied to a value that may still be coming. */
function then<T, U>(v: T | Promise<T>, f: (t: T) => U | Promise<U>): U | Promise<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}

export class Hypervisor {
  readonly router: Router;
  readonly domains = new Map<string, Domain>();
  readonly errorLog: RateLimitedLog;
  private readonly ports = new Map<string, VmPorts>();
  /** VMs with a TEE, by the client ID OP-TEE knows them by (their VM ID): the owner of each OP-TEE call. */
  private readonly teeClients = new Map<number, TeeClient>();
  /** The same, by VM name. */
  private readonly teeClientIds = new Map<string, number>();
  /** The hypervisor's own pages (mediator shadow buffers and page lists), where the platform's memory map has them. */
  readonly heap: HypervisorHeap;
  /** The modelled OP-TEE, when the platform has one. */
  readonly optee: OpteeOs | null = null;
  /** The modelled SPMC (FF-A), when the platform has one. */
  readonly spmc: SpmcModel | null = null;
  readonly mediators = new Map<string, Mediator>();
  /** The modelled secure world (also when another monitor answers forwarded calls: it keeps the entropy source). */
  readonly model: MonitorModel;
  /** Who watches every trap (HypervisorOptions.observer), or null. */
  readonly observer: HypervisorObserver | null;

  constructor(readonly platform: PlatformConfig, opts: HypervisorOptions = {}) {
    const heap = platform.memoryMap.heap;
    this.heap = new HypervisorHeap(heap.base, Number(heap.size / BigInt(PAGE)));
    this.errorLog = new RateLimitedLog(opts.log ?? (() => {}));
    this.observer = opts.observer ?? null;
    // The model's default generator is seeded with 0 (MonitorModel); an observer wraps whichever is used.
    const entropy = this.observer?.entropy ? this.observer.entropy(opts.entropy ?? seededGenerator(0)) : opts.entropy;
    this.model = new MonitorModel({
      ...(entropy ? { entropy } : {}),
      ...(opts.entropyBudget !== undefined ? { entropyBudget: opts.entropyBudget } : {}),
      ...(platform.sipNodes ? { nodes: platform.sipNodes.map((n) => ({ id: n.id, name: n.name ?? `NODE_${n.id}`, ...(n.owner ? { owner: n.owner } : {}) })) } : {}),
      memory: { read: (vm, pa, length) => this.readForSecureWorld(vm, pa, length) },
      onRefusal: (vm, vcpu, fid, what) => this.router.recordRefusal(vm, vcpu, fid, what),
    });
    if (platform.tee?.os === "optee") {
      this.optee = new OpteeOs({
        memory: { read: (pa, length, guest) => this.normalRead(pa, length, guest), write: (pa, data, guest) => this.normalWrite(pa, data, guest), view: (pa, length, guest) => this.normalView(pa, length, guest) },
        tas: defaultTas(),
        threads: platform.tee.threads,
        maxGuests: platform.tee.maxGuests,
        random: (out) => this.model.entropy.fill(out),
        clientOf: (vm) => this.teeClientIds.get(vm),
        ...(opts.chacha20 ? { chacha20: opts.chacha20 } : {}),
      });
      this.model.trustedOs = this.optee;
    }
    if (platform.spmc) {
      const partitions: SpmcPartitionEntry[] = platform.spmc.partitions.map((p) => ({ partition: this.partitionFor(p), vms: p.vmIds }));
      this.spmc = new SpmcModel({ memory: this.spmcMemory(), partitions });
      this.model.spmc = this.spmc;
    }
    this.router = new Router({
      platform,
      services: opts.services ?? STANDARD_SERVICES,
      trace: new TraceRing(opts.traceCapacity, opts.clock != null),
      clock: opts.clock ?? null,
      monitor: opts.monitor ?? this.model,
      servicePorts: { entropy: this.model.entropy },
      ...(opts.answerCache !== undefined ? { answerCache: opts.answerCache } : {}),
      errors: {
        handlerFailed: (vm, fid, rule, error) =>
          this.errorLog.log(`${vm}|${rule}`, `smcvisor: ${vm}: handler for ${hex32(fid)} (${rule}) failed: ${error instanceof Error ? error.message : String(error)}`),
      },
    });
    // The mediators built in (R5); each probes the secure world once and stays silent if its TEE is absent.
    this.registerMediator(new OpteeMediator(this.mediatorHost(), platform.tee?.limits));
    // FF-A's mediator, on a platform with an SPMC (the config's `tee: ffa` needs one): it probes the SPMC as
    // OP-TEE's probes OP-TEE, and maps the hypervisor's own RX/TX buffers with it.
    if (platform.spmc) this.registerMediator(new FfaMediator(this.mediatorHost(), { partitions: platform.spmc.partitions.map((p) => ({ id: p.id, vms: p.vms })) }));
    for (const create of opts.mediators ?? []) this.registerMediator(create(this.mediatorHost()));
  }

  /** Creates a hypervisor with a domain for every VM of the config (delegates from `opts.delegates`). */
  static fromConfig(config: Config, opts: HypervisorOptions = {}, ports: (vm: VmConfig) => VmPorts = () => ({})): { ok: true; hypervisor: Hypervisor } | { ok: false; errors: AddVmError[] } {
    const hv = new Hypervisor(config.platform, opts);
    for (const [name, target] of opts.delegates ?? []) hv.router.registerDelegate(name, hv.observer?.delegate ? hv.observer.delegate(name, target) : target);
    for (const [name, create] of opts.boards ?? []) hv.router.registerBoard(name, create);
    // An exclusive grant holds against other VMs' services and TEE claims too (docs/policy.md).
    const errors: AddVmError[] = exclusiveClaimProblems(config.vms, (vm) => hv.router.claimsFor(vm));
    for (const vm of config.vms) {
      const r = hv.createDomain(vm, ports(vm));
      if (!r.ok) errors.push(...r.errors);
    }
    return errors.length > 0 ? { ok: false, errors } : { ok: true, hypervisor: hv };
  }

  /** A partition of the modelled SPMC, as the config says what runs in it. */
  private partitionFor(p: NonNullable<PlatformConfig["spmc"]>["partitions"][number]): SecurePartition {
    switch (p.runs) {
      case "test":
        return new TestPartition({ name: p.name, id: p.id, uuid: p.uuid });
      case "optee":
        // Validation requires platform.tee for an OP-TEE partition: the same OpteeOs serves both ABIs.
        if (!this.optee) throw new Error(`platform.spmc.partitions: ${p.name}: an OP-TEE partition needs platform.tee`);
        return new OpteeFfaPartition(this.optee, { name: p.name, id: p.id });
    }
  }

  /**
   * The SPMC's memory port: normal-world memory by physical address, for endpoint `owner`. Owner 0 is the
   * hypervisor: only its own pages (the FF-A mediator's RX/TX buffers). A VM's endpoint ID reaches only
   * that VM's RAM, and only if the VM speaks FF-A; never secure memory or another owner's heap pages.
   */
  private spmcMemory(): SpmcMemory {
    const range = (pa: bigint, length: number, owner: number): { heap: true } | { heap: false; memory: GuestMemory; ipa: bigint } | null => {
      if (length < 0) return null;
      const len = BigInt(length);
      if (owner === 0) return this.heap.ownerOf(pa, length) === FFA_HYPERVISOR_OWNER ? { heap: true } : null;
      const domain = [...this.domains.values()].find((d) => d.config.id === owner);
      if (!domain?.config.ffa || this.heap.overlaps(pa, len)) return null;
      const ram = this.platform.memoryMap.vms.find((m) => m.vm === domain.name);
      const memory = this.ports.get(domain.name)?.memory;
      if (ram === undefined || memory === undefined || pa < ram.pa || pa + len > ram.pa + ram.size) return null;
      for (const s of this.platform.memoryMap.secure) if (pa < s.base + s.size && s.base < pa + len) return null;
      return { heap: false, memory, ipa: ram.ipa + (pa - ram.pa) };
    };
    return {
      read: (pa, length, owner) => {
        const r = range(pa, length, owner);
        return r === null ? null : r.heap ? this.heap.read(pa, length) : r.memory.read(r.ipa, length);
      },
      write: (pa, data, owner) => {
        const r = range(pa, data.length, owner);
        return r === null ? false : r.heap ? this.heap.write(pa, data) : r.memory.write(r.ipa, data);
      },
      view: (pa, length, owner) => {
        const r = range(pa, length, owner);
        return r === null ? null : r.heap ? (this.heap.view(pa, length) ?? null) : (r.memory.view?.(r.ipa, length) ?? null);
      },
      owns: (pa, length, owner) => range(pa, length, owner) !== null,
    };
  }

  /** What mediators get from the hypervisor (MediatorHost). */
  private mediatorHost(): FfaMediatorHost {
    return {
      hypervisorChannel: (origin) => this.router.hypervisorChannel(origin),
      secureCall: (origin, vm, regs) => {
        const args = [0n, ...regs.slice(1).map((r) => BigInt(r >>> 0))];
        const r = this.router.hypervisorCall(origin, regs[0]! >>> 0, args, vm ? { vmName: vm, vcpu: 0 } : undefined);
        const low = (x: { regs: readonly bigint[] }) => x.regs.slice(0, 8).map((v) => Number(v & 0xffff_ffffn));
        return r instanceof Promise ? r.then(low) : low(r);
      },
      secureCall64: (origin, vm, regs) => {
        const r = this.router.hypervisorCall(origin, Number(BigInt.asUintN(32, regs[0] ?? 0n)), [0n, ...regs.slice(1)], vm ? { vmName: vm, vcpu: 0 } : undefined);
        return r instanceof Promise ? r.then((x) => [...x.regs]) : [...r.regs];
      },
      secureChannel: (origin, vm) => this.router.hypervisorChannel(origin, { vmName: vm, vcpu: 0 }),
      memory: (vm) => this.ports.get(vm)?.memory,
      ipaToPa: (vm, ipa, length) => this.ipaToPa(vm, ipa, length),
      heap: this.heap,
      log: (vm, key, line) => this.errorLog.log(`${vm}|${key}`, line),
    };
  }

  /**
   * A VM's IPA range as platform physical address, for the mediators: null unless all of it is the VM's own
   * RAM. A range that touches secure memory or the hypervisor's heap is never the VM's, even when a map
   * that skipped validation lays the VM's RAM over them: the hypervisor's pages hold other VMs' shadow
   * messages.
   */
  private ipaToPa(vm: string, ipa: bigint, length: bigint): bigint | null {
    const pa = this.platform.memoryMap.ipaToPa(vm, ipa, length);
    if (pa === null || this.heap.overlaps(pa, length)) return null;
    for (const s of this.platform.memoryMap.secure) if (pa < s.base + s.size && s.base < pa + length) return null;
    return pa;
  }

  /**
   * The secure world's memory port: normal-world memory by platform physical address, for a call OP-TEE
   * serves for client `guest`. Decided by owner, never by which range matches first: the hypervisor's
   * pages allocated for that VM, or that VM's own RAM, and nothing else. An address in the heap's region
   * is only ever a heap page (a VM's RAM laid over the heap is not reached there); other VMs' RAM and
   * pages are not reached at all.
   */
  private normalRange(pa: bigint, length: number, guest: number): { heap: true } | { heap: false; memory: GuestMemory; ipa: bigint } | null {
    const client = this.teeClients.get(guest);
    if (client === undefined || length < 0) return null;
    const len = BigInt(length);
    if (this.heap.overlaps(pa, len)) return this.heap.ownerOf(pa, length) === client.vm ? { heap: true } : null;
    const ram = client.ram;
    if (ram === undefined || client.memory === undefined || pa < ram.pa || pa + len > ram.pa + ram.size) return null;
    for (const s of this.platform.memoryMap.secure) if (pa < s.base + s.size && s.base < pa + len) return null;
    return { heap: false, memory: client.memory, ipa: ram.ipa + (pa - ram.pa) };
  }

  private normalRead(pa: bigint, length: number, guest: number): Uint8Array | null {
    const r = this.normalRange(pa, length, guest);
    return r === null ? null : r.heap ? this.heap.read(pa, length) : r.memory.read(r.ipa, length);
  }

  private normalWrite(pa: bigint, data: Uint8Array, guest: number): boolean {
    const r = this.normalRange(pa, data.length, guest);
    return r === null ? false : r.heap ? this.heap.write(pa, data) : r.memory.write(r.ipa, data);
  }

  /**
   * Normal-world memory in place, as OP-TEE maps it: a hypervisor page (a shadow argument), or the VM's RAM
   * when its backend offers views (GuestMemory.view). Null when the range is neither, or cannot be viewed
   * in one piece: the OS then copies with normalRead/normalWrite.
   */
  private normalView(pa: bigint, length: number, guest: number): Uint8Array | null {
    const r = this.normalRange(pa, length, guest);
    return r === null ? null : r.heap ? this.heap.view(pa, length) : (r.memory.view?.(r.ipa, length) ?? null);
  }

  /**
   * The secure world reading memory a VM named by platform physical address: only the VM's own RAM, never
   * secure memory or another VM's (the map decides), and only through the VM's memory port.
   */
  readForSecureWorld(vm: string, pa: bigint, length: number): Uint8Array | string {
    const refused = this.platform.memoryMap.refusal(vm, pa, BigInt(length));
    if (refused !== null) return refused;
    // The hypervisor's pages are no VM's, even under a map that lays a VM's RAM over them.
    if (this.heap.overlaps(pa, BigInt(length))) return "the range is the hypervisor's memory";
    const c = this.platform.memoryMap.classify(pa, BigInt(length));
    const memory = this.ports.get(vm)?.memory;
    if (c.kind !== "vm" || !memory) return `${vm} has no memory the secure world can reach`;
    return memory.read(c.ipa, length) ?? `0x${pa.toString(16)} is not RAM of ${vm}`;
  }

  /** Registers a TEE mediator and probes the secure world for its TEE (silently: no TEE is a valid platform). */
  registerMediator(m: Mediator): void {
    const present = m.probe();
    if (present instanceof Promise) throw new Error(`mediator ${m.name}: the in-process secure world answers synchronously`);
    this.mediators.set(m.name, m);
    this.router.registerMediator(m.name, m);
  }

  /** Toolstack: create a domain, and enable its TEE if its config asks (the error is the user's to see). */
  createDomain(vm: VmConfig, ports: VmPorts = {}): { ok: true; domain: Domain } | { ok: false; errors: AddVmError[] } {
    // The ID is who the VM is to the secure world (its calls' origin, its OP-TEE client ID): 0 is the
    // hypervisor's, and the secure world keeps 16 bits. Checked here too, for VMs that skipped validation.
    if (!Number.isInteger(vm.id) || vm.id < VM_ID_MIN || vm.id > VM_ID_MAX) {
      return { ok: false, errors: [{ path: `vms.${vm.name}.id`, message: `VM ID ${vm.id} is outside ${VM_ID_MIN}-0x${VM_ID_MAX.toString(16).toUpperCase()} (0 is the hypervisor's)` }] };
    }
    for (const d of this.domains.values()) if (d.config.id === vm.id) return { ok: false, errors: [{ path: `vms.${vm.name}.id`, message: `VM ID ${vm.id} is already ${d.name}'s` }] };
    // "hypervisor" names the hypervisor's own heap pages (the FF-A mediator's RX/TX, which the SPMC takes
    // for endpoint 0's): a VM by that name, built past validation, would own pages that pass for them.
    if (RESERVED_VM_NAMES.includes(vm.name.toLowerCase())) return { ok: false, errors: [{ path: `vms.${vm.name}`, message: `"${vm.name}" is reserved for the hypervisor's own calls and pages` }] };
    if (this.observer?.ports) ports = this.observer.ports(vm, ports);
    const r = this.router.addVm(vm, ports);
    if (!r.ok) return r;
    this.ports.set(vm.name, ports);
    if (vm.tee) {
      const m = this.mediators.get(vm.tee.mediator)!;
      const enabled = m.enable(vm);
      if (enabled instanceof Promise) throw new Error(`mediator ${m.name}: enable must answer synchronously in-process`);
      if (!enabled.ok) {
        this.router.removeVm(r.vm);
        this.ports.delete(vm.name);
        return { ok: false, errors: [{ path: `vms.${vm.name}.tee`, message: `cannot enable ${m.name}: ${enabled.message}` }] };
      }
      this.provisionTee(vm);
    }
    const domain = new Domain(r.vm, this);
    this.domains.set(vm.name, domain);
    return { ok: true, domain };
  }

  /**
   * What the TEE gets from the hypervisor for a VM once it is enabled: its content key (never from a VM),
   * and the VM's memory behind the client ID its calls carry (the secure world's memory port).
   */
  private provisionTee(vm: VmConfig): void {
    // An FF-A VM reaches OP-TEE through its partition, and OP-TEE reaches only the memory the VM shared
    // with it (retrieved through the SPMC): it gets its content key, and no memory port by client ID.
    if (vm.tee?.mediator === "ffa" && this.optee && vm.tee.contentKey) this.optee.provisionKey(vm.id, vm.tee.contentKey);
    if (vm.tee?.mediator !== "optee" || !this.optee) return;
    this.teeClients.set(vm.id, { vm: vm.name, ram: this.platform.memoryMap.vms.find((m) => m.vm === vm.name), memory: this.ports.get(vm.name)?.memory });
    this.teeClientIds.set(vm.name, vm.id);
    if (vm.tee.contentKey) this.optee.provisionKey(vm.id, vm.tee.contentKey);
  }

  /** The secure world no longer serves the VM: its client ID reaches no memory. */
  private unprovisionTee(vm: VmConfig): void {
    if (this.teeClients.get(vm.id)?.vm === vm.name) this.teeClients.delete(vm.id);
    if (this.teeClientIds.get(vm.name) === vm.id) this.teeClientIds.delete(vm.name);
  }

  /**
   * Toolstack: the VM restarts, as a new boot of the same domain (a reboot: PSCI SYSTEM_RESET or
   * SYSTEM_RESET2, or the host resetting it). The machine backend calls it once it has stopped every vCPU
   * of the VM, and starts vCPU 0 again only when it has returned (or its promise has settled):
   *
   * - every service and the board firmware go back to their boot state (ServiceInstance.reset: virtual
   *   PSCI with vCPU 0 on and the others off, each vCPU's WORKAROUND_2 state, the PV time records);
   * - the physical CPUs of the VM's machine: a physical PSCI SYSTEM_RESET for the VM (R9, traced), after
   *   which CPU 0 is on and the others off, so the next boot's physical CPU_ONs succeed;
   * - its TEE: the mediator frees every call, session, registration and page held for it and enables the
   *   TEE for it afresh (Mediator.reset: for OP-TEE, VM_DESTROYED then VM_CREATED), and its content key is
   *   provisioned again.
   *
   * The policy stays sealed and the domain stays running. No other VM is touched. What could not be
   * restored comes back as errors (the VM restarts without it: without its TEE, say).
   */
  resetDomain(name: string): DomainResetResult | Promise<DomainResetResult> {
    const d = this.domain(name);
    const vm = d.config;
    const errors: AddVmError[] = [];
    this.observer?.reset?.(name);
    this.router.resetVm(d.routed);
    const physical = this.router.hypervisorCall(`reset ${name}: SYSTEM_RESET of its machine`, PSCI_FUNCTIONS.PSCI_SYSTEM_RESET.smc32, [], { vmName: name, vcpu: 0 });
    const tee = (r: HypervisorCallResult): EnableResult | Promise<EnableResult> | null => {
      const code = Number(BigInt.asIntN(32, r.regs[0]!));
      if (code !== 0) errors.push({ path: `vms.${name}`, message: `the secure world did not reset the VM's physical CPUs (SYSTEM_RESET answered ${code})` });
      return vm.tee ? this.mediators.get(vm.tee.mediator)!.reset(vm) : null;
    };
    return then(then(physical, tee), (enabled): DomainResetResult => {
      if (enabled?.ok === false) {
        errors.push({ path: `vms.${name}.tee`, message: `cannot enable ${vm.tee!.mediator} again: ${enabled.message}` });
        this.unprovisionTee(vm);
      } else if (enabled?.ok) this.provisionTee(vm);
      return errors.length > 0 ? { ok: false, errors } : { ok: true };
    });
  }

  /** Toolstack: destroy a domain and everything its services hold. */
  destroyDomain(name: string): boolean {
    const d = this.domains.get(name);
    if (!d) return false;
    if (d.config.tee) void this.mediators.get(d.config.tee.mediator)?.destroy(name);
    this.unprovisionTee(d.config);
    this.router.removeVm(d.routed);
    d.markDestroyed();
    this.domains.delete(name);
    this.ports.delete(name);
    this.observer?.destroyed?.(name);
    return true;
  }

  domain(name: string): Domain {
    const d = this.domains.get(name);
    if (!d) throw new Error(`no VM named "${name}" (have: ${[...this.domains.keys()].join(", ")})`);
    return d;
  }
}
