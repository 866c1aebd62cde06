/**
 * The QEMU machine: every VM of a config as its own QEMU process under the EL2 shim, all served by one
 * hypervisor in this process. Same hypervisor, router and services as the in-process machine.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hypervisor, type HypervisorOptions } from "../../hypervisor/hypervisor.js";
import type { Config, VmConfig } from "../../policy/load.js";
import { BOARDS } from "../boards/index.js";
import { loadDelegates } from "../delegates/load.js";
import { QemuVm, type FastAnswer, type GuestImage, type VmExit, type WaitTuning } from "./qemu-vm.js";
import { Poller, type PollerOptions } from "./poller.js";
import { findQemu, shimPath } from "./paths.js";
import { hostChaCha20 } from "../host/chacha20.js";

export interface QemuMachineOptions extends HypervisorOptions {
  /** The guest image each VM boots. */
  readonly images: ReadonlyMap<string, GuestImage>;
  /** Each console line, with the VM's name. */
  readonly console?: (vm: string, line: string) => void;
  readonly cwd?: string;
  /** The shims' fast tables: "auto" (the default) per VM policy, [] for none (every call to the router). */
  readonly fastTable?: readonly FastAnswer[] | "auto";
  readonly extraArgs?: readonly string[];
  readonly gicVersion?: 2 | 3;
  /** A VM was reset; `boot` is the number of the boot that follows (2 after the first reset). */
  readonly onReset?: (vm: string, boot: number) => void;
  readonly onHalt?: (vm: string, vcpu: number) => void;
  /** How waiting vCPUs wait (shim side) and how long the hypervisor polls after a request (docs/qemu-channel.md). */
  readonly wait?: WaitTuning;
  readonly polling?: PollerOptions;
}

export class QemuMachine {
  readonly vms = new Map<string, QemuVm>();
  private closers: (() => void)[] = [];

  private constructor(readonly hypervisor: Hypervisor, readonly config: Config, private readonly runRoot: string) {}

  static async create(config: Config, opts: QemuMachineOptions): Promise<QemuMachine> {
    const qemu = findQemu();
    const shim = shimPath();
    if (!existsSync(shim)) throw new Error(`the EL2 shim is not built (${shim}): run \`node scripts/setup.mjs\``);
    for (const vm of config.vms) {
      if (!opts.images.has(vm.name)) throw new Error(`vms.${vm.name}: no guest image (kernel) for this VM`);
    }
    removeStaleRamFiles();
    const runRoot = mkdtempSync(join(tmpdir(), "smcvisor-"));
    const vms = new Map<string, QemuVm>();
    const poller = new Poller(opts.polling);
    const delegates = await loadDelegates(config, {
      cwd: opts.cwd ?? process.cwd(),
      memoryOf: (name) => vms.get(name)?.memory,
      ...(opts.log ? { log: opts.log } : {}),
    });
    const create = (vm: VmConfig) => {
      const q = new QemuVm(vm, {
        qemu,
        shim,
        runDir: join(runRoot, vm.name),
        ramFile: `/dev/shm/smcvisor-${process.pid}-${runRoot.slice(-6)}-${vm.name}`,
        image: opts.images.get(vm.name)!,
        poller,
        console: (line) => opts.console?.(vm.name, line),
        ...(opts.wait ? { wait: opts.wait } : {}),
        ...(opts.log ? { log: opts.log } : {}),
        ...(opts.fastTable ? { fastTable: opts.fastTable } : {}),
        ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
        ...(opts.gicVersion ? { gicVersion: opts.gicVersion } : {}),
        ...(opts.onReset ? { onReset: (boot: number) => opts.onReset!(vm.name, boot) } : {}),
        ...(opts.onHalt ? { onHalt: (vcpu: number) => opts.onHalt!(vm.name, vcpu) } : {}),
      });
      vms.set(vm.name, q);
      return q.ports;
    };
    let r: ReturnType<typeof Hypervisor.fromConfig>;
    try {
      // A QEMU run is always on a Node host: the TAs' ChaCha20 is OpenSSL's (the same results, ~2x faster).
      r = Hypervisor.fromConfig(config, { boards: BOARDS, chacha20: hostChaCha20, ...opts, delegates: delegates.targets }, create);
    } catch (e) {
      delegates.close();
      for (const q of vms.values()) q.fail("not started");
      rmSync(runRoot, { recursive: true, force: true });
      throw e;
    }
    if (!r.ok) {
      delegates.close();
      for (const q of vms.values()) q.fail("not started");
      rmSync(runRoot, { recursive: true, force: true });
      throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join("\n"));
    }
    const m = new QemuMachine(r.hypervisor, config, runRoot);
    for (const [name, q] of vms) {
      q.attach(r.hypervisor.domain(name));
      m.vms.set(name, q);
    }
    m.closers.push(() => delegates.close());
    return m;
  }

  /** Boots every VM and resolves when all have ended; `timeoutMs` ends the stragglers with a reason. */
  async run(timeoutMs = 120_000): Promise<VmExit[]> {
    const timer = setTimeout(() => {
      for (const q of this.vms.values()) q.fail(`still running after ${timeoutMs / 1000} s`);
    }, timeoutMs);
    try {
      await Promise.all([...this.vms.values()].map((q) => q.start()));
      // A VM that has ended is destroyed at once: its mediators and the TEE let go of everything it held.
      return await Promise.all(
        [...this.vms.values()].map((q) =>
          q.exited.then((e) => {
            this.hypervisor.destroyDomain(q.name);
            return e;
          }),
        ),
      );
    } finally {
      clearTimeout(timer);
      this.close();
    }
  }

  vm(name: string): QemuVm {
    const v = this.vms.get(name);
    if (!v) throw new Error(`no VM named "${name}"`);
    return v;
  }

  close(): void {
    for (const c of this.closers.splice(0)) c();
    for (const q of this.vms.values()) q.fail("machine closed");
    rmSync(this.runRoot, { recursive: true, force: true });
  }
}

/** RAM files are named smcvisor-<pid>-…: one whose hypervisor process is gone (killed, say) is removed. */
export function removeStaleRamFiles(dir = "/dev/shm"): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = /^smcvisor-(\d+)-/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
