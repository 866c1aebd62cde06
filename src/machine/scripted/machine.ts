/**
 * The in-process machine: every VM of a config as a domain with scripted vCPUs, guest RAM and a manual
 * clock. Same hypervisor, same router, same services as under QEMU; only the trap source differs.
 */
import { Hypervisor, type Domain, type HypervisorOptions } from "../../hypervisor/hypervisor.js";
import { parseConfigText, type Config, type VmConfig } from "../../policy/load.js";
import type { TraceRing } from "../../trace/ring.js";
import { ArrayGuestMemory } from "./memory.js";
import { ManualTime } from "./time.js";
import { ScriptedVcpu } from "./vcpu.js";

export class ScriptedVm {
  readonly vcpus: ScriptedVcpu[] = [];

  constructor(readonly domain: Domain, readonly memory: ArrayGuestMemory, readonly time: ManualTime, trace: TraceRing) {
    for (let i = 0; i < domain.config.vcpus; i++) {
      const v = new ScriptedVcpu(domain, trace, i, domain.config.aarch32);
      v.pc = domain.config.memory.base;
      this.vcpus.push(v);
    }
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

  private constructor(readonly hypervisor: Hypervisor, readonly config: Config, memories: Map<string, ArrayGuestMemory>, times: Map<string, ManualTime>) {
    for (const [name, domain] of hypervisor.domains) {
      this.vms.set(name, new ScriptedVm(domain, memories.get(name)!, times.get(name)!, hypervisor.router.trace));
    }
  }

  /** Builds a machine from a validated config; throws with every problem listed if the VMs cannot be created. */
  static fromConfig(config: Config, opts: HypervisorOptions = {}): ScriptedMachine {
    const memories = new Map<string, ArrayGuestMemory>();
    const times = new Map<string, ManualTime>();
    const ports = (vm: VmConfig) => {
      const memory = new ArrayGuestMemory(vm.memory.base, vm.memory.size);
      const time = new ManualTime();
      memories.set(vm.name, memory);
      times.set(vm.name, time);
      return { memory, time };
    };
    const r = Hypervisor.fromConfig(config, opts, ports);
    if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
    return new ScriptedMachine(r.hypervisor, config, memories, times);
  }

  /** Builds a machine from YAML or JSON text; throws with every config problem listed. For tests. */
  static fromText(text: string, format: "yaml" | "json" = "yaml", opts: HypervisorOptions = {}): ScriptedMachine {
    const parsed = parseConfigText(text, format);
    if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
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
