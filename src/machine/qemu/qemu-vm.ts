/**
 * One VM as one QEMU process: `qemu-system-aarch64 -M virt,virtualization=on` with the EL2 shim as its
 * firmware-level kernel, the guest image loaded beside it, guest RAM in a shared file, and one FIFO pair per
 * vCPU carrying the shim's frames (docs/qemu-channel.md). The VM's console is QEMU's serial port on stdout.
 *
 * Everything that can go wrong here ends this VM only: QEMU dying, a malformed frame, an exception the shim
 * does not handle. The reason is reported and every FIFO and shared file is removed on every exit path.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { constants, openSync, closeSync, writeSync, readFileSync, statSync, rmSync, mkdirSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import type { Domain } from "../../hypervisor/hypervisor.js";
import type { VmConfig } from "../../policy/load.js";
import type { GuestTime, PowerPort, VmPorts } from "../../router/ports.js";
import { OUTCOME_BAD_TRAP, OUTCOME_HALT, OUTCOME_SKIP, OUTCOME_UNDEF, pcAdvance } from "../../router/outcome.js";
import { mpidrOf } from "../../services/psci/topology.js";
import { decodeRequest, encodeReply, fastKey, FrameSplitter, REQ, RESUME_AARCH32, RESUME_WFI, RSP, type Reply, type Request } from "./channel.js";
import { buildDtb } from "./dtb.js";
import { FileGuestMemory } from "./guest-memory.js";
import { kernelFootprint, layoutFor, type Layout } from "./layout.js";
import { fastAnswersFor } from "./fast-path.js";
import { ArchService } from "../../services/arch/arch.js";

const PSCI_CPU_ON64 = 0xc400_0003n;
const PSCI_ALREADY_ON = -4;
/** QEMU's virt machine numbers at most 8 CPUs in cluster 0, which is what the shim indexes by. */
export const MAX_QEMU_VCPUS = 8;

export interface GuestImage {
  /** A Linux arm64 Image, or a raw bare-metal binary loaded like one (x0 = the device tree's address). */
  readonly kernel: string;
  readonly initrd?: string;
  readonly cmdline?: string;
}

export interface FastAnswer {
  readonly fid: number;
  readonly value: bigint;
  readonly hvc: boolean;
  readonly smc: boolean;
  /** The shim keeps W1 as the vCPU's SMCCC_ARCH_WORKAROUND_2 state and reports it in every frame. */
  readonly recordsWa2?: boolean;
}

export interface QemuVmOptions {
  readonly qemu: string;
  readonly shim: string;
  /** The VM's run directory (FIFOs, device tree); created here, removed at exit. */
  readonly runDir: string;
  /** Where guest RAM is shared (a file under /dev/shm). */
  readonly ramFile: string;
  readonly image: GuestImage;
  /** `-cpu`; cortex-a57 without PMU keeps exception-level changes cheap (ARCHITECTURE "Facts measured"). */
  readonly cpu?: string;
  readonly gicVersion?: 2 | 3;
  /** Every line the guest prints on its console. */
  readonly console: (line: string) => void;
  /**
   * Answers the shim gives itself without a round trip, counted but not traced one by one: a fixed
   * table (the null-trap benchmark), or "auto" for what fast-path.ts finds eligible in the VM's policy.
   */
  readonly fastTable?: readonly FastAnswer[] | "auto";
  /** A call of vCPU `vcpu` that does not return (CPU_OFF, SYSTEM_OFF, power-down suspend) was taken. */
  readonly onHalt?: (vcpu: number) => void;
  /** The guest asked for SYSTEM_RESET (QEMU resets and the guest boots again). */
  readonly onReset?: () => void;
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
}

type Halt = { kind: "cpu-off" } | { kind: "system-off"; reason: string } | { kind: "system-reset"; reason: string } | { kind: "suspend"; entry: bigint; context: bigint };

interface Outgoing {
  readonly reply: Reply;
  /** A PHYS_SMC: the shim answers with PHYS_RESULT, handed here; "retry" sends the same call again shortly. */
  readonly onResult?: (regs: Uint32Array) => void | "retry";
}

class VcpuChannel {
  readonly splitter = new FrameSplitter();
  socket: Socket | null = null;
  rspFd: number | null = null;
  /** Replies still to send for the current request; a PHYS_SMC waits for its PHYS_RESULT. */
  outbox: Outgoing[] = [];
  awaiting: Outgoing | null = null;
  busy = false;
  halt: Halt | null = null;
  /** Entry and context from the virtual CPU_ON that is starting this vCPU. */
  pendingStart: { entry: bigint; context: bigint } | null = null;
  lastCounter = 0n;

  constructor(readonly index: number, readonly reqPath: string, readonly rspPath: string) {}
}

export class QemuVm implements PowerPort {
  readonly memory: FileGuestMemory;
  readonly time: GuestTime;
  private domain: Domain | null = null;
  private readonly vcpus: VcpuChannel[] = [];
  private child: ChildProcess | null = null;
  private layout: Layout | null = null;
  private ending: { state: VmExit["state"]; reason: string } | null = null;
  /** The vCPU whose call is being handled: PSCI's power requests come from it. */
  private current = -1;
  private localCalls = 0n;
  private resolveExit!: (e: VmExit) => void;
  readonly exited: Promise<VmExit>;
  private stderr = "";
  private consoleBuffer = "";

  constructor(readonly config: VmConfig, private readonly opts: QemuVmOptions) {
    if (config.vcpus > MAX_QEMU_VCPUS) throw new Error(`vms.${config.name}.vcpus: the QEMU backend runs at most ${MAX_QEMU_VCPUS} vCPUs per VM`);
    mkdirSync(opts.runDir, { recursive: true });
    this.memory = new FileGuestMemory(opts.ramFile, config.memory.base, config.memory.size);
    for (let i = 0; i < config.vcpus; i++) this.vcpus.push(new VcpuChannel(i, join(opts.runDir, `vcpu${i}.req`), join(opts.runDir, `vcpu${i}.rsp`)));
    const epochOffset = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
    this.time = {
      wallClockNs: () => process.hrtime.bigint() + epochOffset,
      // CNTVOFF_EL2 is 0, so the virtual and physical counters agree; the value is the one at the trap.
      counter: (vcpu) => this.vcpus[vcpu]?.lastCounter ?? 0n,
    };
    this.exited = new Promise((r) => (this.resolveExit = r));
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

  /** The QEMU arguments that shape the machine (shared with the device-tree dump so the two agree). */
  private machineArgs(): string[] {
    const mem = `${this.config.memory.size / (1n << 20n)}M`;
    return [
      "-M", `virt,virtualization=on,gic-version=${this.opts.gicVersion ?? 2}`,
      "-cpu", this.opts.cpu ?? "cortex-a57,pmu=off",
      "-smp", String(this.config.vcpus),
      "-m", mem,
    ];
  }

  /** Builds the device tree, creates the channels and starts QEMU. Failures end the VM with the reason. */
  async start(): Promise<void> {
    try {
      await this.prepare();
    } catch (e) {
      this.end("failed", `cannot start: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    const mem = `${this.config.memory.size / (1n << 20n)}M`;
    const l = this.layout!;
    const args = [
      ...this.machineArgs(),
      "-object", `memory-backend-file,id=ram,size=${mem},mem-path=${this.opts.ramFile},share=on`,
      "-machine", "memory-backend=ram",
      "-kernel", this.opts.shim,
      "-device", `loader,file=${this.opts.image.kernel},addr=0x${l.kernel.toString(16)},force-raw=on`,
      "-device", `loader,file=${join(this.opts.runDir, "guest.dtb")},addr=0x${l.dtb.toString(16)},force-raw=on`,
      ...(this.opts.image.initrd && l.initrd !== null ? ["-device", `loader,file=${this.opts.image.initrd},addr=0x${l.initrd.toString(16)},force-raw=on`] : []),
      "-semihosting-config", "enable=on,target=native",
      "-display", "none", "-monitor", "none", "-nodefaults", "-serial", "stdio",
      ...(this.opts.extraArgs ?? []),
    ];
    const child = spawn(this.opts.qemu, args, { cwd: this.opts.runDir, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (s: string) => this.onConsole(s));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (s: string) => {
      if (this.stderr.length < 4096) this.stderr += s;
    });
    child.on("error", (e) => this.end("failed", `cannot run ${this.opts.qemu}: ${e.message}`));
    child.on("exit", (code, signal) => this.onQemuExit(code, signal));
  }

  private async prepare(): Promise<void> {
    const { image } = this.opts;
    const kernel = readFileSync(image.kernel);
    const initrdSize = image.initrd ? BigInt(statSync(image.initrd).size) : null;
    const l = layoutFor(this.config.memory.base, this.config.memory.size, kernelFootprint(kernel), 1n << 20n, initrdSize);
    if (!l.ok) throw new Error(l.reason);
    this.layout = l.layout;
    await buildDtb(this.opts.qemu, this.machineArgs(), this.opts.runDir, join(this.opts.runDir, "guest.dtb"), {
      conduit: this.config.conduit === "hvc" ? "hvc" : "smc",
      bootargs: image.cmdline ?? "",
      initrd: l.layout.initrd !== null ? { start: l.layout.initrd, end: l.layout.initrdEnd! } : null,
      optee: this.config.tee !== undefined && this.config.tee !== null,
    });
    for (const v of this.vcpus) {
      execFileSync("mkfifo", ["-m", "600", v.reqPath, v.rspPath]);
      // O_RDWR: neither side blocks in open(), and the FIFO never reports end-of-file while we hold it.
      const reqFd = openSync(v.reqPath, constants.O_RDWR | constants.O_NONBLOCK);
      v.rspFd = openSync(v.rspPath, constants.O_RDWR | constants.O_NONBLOCK);
      const socket = new Socket({ fd: reqFd, readable: true, writable: false });
      socket.on("data", (chunk: Buffer) => {
        for (const frame of v.splitter.push(chunk)) this.onFrame(v, frame);
      });
      socket.on("error", (e) => this.fail(`vCPU ${v.index} channel: ${e.message}`));
      v.socket = socket;
    }
  }

  private onConsole(s: string): void {
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

  private onFrame(v: VcpuChannel, frame: Uint8Array): void {
    if (this.ending) return;
    const d = decodeRequest(frame, this.vcpus.length);
    if (!d.ok) return this.fail(`vCPU ${v.index}: protocol error: ${d.reason}`);
    const r = d.request;
    if (r.vcpu !== v.index) return this.fail(`vCPU ${v.index}: protocol error: frame names vCPU ${r.vcpu}`);
    v.lastCounter = r.cntvct;
    this.localCalls += r.localCalls;
    if (r.wa2State !== 0) this.wa2?.(r.vcpu, r.wa2State === 2);
    switch (r.type) {
      case REQ.HELLO:
        return this.onHello(v);
      case REQ.TRAP:
        return this.onTrap(v, r);
      case REQ.PHYS_RESULT: {
        const waiting = v.awaiting;
        if (!waiting) return this.fail(`vCPU ${v.index}: protocol error: PHYS_RESULT without a PHYS_SMC`);
        if (waiting.onResult?.(r.words) === "retry") {
          setTimeout(() => {
            if (!this.ending) this.send(v, waiting.reply);
          }, 1);
          return;
        }
        v.awaiting = null;
        return this.flush(v);
      }
      case REQ.UNEXPECTED:
        this.send(v, { type: RSP.STOP });
        return this.fail(
          `vCPU ${v.index} took an exception the shim does not handle: ESR 0x${r.esr.toString(16)} ELR 0x${r.elr.toString(16)} FAR 0x${r.far.toString(16)} SPSR 0x${r.spsr.toString(16)}`,
        );
    }
  }

  private onHello(v: VcpuChannel): void {
    if (v.busy || v.awaiting) return this.fail(`vCPU ${v.index}: protocol error: HELLO in the middle of a call`);
    const table = this.fastTable;
    const out: Outgoing[] = [];
    if (table.length > 0) {
      out.push({ reply: { type: RSP.FAST_TABLE, count: table.length, regs: table.flatMap((e) => [fastKey(e.fid, e), e.value]) } });
    }
    if (v.index === 0 && v.pendingStart === null) {
      // The boot CPU (after reset too): the image with x0 = the device tree (Linux arm64 booting.rst).
      out.push({ reply: { type: RSP.RESUME_AT, entry: this.layout!.kernel, regs: [this.layout!.dtb, 0n, 0n, 0n], flags: this.resumeFlags } });
    } else if (v.pendingStart) {
      const s = v.pendingStart;
      v.pendingStart = null;
      out.push({ reply: { type: RSP.RESUME_AT, entry: s.entry, regs: [s.context, 0n, 0n, 0n], flags: this.resumeFlags } });
    } else {
      this.send(v, { type: RSP.STOP });
      return this.fail(`vCPU ${v.index} came up without a virtual CPU_ON`);
    }
    v.outbox = out;
    this.flush(v);
  }

  private onTrap(v: VcpuChannel, r: Request): void {
    if (v.busy || v.awaiting) return this.fail(`vCPU ${v.index}: protocol error: a trap while its previous call is open`);
    const domain = this.domain;
    if (!domain) return this.fail("no domain attached");
    v.busy = true;
    v.halt = null;
    this.current = v.index;
    let outcome: number | Promise<number>;
    try {
      outcome = domain.trap(v.index, r.words, r.esr, Number(r.spsr & 0xffff_ffffn));
    } finally {
      this.current = -1;
    }
    if (typeof outcome === "number") this.finishTrap(v, r, outcome);
    else outcome.then((o) => this.finishTrap(v, r, o), (e: unknown) => this.fail(`vCPU ${v.index}: ${e instanceof Error ? e.message : String(e)}`));
  }

  private finishTrap(v: VcpuChannel, r: Request, outcome: number): void {
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
    }
    else if (outcome === OUTCOME_SKIP) out.push({ reply: { type: RSP.RETURN, count: 0, advance: pcAdvance(r.esr, outcome) } });
    else out.push({ reply: { type: RSP.RETURN, count: 18, advance: pcAdvance(r.esr, outcome), regs: r.words } });
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
        for (const other of this.vcpus) other.pendingStart = null;
        this.resets++;
        queueMicrotask(() => this.opts.onReset?.());
        return { type: RSP.SYSTEM_RESET };
      case "suspend":
        return { type: RSP.RESUME_AT, entry: h.entry, regs: [h.context, 0n, 0n, 0n], flags: RESUME_WFI | this.resumeFlags };
      default:
        return { type: RSP.STOP };
    }
  }

  private poweredOff: string | null = null;

  /** RESUME_AT flags for this VM: AArch32 EL1 when the VM is configured so. */
  private get resumeFlags(): bigint {
    return this.config.aarch32 ? RESUME_AARCH32 : 0n;
  }
  /** SYSTEM_RESETs so far. */
  resets = 0;

  /** Sends queued replies up to and including the next one the shim answers (PHYS_SMC) or the last. */
  private flush(v: VcpuChannel): void {
    while (v.outbox.length > 0 && !this.ending) {
      const o = v.outbox.shift()!;
      this.send(v, o.reply);
      if (o.reply.type === RSP.PHYS_SMC) {
        v.awaiting = o;
        return;
      }
    }
  }

  private send(v: VcpuChannel, reply: Reply): void {
    if (v.rspFd === null) return;
    try {
      writeSync(v.rspFd, encodeReply(reply));
    } catch (e) {
      this.fail(`vCPU ${v.index}: cannot write its channel: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  // PowerPort: virtual PSCI decided; the shim makes it physically so (R9).

  cpuOn(target: number, entry: bigint, context: bigint): void {
    const caller = this.vcpus[this.current];
    const t = this.vcpus[target];
    if (!caller || !t) throw new Error(`CPU_ON for vCPU ${target} outside a call`);
    t.pendingStart = { entry, context };
    let tries = 0;
    caller.outbox.push({
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

  systemOff(vcpu: number, reason: string): void {
    this.vcpus[vcpu]!.halt = { kind: "system-off", reason };
  }

  systemReset(vcpu: number, reason: string): void {
    this.vcpus[vcpu]!.halt = { kind: "system-reset", reason };
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
    for (const v of this.vcpus) {
      v.socket?.destroy();
      if (v.rspFd !== null) closeSync(v.rspFd);
      v.rspFd = null;
    }
    this.memory.dispose();
    rmSync(this.opts.runDir, { recursive: true, force: true });
    const e = this.ending ?? { state: "failed" as const, reason: "ended" };
    this.resolveExit({ name: this.name, state: e.state, reason: e.reason, localCalls: this.localCalls });
  }

  /** The VM's run directory (its FIFOs; tests write malformed frames into them). */
  get runDir(): string {
    return this.opts.runDir;
  }

  /** The QEMU process id (tests kill it to check that other VMs survive). */
  get pid(): number | undefined {
    return this.child?.pid;
  }
}
