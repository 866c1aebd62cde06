/**
 * One VM as one QEMU process: `qemu-system-aarch64 -M virt,virtualization=on` with the EL2 shim as its
 * firmware-level kernel, the guest behind stage-2 translation, guest RAM in a shared file this process maps,
 * and per vCPU a mailbox in the shim's region plus a doorbell (a virtio console whose other end is a Unix
 * socket here). docs/qemu-channel.md is the reference. The VM's console is QEMU's serial port on stdout.
 *
 * Containment: QEMU runs without semihosting; the guest's stage-2 map holds its RAM and its devices only
 * (guest-map.ts); the mailboxes, doorbells and stage-2 tables are in memory and devices no table maps.
 *
 * Everything that can go wrong here ends this VM only: QEMU dying, a malformed mailbox, a doorbell storm, an
 * exception the shim does not handle. The reason is reported, and the sockets, the mapping, the RAM file and
 * the run directory are removed on every exit path.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readSync, rmSync, statSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Domain } from "../../hypervisor/hypervisor.js";
import type { VmConfig } from "../../policy/load.js";
import type { GuestTime, PowerPort, VmPorts } from "../../router/ports.js";
import { OUTCOME_BAD_TRAP, OUTCOME_HALT, OUTCOME_SKIP, OUTCOME_UNDEF, pcAdvance } from "../../router/outcome.js";
import { ArchService } from "../../services/arch/arch.js";
import { legacyIds, PsciService } from "../../services/psci/psci.js";
import { mpidrOf } from "../../services/psci/topology.js";
import { Qmp } from "./qmp.js";
import { decodeWakeStats, encodeHostPage, fastKey, HOST_HANDOVER, MAILBOX, mailboxOffset, ReplyArea, REPLY_SIZE, REQ, RequestFrame, REQUEST_SIZE, RESUME_AARCH32, RESUME_EL2, RESUME_WAKE, RSP, type Reply, type WakeStats } from "./channel.js";
import { HVC_SET_VECTORS, HVC_STUB_ERR, HypStub } from "../../services/hyp-stub/hyp-stub.js";
import { buildDtb, type DtPsci } from "./dtb.js";
import { fastAnswersFor } from "./fast-path.js";
import { guestMap, VIRT } from "./guest-map.js";
import { MappedGuestMemory } from "./guest-memory.js";
import { HANDOVER_VECTORS, kernelFootprint, layoutFor, MACHINE_RAM_BASE, machinePa, SHIM_REGION, SHIM_SIZE, type Layout } from "./layout.js";
import type { Poller } from "./poller.js";
import { qemuCommand } from "./paths.js";
import { SharedRam } from "./shared-ram.js";
import { MAX_QEMU_VCPUS } from "./limits.js";
import { HandoverRoll } from "./handover-roll.js";
import { buildStage2 } from "./stage2.js";
import { ConsoleTyper, type ConsoleInput } from "./console-input.js";
import { MMIO_REFUSE, MMIO_WINDOW } from "./channel.js";
import { decodeDataAbort, loadedValue, mask, MmioBus, type MmioResult } from "../devices/mmio-access.js";
import { VirtioMmio } from "../devices/virtio-mmio.js";
import { VirtioBlk } from "../devices/virtio-blk.js";
import { FileDisk } from "../devices/file-disk.js";
import { STAGE_FIRMWARE, STAGE_KERNEL } from "../../trace/ring.js";

const PSCI_CPU_ON64 = 0xc400_0003n;
const PSCI_AFFINITY_INFO64 = 0xc400_0004n;
/**
 * After a handover VM's first CPU hands over, how long every other CPU its kernel runs has to hand over
 * too (the module does them all at once, under stop_machine): one still running the kernel with EL2 its
 * own after that is a VM smcvisor does not contain, and it ends.
 */
const HANDOVER_ALL_MS = 15_000;
const PSCI_ALREADY_ON = -4;
/** QEMU's virt machine numbers at most 8 CPUs in cluster 0, which is what the shim indexes by (limits.ts). */
export { MAX_QEMU_VCPUS };
/** virt's generic timer runs at 62.5 MHz under TCG (CNTFRQ_EL0 = 62500000). */
const COUNTER_HZ = 62_500_000;
/** A shim that has not said HELLO this long after QEMU started is not coming up. */
const HELLO_TIMEOUT_MS = 20_000;
/** Doorbell bytes beyond the requests they announce, per second, before the VM is ended as a storm. */
const DOORBELL_STORM = 10_000;

export interface GuestImage {
  /** A Linux arm64 Image, or a raw bare-metal binary loaded like one (x0 = the device tree's address). */
  readonly kernel?: string;
  /**
   * Instead of a kernel: firmware (U-Boot, UEFI) placed in the VM's flash bank 0 and entered at EL1 at its
   * reset address (0) with the MMU off and the device tree at the start of RAM, as virt gives it to firmware
   * (docs/qemu-channel.md, "Firmware guests").
   */
  readonly firmware?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  /** A raw disk image the VM gets as a read-only virtio-blk device in the device window (docs/devices.md). */
  readonly disk?: string;
  /** What is typed into the VM's serial port, step by step, each once its console shows `after` (console-input.ts). */
  readonly input?: readonly ConsoleInput[];
  /** The VM's GIC: version 2 or 3 (QEMU virt's gic-version); otherwise the machine's default (QemuVmOptions.gicVersion, else 2). */
  readonly gic?: 2 | 3;
}

export interface FastAnswer {
  readonly fid: number;
  readonly value: bigint;
  readonly hvc: boolean;
  readonly smc: boolean;
  /** The shim keeps W1 as the vCPU's SMCCC_ARCH_WORKAROUND_2 state and reports it in every frame. */
  readonly recordsWa2?: boolean;
}

/** How a waiting vCPU waits: counter ticks of polling, then sleeps of at most `sleepUs`. */
export interface WaitTuning {
  readonly spinUs: number;
  readonly sleepUs: number;
}

export const DEFAULT_WAIT: WaitTuning = { spinUs: 200, sleepUs: 10_000 };

export interface QemuVmOptions {
  readonly qemu: string;
  readonly shim: string;
  /** The VM's run directory (doorbell sockets, device tree); created here, removed at exit. */
  readonly runDir: string;
  /** Where the machine's RAM is shared (a new file under /dev/shm). */
  readonly ramFile: string;
  readonly image: GuestImage;
  /** Serves the mailboxes; shared by every VM of the process. */
  readonly poller: Poller;
  /** `-cpu`; cortex-a57 without PMU keeps exception-level changes cheap (docs/qemu-channel.md, "EL2 set-up"). */
  readonly cpu?: string;
  readonly gicVersion?: 2 | 3;
  /** Every line the guest prints on its console. */
  readonly console: (line: string) => void;
  /**
   * Answers the shim gives itself without a round trip, counted but not traced one by one: a fixed
   * table (the null-trap benchmark), or "auto" for what fast-path.ts finds eligible in the VM's policy.
   */
  readonly fastTable?: readonly FastAnswer[] | "auto";
  readonly wait?: WaitTuning;
  /** A call of vCPU `vcpu` that does not return (CPU_OFF, SYSTEM_OFF, power-down suspend) was taken. */
  readonly onHalt?: (vcpu: number) => void;
  /** The VM was reset (SYSTEM_RESET): `boot` is the number of the boot that follows (2 for the first reset). */
  readonly onReset?: (boot: number) => void;
  /** Hypervisor-level problems of this VM that are not the end of it (reset errors, refused accesses), rate-limited by the caller. */
  readonly log?: (line: string) => void;
  /** Extra QEMU arguments (tests). */
  readonly extraArgs?: readonly string[];
}

export interface VmExit {
  readonly name: string;
  /** "off": the guest powered off through PSCI; "stopped": ended by the host on purpose; "failed": anything else. */
  readonly state: "off" | "stopped" | "failed";
  readonly reason: string;
  /** Calls the shim answered locally. */
  readonly localCalls: bigint;
  /** Accesses outside the guest's stage-2 map that the shim refused (a synchronous external abort each). */
  readonly aborts: bigint;
  /** Boots: 1, plus one per reset. */
  readonly boots: number;
  /** Each vCPU's wake-up waits (CPU_SUSPEND, docs/suspend.md) as the shim counted them, read as the VM ended. */
  readonly wakes?: readonly WakeStats[];
  /** A handover VM: the vCPUs that handed EL2 over in its last boot (docs/handover.md), ascending. */
  readonly handedOver?: readonly number[];
  /** A handover VM: the vCPUs QEMU's PSCI reported running that had not handed over when it ended (they owned EL2). */
  readonly keptEl2?: readonly number[];
}

type Halt = { kind: "cpu-off" } | { kind: "system-off"; reason: string } | { kind: "system-reset"; reason: string } | { kind: "suspend"; entry: bigint; context: bigint };

interface Outgoing {
  readonly reply: Reply;
  /** A PHYS_SMC: the shim answers with PHYS_RESULT, handed here; "retry" sends the same call again shortly. */
  readonly onResult?: (regs: Uint32Array) => void | "retry";
}

class VcpuChannel {
  /** The mailbox page: its sequence words, as 32-bit words. */
  words!: Int32Array;
  /** The mailbox's request frame (shared with the shim: read once, into `frame`). */
  request!: Uint8Array;
  reply!: ReplyArea;
  /** The request being handled, copied out of the mailbox. */
  readonly frame = new RequestFrame();
  /** The last request sequence number taken from the mailbox. */
  seen = 0;
  socket: Socket | null = null;
  server: Server | null = null;
  /** Replies still to send for the current request; a PHYS_SMC waits for its PHYS_RESULT. */
  outbox: Outgoing[] = [];
  awaiting: Outgoing | null = null;
  /** A trap is being handled (its reply not yet sent); the VM's `epoch` tells a pre-reset one from a new one. */
  busy = false;
  halt: Halt | null = null;
  /** The call being handled is a standby: its RETURN becomes RETURN_WAKE (the shim waits for a wake-up event). */
  standby = false;
  /** In a power-down suspend since its reply: its next request tells virtual PSCI it has resumed. */
  suspended = false;
  /** Entry and context from the virtual CPU_ON that is starting this vCPU. */
  pendingStart: { entry: bigint; context: bigint } | null = null;
  /** The request whose CNTVCT_EL0 (in `frame`) is the vCPU's time now (PTP and PV time read it, rarely). */
  counterAt = -1;
  /** Doorbell bytes and requests in the current second, for storm detection. */
  bells = 0;
  requests = 0;
  windowStart = 0;

  constructor(readonly index: number, readonly socketPath: string) {}
}

export class QemuVm implements PowerPort {
  readonly memory: MappedGuestMemory;
  readonly time: GuestTime;
  readonly ram: SharedRam;
  private domain: Domain | null = null;
  private readonly vcpus: VcpuChannel[] = [];
  private child: ChildProcess | null = null;
  private layout: Layout | null = null;
  private ending: { state: VmExit["state"]; reason: string } | null = null;
  private hostState: Int32Array;
  private localCalls = 0n;
  private aborts = 0n;
  private resolveExit!: (e: VmExit) => void;
  readonly exited: Promise<VmExit>;
  private stderr = "";
  private consoleBuffer = "";
  /** Bumped by every reset: replies to calls that started before it are dropped. */
  private epoch = 0;
  /** A reset is under way: only vCPU 0's HELLO of the next boot is taken; anything else is from before it. */
  private resetting = false;
  /** The boot CPU's next HELLO starts a boot smcvisor knows of (the first, or after a reset it made). */
  private expectHello = true;
  /** The hypervisor's reset of the domain, while it is still running (a secure world that answers later). */
  private domainReset: Promise<void> | null = null;
  private helloTimer: NodeJS.Timeout | null = null;
  /** Where this boot's number is in guest RAM (in the device tree's bootargs). */
  private bootDigitsAt: bigint | null = null;
  boots = 1;
  /** Types the scenario's console input into the serial port (firmware prompts); null without input. */
  private typer: ConsoleTyper | null = null;
  /** The emulated devices of the device window (a disk), or null without any. */
  private mmio: MmioBus | null = null;
  private disk: FileDisk | null = null;
  /** The virtio-blk transport, when the VM has a disk (tests read its counters). */
  diskTransport: VirtioMmio | null = null;
  /** Device-window accesses emulated, and refused. */
  mmioAccesses = 0;
  mmioRefused = 0;
  /**
   * Guest-counter ticks between consecutive device accesses of one vCPU (the first MMIO_GAPS): the shortest
   * ones are an MMIO round trip plus the few guest instructions between two register accesses.
   */
  readonly mmioGaps: number[] = [];
  private lastMmioAt: bigint[] = [];
  /** The INTID the current access raised (its reply carries it), 0 for none. */
  private raise = 0;

  constructor(readonly config: VmConfig, private readonly opts: QemuVmOptions) {
    if (config.vcpus > MAX_QEMU_VCPUS) throw new Error(`vms.${config.name}.vcpus: the QEMU backend runs at most ${MAX_QEMU_VCPUS} vCPUs per VM`);
    if ((opts.image.kernel === undefined) === (opts.image.firmware === undefined)) throw new Error(`vms.${config.name}: a guest image is a kernel or firmware, exactly one`);
    mkdirSync(opts.runDir, { recursive: true, mode: 0o700 });
    this.ram = new SharedRam(opts.ramFile, Number(SHIM_SIZE + config.memory.size));
    this.memory = new MappedGuestMemory(this.ram, config.memory.base, config.memory.size);
    this.hostState = new Int32Array(this.ram.bytes.buffer, SHIM_REGION.hostState, 2);
    for (let i = 0; i < config.vcpus; i++) {
      const v = new VcpuChannel(i, join(opts.runDir, `doorbell${i}.sock`));
      const page = mailboxOffset(i);
      v.words = new Int32Array(this.ram.bytes.buffer, page, MAILBOX.request / 4);
      v.request = this.ram.view(page + MAILBOX.request, REQUEST_SIZE);
      v.reply = new ReplyArea(this.ram.view(page + MAILBOX.reply, REPLY_SIZE));
      this.vcpus.push(v);
    }
    const epochOffset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
    this.time = {
      wallClockNs: () => process.hrtime.bigint() + epochOffset,
      // CNTVOFF_EL2 is 0, so the virtual and physical counters agree; the value is the one at the trap.
      counter: (vcpu) => {
        const v = this.vcpus[vcpu];
        return v && v.counterAt === v.seen ? v.frame.cntvct : 0n;
      },
    };
    this.exited = new Promise((r) => (this.resolveExit = r));
    this.hypStub = config.handover ? new HypStub({ shimVectors: HANDOVER_VECTORS, ram: config.memory }) : null;
    this.roll = config.handover ? new HandoverRoll(config.vcpus) : null;
  }

  get name(): string {
    return this.config.name;
  }

  get ports(): VmPorts {
    return { memory: this.memory, time: this.time, power: this };
  }

  attach(domain: Domain): void {
    this.domain = domain;
    const arch = domain.routed.services.get("arch");
    if (arch instanceof ArchService) this.wa2 = (vcpu, on) => void (arch.ssbdEnabled[vcpu] = on ? 1 : 0);
  }

  /** Where the WORKAROUND_2 state the shim reports goes: the VM's Arm Architecture service. */
  private wa2: ((vcpu: number, on: boolean) => void) | null = null;

  /** The fast table this VM's shim gets. */
  get fastTable(): readonly FastAnswer[] {
    const t = this.opts.fastTable ?? "auto";
    return t === "auto" ? (this.domain ? fastAnswersFor(this.domain) : []) : t;
  }

  private get gicVersion(): 2 | 3 {
    return this.opts.image.gic ?? this.opts.gicVersion ?? 2;
  }

  /** The QEMU arguments that shape the machine (shared with the device-tree dump so the two agree). */
  private machineArgs(): string[] {
    const mem = `${(SHIM_SIZE + this.config.memory.size) / (1n << 20n)}M`;
    return [
      "-M", `virt,virtualization=on,gic-version=${this.gicVersion}`,
      "-cpu", this.opts.cpu ?? "cortex-a57,pmu=off",
      "-smp", String(this.config.vcpus),
      "-m", mem,
    ];
  }

  /**
   * The whole QEMU command line (no semihosting: nothing the guest runs reaches the host's files). QEMU
   * always boots the shim (`-kernel`); a guest image is only ever data QEMU's loader puts in memory. A
   * firmware guest's image goes into flash bank 0 through the loader too, never as `-bios` or a pflash
   * drive: with either QEMU would start the firmware itself at EL2 (virt_firmware_init, arm_load_kernel) and
   * the shim would not run at all; and no host file backs the flash, so what the firmware writes there
   * stays in QEMU's memory.
   */
  qemuArgs(): string[] {
    const l = this.layout!;
    const { image } = this.opts;
    const pa = (ipa: bigint) => `0x${machinePa(this.config.memory.base, ipa).toString(16)}`;
    const mem = `${(SHIM_SIZE + this.config.memory.size) / (1n << 20n)}M`;
    const doorbells = this.vcpus.flatMap((v) => [
      "-chardev", `socket,id=bell${v.index},path=${v.socketPath}`,
      "-device", `virtio-serial-device,id=bells${v.index},bus=virtio-mmio-bus.${v.index}`,
      "-device", `virtconsole,chardev=bell${v.index},bus=bells${v.index}.0`,
    ]);
    return [
      ...this.machineArgs(),
      "-object", `memory-backend-file,id=ram,size=${mem},mem-path=${this.opts.ramFile},share=on`,
      "-machine", "memory-backend=ram",
      "-kernel", this.opts.shim,
      ...(image.firmware !== undefined
        ? ["-device", `loader,file=${image.firmware},addr=0x${VIRT.flash.toString(16)},force-raw=on`]
        : ["-device", `loader,file=${image.kernel!},addr=${pa(l.kernel)},force-raw=on`]),
      "-device", `loader,file=${join(this.opts.runDir, "guest.dtb")},addr=${pa(l.dtb)},force-raw=on`,
      ...(this.opts.image.initrd && l.initrd !== null ? ["-device", `loader,file=${this.opts.image.initrd},addr=${pa(l.initrd)},force-raw=on`] : []),
      // The shim rings the hypervisor from the vCPU's own thread (no ioeventfd hop through QEMU's main loop).
      "-global", "virtio-mmio.ioeventfd=off",
      ...doorbells,
      "-display", "none", "-monitor", "none", "-nodefaults", "-serial", "stdio",
      // QEMU's machine protocol, for the host only (a reset the guest is not asked for: reset() below).
      "-qmp", `unix:${this.qmpPath},server=on,wait=off`,
      ...(this.opts.extraArgs ?? []),
    ];
  }

  /** QEMU's QMP socket, in the VM's private run directory. */
  private get qmpPath(): string {
    return join(this.opts.runDir, "qmp.sock");
  }

  /** Builds the device tree and the shim's region, opens the doorbells and starts QEMU. Failures end the VM with the reason. */
  async start(): Promise<void> {
    try {
      await this.prepare();
    } catch (e) {
      this.end("failed", `cannot start: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (this.ending) return;
    const [command, args] = qemuCommand(this.opts.qemu, this.qemuArgs());
    // Standard input is the serial port's input: a pipe only when the scenario types into it, else nothing.
    const input = this.opts.image.input ?? [];
    const child = spawn(command, args, { cwd: this.opts.runDir, stdio: [input.length > 0 ? "pipe" : "ignore", "pipe", "pipe"] });
    this.child = child;
    if (child.stdin) {
      const stdin = child.stdin;
      // QEMU gone (or its serial port closed): what was not typed is dropped, the VM's end says why.
      stdin.on("error", () => undefined);
      this.typer = new ConsoleTyper(input, (bytes) => {
        if (!stdin.destroyed) stdin.write(bytes);
      });
    }
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (s: string) => this.onConsole(s));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (s: string) => {
      if (this.stderr.length < 4096) this.stderr += s;
    });
    child.on("error", (e) => this.end("failed", `cannot run ${this.opts.qemu}: ${e.message}`));
    // "close", not "exit": it comes after QEMU's stdout has been read to its end, so the console lines the
    // guest printed just before it stopped (a test guest's last report before SYSTEM_RESET) are not lost.
    child.on("close", (code, signal) => this.onQemuExit(code, signal));
    this.helloTimer = setTimeout(() => this.fail(`the shim did not start: no HELLO from vCPU 0 within ${HELLO_TIMEOUT_MS / 1000} s`), HELLO_TIMEOUT_MS);
    this.opts.poller.add(this);
  }

  private async prepare(): Promise<void> {
    const { image } = this.opts;
    const { base, size } = this.config.memory;
    const firmware = image.firmware !== undefined;
    if (firmware && image.initrd !== undefined) throw new Error("a firmware guest has no initrd (the firmware loads what it boots)");
    if (firmware && this.config.handover) throw new Error("a handover VM boots a kernel, not firmware (docs/handover.md)");
    if (firmware) {
      const bytes = BigInt(statSync(image.firmware!).size);
      if (bytes > VIRT.flashBank) throw new Error(`the firmware is ${bytes} bytes; flash bank 0 holds ${VIRT.flashBank}`);
    }
    const initrdSize = image.initrd ? BigInt(statSync(image.initrd).size) : null;
    const map = guestMap(base, size, this.config.vcpus, this.gicVersion, { flash: firmware });
    if (image.disk !== undefined) this.addDisk(image.disk);
    const dtbPath = join(this.opts.runDir, "guest.dtb");
    // The device tree's size decides nothing but whether it fits: lay out with the limit, check after.
    // A firmware guest has no kernel in RAM: only the device tree at its base.
    const kernelBytes = firmware ? 0n : kernelFootprint(readHeader(image.kernel!), statSync(image.kernel!).size);
    const l = layoutFor(base, size, kernelBytes, 1n << 20n, initrdSize);
    if (!l.ok) throw new Error(l.reason);
    this.layout = firmware ? { ...l.layout, kernel: VIRT.flash } : l.layout;
    const dtb = await buildDtb(this.opts.qemu, this.machineArgs(), this.opts.runDir, dtbPath, {
      conduit: this.config.conduit === "hvc" ? "hvc" : "smc",
      // A handover VM's kernel keeps its hyp stub (KVM would take EL2 at boot): docs/handover.md.
      bootargs: `${image.cmdline ?? ""}${this.config.handover ? " kvm-arm.mode=none" : ""} ${BOOT_ARG}${bootDigits(1)}`.trim(),
      initrd: l.layout.initrd !== null ? { start: l.layout.initrd, end: l.layout.initrdEnd! } : null,
      // The /firmware/optee node is OP-TEE's SMC ABI only: an FF-A VM finds OP-TEE on the FF-A bus by UUID.
      optee: this.config.tee?.mediator === "optee",
      map,
      psci: this.dtPsci(),
      ...(this.config.handover ? { handoverVectors: HANDOVER_VECTORS } : {}),
      virtio: this.mmio ? this.mmio.list.map((d) => ({ base: d.base, size: d.size, spi: DISK_SPI })) : [],
    });
    if (dtb.length > 1 << 20) throw new Error(`the device tree is ${dtb.length} bytes (at most 1 MiB)`);
    const at = Buffer.from(dtb.buffer, dtb.byteOffset, dtb.length).indexOf(BOOT_ARG);
    this.bootDigitsAt = at < 0 ? null : l.layout.dtb + BigInt(at + BOOT_ARG.length);
    const s2 = buildStage2(map, MACHINE_RAM_BASE + BigInt(SHIM_REGION.stage2), SHIM_REGION.stage2Size);
    if (!s2.ok) throw new Error(`stage 2: ${s2.reason}`);
    this.ram.view(SHIM_REGION.stage2, s2.stage2.tables.length).set(s2.stage2.tables);
    const wait = this.opts.wait ?? DEFAULT_WAIT;
    const host = encodeHostPage({
      vcpus: this.config.vcpus,
      gicVersion: this.gicVersion,
      vttbr: s2.stage2.vttbr,
      vtcr: s2.stage2.vtcr,
      gicd: VIRT.gicDist,
      gicc: this.gicVersion === 2 ? VIRT.gicCpu : VIRT.gicRedist,
      doorbell: VIRT.virtioMmio,
      doorbellIntid: VIRT.virtioMmioIntid,
      spinTicks: Math.round((wait.spinUs * COUNTER_HZ) / 1e6),
      sleepTicks: Math.round((wait.sleepUs * COUNTER_HZ) / 1e6),
      fast: this.fastTable.map((e) => [fastKey(e.fid, e), e.value] as const),
      flags: this.config.handover ? HOST_HANDOVER : 0,
      mmio: this.mmio !== null,
    });
    this.ram.view(SHIM_REGION.hostPage, host.length).set(host);
    await Promise.all(this.vcpus.map((v) => this.listen(v)));
  }

  /** The VM's disk: a read-only virtio-blk device at the start of the device window, interrupt DISK_SPI. */
  private addDisk(path: string): void {
    const disk = new FileDisk(path);
    this.disk = disk;
    const t = new VirtioMmio("disk", MMIO_WINDOW, new VirtioBlk(disk), this.memory);
    t.onInterrupt = () => (this.raise = DISK_SPI + 32);
    this.mmio = new MmioBus();
    this.mmio.add(t);
    this.diskTransport = t;
  }

  /**
   * A guest access to the device window (REQ_MMIO): decoded from its syndrome, performed on the device,
   * answered with the value a read loads; refused (an external abort for the guest) when the syndrome or the
   * device says no. Refusals are logged by the caller's rate-limited log, never one line per access.
   */
  private onMmio(v: VcpuChannel, r: RequestFrame): void {
    const a = decodeDataAbort(r.esr);
    const bus = this.mmio;
    const last = this.lastMmioAt[v.index];
    if (last !== undefined && this.mmioGaps.length < MMIO_GAPS) this.mmioGaps.push(Number(r.cntvct - last));
    this.lastMmioAt[v.index] = r.cntvct;
    const ipa = r.far;
    this.raise = 0;
    let result: MmioResult;
    if (bus === null) result = { ok: false, reason: "the VM has no emulated devices" };
    else if (!a.ok) result = { ok: false, reason: a.reason };
    else {
      const written = (BigInt(r.words[1]!) << 32n) | BigInt(r.words[0]!);
      result = bus.access(ipa, a.access, written & mask(a.access.size));
    }
    if (!result.ok) {
      this.mmioRefused++;
      this.aborts++;
      this.opts.log?.(`${this.name}: vCPU ${v.index}: device access at IPA 0x${ipa.toString(16)} refused: ${result.reason}`);
      return this.send(v, { type: RSP.MMIO, flags: MMIO_REFUSE });
    }
    this.mmioAccesses++;
    if (DEBUG_MMIO) console.error(`[${this.name}] vCPU ${v.index} mmio ${a.ok && a.access.write ? "W" : "R"} 0x${ipa.toString(16)} = 0x${(a.ok && a.access.write ? (BigInt(r.words[1]!) << 32n) | BigInt(r.words[0]!) : result.value).toString(16)} raise ${this.raise}`);
    const problem = this.diskTransport?.problem;
    if (problem && problem !== this.lastDeviceProblem) this.opts.log?.(`${this.name}: ${problem} (the device needs a reset)`);
    this.lastDeviceProblem = problem ?? null;
    const value = a.ok && !a.access.write ? loadedValue(a.access, result.value) : 0n;
    this.send(v, { type: RSP.MMIO, regs: [value, BigInt(this.raise)] });
  }

  private lastDeviceProblem: string | null = null;

  /** What the device tree says about PSCI: the VM's version and PSCI 0.1 IDs, or no node. */
  private dtPsci(): DtPsci | null {
    const p = this.config.services.psci;
    if (p === false) return null;
    const legacy = legacyIds(this.config);
    const id = (op: string) => [...legacy].find(([, o]) => o === op)?.[0] ?? 0;
    // CPU_SUSPEND's power_state in the VM's format (DEN0022 §5.4.2): PSCI 0.2 has only the original one.
    const extended = p.version !== "0.2" && (p.powerStateFormat ?? "extended") === "extended";
    const idleStates = p.cpuIdle?.map((st) => ({ ...st, param: (st.powerDown ? (extended ? 0x4000_0000 : 0x1_0000) : 0) | st.stateId }));
    return {
      version: p.version,
      ...(idleStates ? { idleStates } : {}),
      ...(legacy.size > 0 ? { v0_1: { cpu_suspend: id("cpu_suspend"), cpu_off: id("cpu_off"), cpu_on: id("cpu_on"), migrate: id("migrate") } } : {}),
    };
  }

  /** vCPU `v`'s doorbell: QEMU connects to this socket when it starts (its chardev is the client). */
  private listen(v: VcpuChannel): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer({ allowHalfOpen: false }, (socket) => {
        if (v.socket) return void socket.destroy(); // one QEMU, one connection
        v.socket = socket;
        socket.setNoDelay(true);
        socket.on("data", (chunk: Buffer) => this.doorbellRang(v.index, chunk.length));
        // QEMU's end closes its doorbells first: give its exit (and its reason) a moment to arrive.
        const lost = (why: string) => setTimeout(() => this.fail(`vCPU ${v.index}: its doorbell ${why}`), 1000).unref();
        socket.on("error", (e) => lost(`failed: ${e.message}`));
        socket.on("close", () => {
          v.socket = null;
          lost("closed");
        });
      });
      v.server = server;
      server.on("error", reject);
      server.listen(v.socketPath, () => resolve());
    });
  }

  /** vCPU `vcpu`'s doorbell delivered `bytes` rings (its socket's data handler; tests call it to flood it). */
  doorbellRang(vcpu: number, bytes: number): void {
    const v = this.vcpus[vcpu];
    if (!v || this.ending) return;
    const now = Date.now();
    if (now - v.windowStart > 1000) {
      v.windowStart = now;
      v.bells = 0;
      v.requests = 0;
    }
    v.bells += bytes;
    // The shim rings at most once per request (a full ring queue coalesces): anything far beyond that is a
    // broken or hostile shim, and it must not keep this process busy.
    if (v.bells > v.requests + DOORBELL_STORM) return this.fail(`vCPU ${v.index}: doorbell storm (${v.bells} rings for ${v.requests} requests in a second)`);
    this.opts.poller.kick();
  }

  private onConsole(s: string): void {
    this.typer?.output(s);
    this.consoleBuffer += s;
    let nl: number;
    while ((nl = this.consoleBuffer.indexOf("\n")) >= 0) {
      this.opts.console(this.consoleBuffer.slice(0, nl).replace(/\r$/, ""));
      this.consoleBuffer = this.consoleBuffer.slice(nl + 1);
    }
    // A guest that never prints a newline cannot grow our memory without bound.
    if (this.consoleBuffer.length > 16384) {
      this.opts.console(this.consoleBuffer);
      this.consoleBuffer = "";
    }
  }

  // Pollable: the poller scans the mailboxes.

  setPolling(on: boolean): void {
    if (this.ram.mapped) Atomics.store(this.hostState, 0, on ? 1 : 0);
  }

  setSpinAdvice(ticks: number): void {
    if (this.ram.mapped) Atomics.store(this.hostState, 1, ticks | 0);
  }

  poll(): boolean {
    if (this.ending || !this.ram.mapped) return false;
    let any = false;
    for (const v of this.vcpus) {
      const seq = Atomics.load(v.words, MAILBOX.reqSeq / 4) >>> 0;
      if (seq === v.seen) continue;
      any = true;
      this.onRequest(v, seq);
      if (this.ending) return true;
    }
    return any;
  }

  private onRequest(v: VcpuChannel, seq: number): void {
    if (seq !== ((v.seen + 1) >>> 0)) return this.fail(`vCPU ${v.index}: protocol error: request ${seq} after ${v.seen}`);
    v.seen = seq;
    v.requests++;
    this.opts.poller.requested(this, v.index);
    const r = v.frame;
    const bad = r.load(v.request, this.vcpus.length);
    if (bad !== null) return this.fail(`vCPU ${v.index}: protocol error: ${bad}`);
    if (r.vcpu !== v.index) return this.fail(`vCPU ${v.index}: protocol error: frame names vCPU ${r.vcpu}`);
    if (DEBUG) console.error(`[${this.name}] vCPU ${v.index} request ${seq} type ${r.type} x0 0x${r.words[0]!.toString(16)}`);
    v.counterAt = seq;
    const local = r.localCalls;
    if (local !== 0) this.localCalls += BigInt(local);
    if (r.aborts !== 0) this.onAborts(v, r);
    if (this.resetting) {
      // Requests from before the reset are dropped unanswered (their CPUs no longer exist), and so is the
      // state they carry; the next boot starts with vCPU 0's HELLO.
      if (!(r.type === REQ.HELLO && v.index === 0)) return;
      this.resetting = false;
    }
    if (r.wa2State !== 0) this.wa2?.(v.index, r.wa2State === 2);
    if (v.suspended) {
      // The vCPU runs again: a wake-up event ended its power-down suspend (the shim waited for it).
      v.suspended = false;
      const psci = this.domain?.routed.services.get("psci");
      if (psci instanceof PsciService) psci.resumed(v.index);
    }
    switch (r.type) {
      case REQ.HELLO:
        return this.onHello(v);
      case REQ.HANDOVER:
        return this.onHandover(v, r);
      case REQ.TRAP:
        return this.onTrap(v, r);
      case REQ.MMIO:
        if (v.busy || v.awaiting) return this.fail(`vCPU ${v.index}: protocol error: a device access while its previous call is open`);
        return this.onMmio(v, r);
      case REQ.PHYS_RESULT: {
        const waiting = v.awaiting;
        if (!waiting) return this.fail(`vCPU ${v.index}: protocol error: PHYS_RESULT without a PHYS_SMC`);
        v.awaiting = null;
        if (waiting.onResult?.(r.words) === "retry") {
          const epoch = this.epoch;
          setTimeout(() => {
            if (!this.ending && this.epoch === epoch) this.send(v, waiting.reply, waiting);
          }, 1);
          return;
        }
        return this.flush(v);
      }
      case REQ.UNEXPECTED: {
        this.send(v, { type: RSP.STOP });
        // An AArch32 EL1 cannot be given an abort or an UNDEF under QEMU 7.2 (shim.c, stage2_fault): the VM ends.
        const ec = r.esr >>> 26, aarch32 = (r.spsr32 & 0x10) !== 0;
        if (aarch32 && (ec === 0x20 || ec === 0x24)) {
          return this.fail(`vCPU ${v.index} (AArch32 EL1) accessed IPA 0x${r.abortIpa.toString(16)} outside the VM's memory map; an AArch32 EL1 cannot be given the external abort it would get, so the VM ends`);
        }
        if (aarch32 && (ec === 0x12 || ec === 0x13)) {
          return this.fail(`vCPU ${v.index} (AArch32 EL1): the answer to its call is an UNDEFINED exception, which an AArch32 EL1 cannot be given, so the VM ends`);
        }
        return this.fail(
          `vCPU ${v.index} took an exception the shim does not handle: ESR 0x${r.esr.toString(16)} ELR 0x${r.elr.toString(16)} FAR 0x${r.far.toString(16)} SPSR 0x${r.spsr.toString(16)}`,
        );
      }
    }
  }

  private onAborts(v: VcpuChannel, r: RequestFrame): void {
    this.aborts += BigInt(r.aborts);
    this.opts.log?.(`${this.name}: vCPU ${v.index}: ${r.aborts} access(es) outside the VM's memory map refused (last at IPA 0x${r.abortIpa.toString(16)}): synchronous external abort injected`);
  }

  private onHello(v: VcpuChannel): void {
    if (v.busy || v.awaiting) return this.fail(`vCPU ${v.index}: protocol error: HELLO in the middle of a call`);
    if (v.index === 0 && this.helloTimer) {
      clearTimeout(this.helloTimer);
      this.helloTimer = null;
    }
    if (v.index === 0 && v.pendingStart === null && this.config.handover && !this.expectHello) {
      // A handover VM's kernel that still owns EL2 resets the machine through QEMU's PSCI itself, unseen:
      // the boot CPU's HELLO is the only sign. A new boot all the same (the domain is reset, boots counts it).
      this.beginReset();
      this.resetting = false;
    }
    if (v.index === 0 && v.pendingStart === null && this.domainReset) {
      // The hypervisor's reset of the domain is still under way (a secure world that answers later): the new
      // boot starts when it is done.
      const epoch = this.epoch;
      void this.domainReset.then(() => {
        if (!this.ending && this.epoch === epoch) {
          this.onHello(v);
          this.opts.poller.kick();
        }
      });
      return;
    }
    if (v.index === 0 && v.pendingStart === null) {
      this.expectHello = false;
      // QEMU has put the device tree back as it was at the first boot: this boot's number goes in its bootargs.
      if (this.boots > 1 && this.bootDigitsAt !== null) this.memory.write(this.bootDigitsAt, new TextEncoder().encode(bootDigits(this.boots)));
      // The boot CPU (after a reset too): the image with x0 = the device tree (Linux arm64 booting.rst); a
      // firmware guest at its reset address with every register zero, as a CPU comes out of reset (it finds
      // the device tree at the start of RAM, where virt puts it for firmware).
      const firmware = this.opts.image.firmware !== undefined;
      // A handover VM's kernel starts at EL2, as on a board without a hypervisor (docs/handover.md).
      this.handedOver = false;
      this.roll?.reset();
      this.clearRollTimer();
      this.contained = false;
      this.hypStub?.reset();
      const flags = this.config.handover ? RESUME_EL2 : this.resumeFlags;
      v.outbox = [{ reply: { type: RSP.RESUME_AT, entry: this.layout!.kernel, regs: [firmware ? 0n : this.layout!.dtb, 0n, 0n, 0n], flags } }];
    } else if (v.pendingStart) {
      const s = v.pendingStart;
      v.pendingStart = null;
      v.outbox = [{ reply: { type: RSP.RESUME_AT, entry: s.entry, regs: [s.context, 0n, 0n, 0n], flags: this.resumeFlags } }];
    } else {
      this.send(v, { type: RSP.STOP });
      return this.fail(`vCPU ${v.index} came up without a virtual CPU_ON`);
    }
    this.flush(v);
  }

  /** The handover VM's kernel has handed EL2 over (set at the handover, cleared at each boot). */
  private handedOver = false;
  /** The hyp stub smcvisor serves for a handed-over kernel (services/hyp-stub); null for other VMs. */
  private readonly hypStub: HypStub | null;

  /**
   * The kernel of a handover VM called the shim's vectors for the first time (shim.c, handover()): from
   * that HVC on, its SMCs and HVCs trap and stage 2 covers it. The call itself is its HVC_SET_VECTORS naming
   * the shim's vectors, answered 0 as its stub would; any other first call is answered HVC_STUB_ERR (the
   * handover has happened all the same: the shim's vectors are VBAR_EL2).
   */
  private onHandover(v: VcpuChannel, r: RequestFrame): void {
    const roll = this.roll;
    const ask = roll && !v.busy && !v.awaiting ? roll.handover(v.index) : null;
    if (!this.config.handover || !roll || !ask) {
      this.send(v, { type: RSP.STOP });
      return this.fail(`vCPU ${v.index}: protocol error: an unexpected HANDOVER request`);
    }
    const first = !this.handedOver;
    this.handedOver = true;
    // A secondary its kernel started through the machine's own PSCI: smcvisor's PSCI learns that it runs.
    const psci = this.domain?.routed.services.get("psci");
    if (psci instanceof PsciService) psci.startedOutside(v.index);
    const x0 = BigInt(r.words[0]!) | (BigInt(r.words[1]!) << 32n), x1 = BigInt(r.words[2]!) | (BigInt(r.words[3]!) << 32n);
    const ok = x0 === HVC_SET_VECTORS && x1 === HANDOVER_VECTORS;
    this.opts.log?.(`${this.name}: vCPU ${v.index}: the kernel handed EL2 over (its HVC x0=0x${x0.toString(16)} x1=0x${x1.toString(16)}${ok ? "" : ": not HVC_SET_VECTORS of the shim's vectors, answered HVC_STUB_ERR"}); its SMCs and HVCs are smcvisor's from here`);
    // In the trace too: the first call smcvisor answers for this CPU is the handover itself.
    this.domain?.recordMachineCall(v.index, true, Number(x0 & 0xffff_ffffn), ok ? "emulate" : "deny", "hyp-stub:handover", ok ? 0n : HVC_STUB_ERR, `x1=0x${x1.toString(16)}`);
    // Which other CPUs run, asked of the machine's PSCI through this CPU (each answer in HandoverRoll), then
    // the HVC's answer.
    const epoch = this.epoch;
    v.outbox = ask.map((i) => ({
      reply: { type: RSP.PHYS_SMC, regs: [PSCI_AFFINITY_INFO64, mpidrOf(i), 0n] },
      onResult: (regs: Uint32Array) => {
        if (this.epoch !== epoch) return;
        roll.answered(i, regs[0]! | 0);
        this.checkContained();
      },
    }));
    v.outbox.push({ reply: { type: RSP.RETURN, count: 1, advance: 0, regs: [ok ? 0n : HVC_STUB_ERR] } });
    if (first) {
      this.rollStart = performance.now();
      this.rollTimer = setTimeout(() => {
        this.rollTimer = null;
        if (this.ending || this.epoch !== epoch || roll.contained) return;
        const kept = roll.keptEl2;
        this.fail(
          kept.length > 0
            ? `vCPU ${kept.join(", ")} kept EL2: started by the kernel through QEMU's PSCI, not handed over within ${HANDOVER_ALL_MS / 1000} s of vCPU ${v.index}'s handover (handed over: ${roll.list.join(", ")}); the VM is not contained`
            : `the machine did not say within ${HANDOVER_ALL_MS / 1000} s of vCPU ${v.index}'s handover which CPUs run; the VM is not known to be contained`,
        );
      }, HANDOVER_ALL_MS);
    }
    this.checkContained();
    this.flush(v);
  }

  /** Which vCPUs of a handover VM have handed over, and whether any still runs the kernel at EL2; null for other VMs. */
  private readonly roll: HandoverRoll | null;
  private rollTimer: NodeJS.Timeout | null = null;
  /** When the first CPU of this boot handed over (performance.now(), ms). */
  private rollStart = 0;
  /** Every CPU the kernel runs has handed over in this boot (logged once per boot). */
  private contained = false;

  private clearRollTimer(): void {
    if (this.rollTimer) clearTimeout(this.rollTimer);
    this.rollTimer = null;
  }

  private checkContained(): void {
    if (this.contained || !this.roll?.contained) return;
    this.contained = true;
    this.clearRollTimer();
    const ms = (performance.now() - this.rollStart).toFixed(1);
    this.opts.log?.(`${this.name}: every CPU the kernel runs has handed EL2 over (vCPU ${this.roll.list.join(", ")} of ${this.config.vcpus}, ${ms} ms after the first); no CPU of the VM runs at EL2 but the shim`);
  }

  /** A handed-over kernel's stub call (an HVC #0 with x0 < 0x1000): the hyp stub's answer (services/hyp-stub). */
  private onStubCall(v: VcpuChannel, r: RequestFrame): boolean {
    const stub = this.hypStub;
    if (!stub || !this.handedOver || r.esr !== ESR_HVC64_0) return false;
    const x = [0, 1, 2, 3, 4].map((i) => BigInt(r.words[2 * i]!) | (BigInt(r.words[2 * i + 1]!) << 32n));
    if (!HypStub.isStubCall(x[0]!)) return false;
    const a = stub.call(x);
    this.stubCalls++;
    if (this.stubCalls <= 64) this.opts.log?.(`${this.name}: vCPU ${v.index}: hyp stub: ${a.note}`);
    const refused = a.kind === "return" && a.x0 === HVC_STUB_ERR;
    this.domain?.recordMachineCall(v.index, true, Number(x[0]!), refused ? "deny" : "emulate", a.rule, a.kind === "return" ? a.x0 : 0n, a.note);
    if (a.kind === "restart") this.send(v, { type: RSP.RESTART, entry: a.entry, regs: [...a.args, 0n] });
    else this.send(v, { type: RSP.RETURN, count: 1, advance: 0, regs: [a.x0] });
    return true;
  }

  /** Stub calls answered (the first 64 are logged: a kernel cannot flood the log). */
  stubCalls = 0;

  private onTrap(v: VcpuChannel, r: RequestFrame): void {
    if (v.busy || v.awaiting) return this.fail(`vCPU ${v.index}: protocol error: a trap while its previous call is open`);
    if (this.hypStub && this.onStubCall(v, r)) return;
    const domain = this.domain;
    if (!domain) return this.fail("no domain attached");
    v.busy = true;
    v.halt = null;
    v.standby = false;
    v.outbox = [];
    const epoch = this.epoch;
    let outcome: number | Promise<number>;
    try {
      // A firmware guest's calls carry their stage in the trace (docs/devices.md, "Which stage called").
      if (this.opts.image.firmware !== undefined) domain.traceStage = stageOf(r.elr);
      outcome = domain.trap(v.index, r.words, r.esr, r.spsr32);
    } catch (e) {
      return this.fail(`vCPU ${v.index}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      domain.traceStage = 0;
    }
    if (typeof outcome === "number") return this.finishTrap(v, r, outcome);
    outcome.then(
      (o) => {
        // A call that outlived a reset of its VM is answered to nobody.
        if (this.epoch !== epoch) return;
        this.finishTrap(v, r, o);
        this.opts.poller.kick();
      },
      (e: unknown) => this.fail(`vCPU ${v.index}: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private finishTrap(v: VcpuChannel, r: RequestFrame, outcome: number): void {
    if (this.ending) return;
    v.busy = false;
    const out = v.outbox;
    if (outcome === OUTCOME_BAD_TRAP) {
      this.send(v, { type: RSP.STOP });
      return this.fail(`vCPU ${v.index}: trap with ESR 0x${r.esr.toString(16)} is not an SMC or HVC`);
    }
    if (outcome === OUTCOME_UNDEF) out.push({ reply: { type: RSP.UNDEF } });
    else if (outcome === OUTCOME_HALT) {
      out.push({ reply: this.haltReply(v) });
      this.opts.onHalt?.(v.index);
    } else if (outcome === OUTCOME_SKIP) out.push({ reply: { type: RSP.RETURN, count: 0, advance: pcAdvance(r.esr, outcome) } });
    else out.push({ reply: { type: v.standby ? RSP.RETURN_WAKE : RSP.RETURN, count: 18, advance: pcAdvance(r.esr, outcome), regs: r.words } });
    v.standby = false;
    this.flush(v);
  }

  private haltReply(v: VcpuChannel): Reply {
    const h = v.halt;
    v.halt = null;
    switch (h?.kind) {
      case "cpu-off":
        return { type: RSP.CPU_OFF };
      case "system-off":
        this.poweredOff = h.reason;
        return { type: RSP.SYSTEM_OFF };
      case "system-reset":
        return { type: RSP.SYSTEM_RESET };
      case "suspend":
        // The shim waits for a wake-up event, then enters as a warm boot (shim/suspend.c, docs/suspend.md).
        v.suspended = true;
        return { type: RSP.RESUME_AT, entry: h.entry, regs: [h.context, 0n, 0n, 0n], flags: RESUME_WAKE | this.resumeFlags };
      default:
        return { type: RSP.STOP };
    }
  }

  private poweredOff: string | null = null;

  /** RESUME_AT flags for this VM: AArch32 EL1 when the VM is configured so. */
  private get resumeFlags(): bigint {
    return this.config.aarch32 ? RESUME_AARCH32 : 0n;
  }

  /** Sends queued replies: the next one (a PHYS_SMC then waits for its PHYS_RESULT). */
  private flush(v: VcpuChannel): void {
    const o = v.outbox.shift();
    if (!o || this.ending) return;
    this.send(v, o.reply, o);
  }

  /** Writes the reply to vCPU `v`'s current request into its mailbox; rings its doorbell if it sleeps. */
  private send(v: VcpuChannel, reply: Reply, o?: Outgoing): void {
    if (!this.ram.mapped) return;
    if (reply.type === RSP.PHYS_SMC) v.awaiting = o ?? { reply };
    if (reply.type === RSP.SYSTEM_RESET) this.beginReset();
    v.reply.write(reply);
    Atomics.store(v.words, MAILBOX.rspSeq / 4, v.seen | 0);
    if (DEBUG) console.error(`[${this.name}] vCPU ${v.index} reply ${v.seen} type ${reply.type} sleeping ${Atomics.load(v.words, MAILBOX.sleeping / 4)}`);
    if (Atomics.load(v.words, MAILBOX.sleeping / 4) !== 0) this.ring(v);
  }

  /** Wakes vCPU `v` from the shim's WFI: one byte on its doorbell. */
  private ring(v: VcpuChannel): void {
    if (!v.socket) return this.fail(`vCPU ${v.index}: its doorbell is not connected`);
    v.socket.write(RING);
  }

  /**
   * A vCPU is about to reset the machine (QEMU resets every CPU and device when the shim makes the
   * physical SYSTEM_RESET). Calls still open on other vCPUs will never be answered; requests that reach us
   * before the next boot's HELLO are from before the reset. The hypervisor resets the domain now.
   */
  private beginReset(): void {
    this.expectHello = true;
    this.epoch++;
    this.clearRollTimer();
    // The machine's devices come out of reset too: the emulated ones forget what the driver set up.
    this.diskTransport?.reset();
    this.resetting = true;
    this.boots++;
    for (const other of this.vcpus) {
      other.busy = false;
      other.awaiting = null;
      other.outbox = [];
      other.halt = null;
      other.pendingStart = null;
      other.standby = false;
      other.suspended = false;
    }
    const r = this.domain?.reset();
    const report = (res: Awaited<NonNullable<typeof r>>) => {
      if (!res.ok) this.opts.log?.(`${this.name}: reset: ${res.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
    };
    if (r instanceof Promise) {
      const done: Promise<void> = r.then(report, (e: unknown) => this.fail(`reset: ${e instanceof Error ? e.message : String(e)}`)).finally(() => {
        if (this.domainReset === done) this.domainReset = null;
      });
      this.domainReset = done;
    } else if (r) report(r);
    const boot = this.boots;
    queueMicrotask(() => this.opts.onReset?.(boot));
  }

  // PowerPort: virtual PSCI decided; the shim makes it physically so (R9).

  cpuOn(caller: number, target: number, entry: bigint, context: bigint): void {
    const c = this.vcpus[caller];
    const t = this.vcpus[target];
    if (!c || !t) throw new Error(`CPU_ON from vCPU ${caller} for vCPU ${target}: no such vCPU`);
    t.pendingStart = { entry, context };
    let tries = 0;
    c.outbox.push({
      reply: { type: RSP.PHYS_SMC, regs: [PSCI_CPU_ON64, mpidrOf(target), 0n, BigInt(target)] },
      onResult: (regs): "retry" | undefined => {
        const ret = regs[0]! | 0;
        // Virtual PSCI turned the target off when its CPU_OFF trapped; the physical CPU_OFF follows when
        // the shim acts on the reply. A CPU_ON that overtakes it gets ALREADY_ON (-4): try again shortly.
        if (ret === PSCI_ALREADY_ON && ++tries < 2000) return "retry";
        if (ret !== 0) this.fail(`physical CPU_ON for vCPU ${target} failed with ${ret} (QEMU's PSCI)`);
        return undefined;
      },
    });
  }

  cpuOff(vcpu: number): void {
    this.vcpus[vcpu]!.halt = { kind: "cpu-off" };
  }

  cpuSuspend(vcpu: number, entry: bigint, context: bigint): void {
    this.vcpus[vcpu]!.halt = { kind: "suspend", entry, context };
  }

  cpuStandby(vcpu: number): void {
    this.vcpus[vcpu]!.standby = true;
  }

  /**
   * The host's wake-up event for vCPU `vcpu` (DEN0022 §5.4: an implementation-defined wake-up event): a
   * power-down suspend resumes, a standby returns. One that comes while the vCPU runs ends its next wait at
   * once, which the spec allows (a suspend may end early). Returns whether the vCPU was waiting.
   */
  wake(vcpu: number): boolean {
    const v = this.vcpus[vcpu];
    if (!v) throw new Error(`wake: vCPU ${vcpu} does not exist (the VM has ${this.vcpus.length})`);
    if (this.ending || !this.ram.mapped) return false;
    Atomics.add(v.words, MAILBOX.wakeReq / 4, 1);
    const waiting = Atomics.load(v.words, MAILBOX.waiting / 4) !== 0;
    if (waiting) this.ring(v);
    return waiting;
  }

  /** How vCPU `vcpu`'s wake-up waits have ended so far (the shim's counters). */
  wakeStats(vcpu: number): WakeStats {
    if (!this.vcpus[vcpu]) throw new Error(`wakeStats: vCPU ${vcpu} does not exist (the VM has ${this.vcpus.length})`);
    if (!this.ram.mapped) throw new Error(`wakeStats: ${this.name} has ended (its RAM is gone)`);
    return decodeWakeStats(this.ram.view(mailboxOffset(vcpu), SHIM_REGION.mailboxStride));
  }

  systemOff(vcpu: number, reason: string): void {
    this.vcpus[vcpu]!.halt = { kind: "system-off", reason };
  }

  systemReset(vcpu: number, reason: string): void {
    this.vcpus[vcpu]!.halt = { kind: "system-reset", reason };
  }

  private qmp: Promise<Qmp> | null = null;
  private hostReset: Promise<{ ok: true } | { ok: false; error: string }> | null = null;

  /**
   * Resets the machine now, as a board's reset button does, whatever the guest is doing (the control API's
   * reset: a VM spinning, or idle in WFI, makes no call at which it could be asked to). Over QMP: QEMU's
   * vCPUs are stopped first (`stop` returns once they are), so every request a shim had posted is in its
   * mailbox; the hypervisor starts its reset (beginReset: the domain reset, the next boot awaited) and drops
   * those requests unanswered, as it drops those of the other CPUs when a guest's SYSTEM_RESET resets the
   * machine; then QEMU resets every CPU and device (`system_reset`, the path QEMU's own PSCI SYSTEM_RESET
   * takes), reports it (the RESET event), and runs again (`cont`). The shim starts over on the boot CPU, whose
   * HELLO starts the next boot. A reset asked for while one is under way joins it. A QMP failure before
   * QEMU was stopped leaves the VM running and is returned; after, the VM ends with it (its state is half reset).
   */
  reset(): Promise<{ ok: true } | { ok: false; error: string }> {
    if (this.ending) return Promise.resolve({ ok: false, error: `${this.name} has ended` });
    this.hostReset ??= this.resetOverQmp().finally(() => (this.hostReset = null));
    return this.hostReset;
  }

  private async resetOverQmp(): Promise<{ ok: true } | { ok: false; error: string }> {
    let qmp: Qmp;
    try {
      qmp = await (this.qmp ??= Qmp.connect(this.qmpPath));
      await qmp.execute("stop");
    } catch (e) {
      this.qmp = null;
      return { ok: false, error: `cannot reset ${this.name}: ${e instanceof Error ? e.message : String(e)}` };
    }
    if (this.ending) return { ok: false, error: `${this.name} has ended` };
    try {
      this.beginReset();
      this.poll();
      const reset = qmp.nextEvent("RESET");
      await qmp.execute("system_reset");
      await reset;
      await qmp.execute("cont");
      return { ok: true };
    } catch (e) {
      const why = `reset over QMP failed: ${e instanceof Error ? e.message : String(e)}`;
      this.fail(why);
      return { ok: false, error: why };
    }
  }

  /** Ends the VM now (QEMU is killed) with a reason. */
  fail(reason: string): void {
    this.end("failed", reason);
  }

  /** Ends the VM on purpose (a test guest that has finished its work). */
  stop(reason: string): void {
    this.end("stopped", reason);
  }

  private end(state: VmExit["state"], reason: string): void {
    if (this.ending) return;
    this.ending = { state, reason };
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    else this.cleanup();
  }

  private onQemuExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.consoleBuffer) this.opts.console(this.consoleBuffer);
    this.consoleBuffer = "";
    if (!this.ending) {
      if (this.poweredOff !== null && code === 0) this.ending = { state: "off", reason: `powered off (${this.poweredOff})` };
      // A handover VM's kernel that never handed EL2 over powers off through QEMU's PSCI itself, unseen.
      else if (this.config.handover && !this.handedOver && code === 0) this.ending = { state: "off", reason: "powered off before the handover (QEMU's PSCI, not smcvisor's)" };
      else {
        const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
        const err = this.stderr.trim().split("\n").slice(-3).join(" / ");
        this.ending = { state: "failed", reason: `QEMU ${why}${err ? `: ${err}` : ""}` };
      }
    }
    this.cleanup();
  }

  private cleaned = false;

  private cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.clearRollTimer();
    void this.qmp?.then((q) => q.close(), () => undefined);
    this.opts.poller.remove(this);
    for (const v of this.vcpus) {
      v.socket?.destroy();
      v.server?.close();
    }
    const wakes = this.ram.mapped ? this.vcpus.map((v) => this.wakeStats(v.index)) : [];
    this.ram.dispose();
    this.disk?.close();
    rmSync(this.opts.runDir, { recursive: true, force: true });
    const e = this.ending ?? { state: "failed" as const, reason: "ended" };
    this.resolveExit({ name: this.name, state: e.state, reason: e.reason, localCalls: this.localCalls, aborts: this.aborts, boots: this.boots, wakes, ...(this.roll ? { handedOver: this.roll.list, keptEl2: this.roll.keptEl2 } : {}) });
  }

  /** Whether the VM has ended (or is ending). */
  get ended(): boolean {
    return this.ending !== null;
  }

  /** The VM's run directory (its doorbell sockets). */
  get runDir(): string {
    return this.opts.runDir;
  }

  /** The QEMU process id (tests kill it to check that other VMs survive). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** vCPU `vcpu`'s mailbox as bytes (tests corrupt it to check that a malformed mailbox ends this VM only). */
  mailbox(vcpu: number): Uint8Array {
    return this.ram.view(mailboxOffset(vcpu), SHIM_REGION.mailboxStride);
  }
}

const RING = Buffer.from([1]);
/** ESR_EL2 of an AArch64 HVC #0 (EC 0x16, IL). */
const ESR_HVC64_0 = 0x5a00_0000;
/**
 * Who made a firmware guest's call, from where it was made: the kernel runs in the upper half of the
 * virtual address space (TTBR1_EL1: arm64 Linux's kernel addresses, 0xffff...), UEFI identity-mapped in the
 * lower half (UEFI 2.10 §2.3.6.1), and so do its runtime services when the kernel calls them (through
 * the identity map Linux keeps for them). The EFI stub runs as a UEFI application, in the lower half.
 */
export function stageOf(elr: bigint): number {
  return elr >> 63n ? STAGE_KERNEL : STAGE_FIRMWARE;
}

const MMIO_GAPS = 4096;
const DEBUG_MMIO = process.env.SMCVISOR_DEBUG_MMIO === "1";

/** The disk's interrupt: an SPI no device of QEMU's virt drives (its platform bus's, unused here). */
export const DISK_SPI = 112;


/** The first bytes of a file: enough for an arm64 Image header (the image itself is QEMU's to load). */
function readHeader(path: string): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const b = new Uint8Array(64);
    return b.subarray(0, readSync(fd, b, 0, 64, 0));
  } finally {
    closeSync(fd);
  }
}
/** SMCVISOR_DEBUG_CHANNEL=1: every request and reply on stderr (for whoever runs the hypervisor, never a guest's choice). */
const DEBUG = process.env.SMCVISOR_DEBUG_CHANNEL === "1";

/** On the guest's kernel command line: the boot's number, so a guest can tell a reboot from the first boot. */
const BOOT_ARG = "smcvisor.boot=";
const bootDigits = (boot: number) => String(Math.min(boot, 9999)).padStart(4, "0");
