// The EL2 shim and the QEMU backend with the bare-metal guest: trap semantics (R10), the CPU_ON race,
// and isolation between VMs when one QEMU dies or sends garbage.
import { existsSync, readdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { emptyReport, GUEST_SECONDARY_ENTRY, parseGuestLine, writeScriptImage, type GuestReport, type ScriptStep } from "../../src/machine/qemu/baremetal.js";
import { MAILBOX } from "../../src/machine/qemu/channel.js";
import { QemuMachine } from "../../src/machine/qemu/machine.js";
import type { VmExit } from "../../src/machine/qemu/qemu-vm.js";
import { parseConfigText } from "../../src/policy/load.js";

const dir = mkdtempSync(join(tmpdir(), "smcvisor-shim-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Guest {
  readonly steps: readonly ScriptStep[];
  /** The A32 build of the guest (the VM's policy must say aarch32: true). */
  readonly aarch32?: boolean;
  readonly loop?: number;
  /** Stop the VM when its script is done (scripts that do not end in SYSTEM_OFF). */
  readonly stopWhenDone?: boolean;
}

async function boot(policy: string, guests: Record<string, Guest>, during?: (m: QemuMachine, reports: Map<string, GuestReport>, line: { vm: string; text: string }) => void) {
  const cfg = parseConfigText(policy);
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.errors));
  const images = new Map<string, { kernel: string }>();
  const reports = new Map<string, GuestReport>();
  for (const [name, g] of Object.entries(guests)) {
    const image = join(dir, `${name}-${Math.random().toString(36).slice(2)}.img`);
    writeScriptImage(image, g.steps, g.loop ?? 0, { aarch32: g.aarch32 ?? false });
    images.set(name, { kernel: image });
    reports.set(name, emptyReport());
  }
  const m = await QemuMachine.create(cfg.value, {
    images,
    console: (vm, text) => {
      const r = reports.get(vm)!;
      if (parseGuestLine(text, r) && r.done && guests[vm]!.stopWhenDone) m.vm(vm).stop("script done");
      during?.(m, reports, { vm, text });
    },
  });
  const exits = await m.run(60_000);
  return { m, reports, exits: new Map(exits.map((e): [string, VmExit] => [e.name, e])) };
}

const FIDS: { fid: bigint; args?: bigint[] }[] = [
  { fid: 0x8000_0000n },
  { fid: 0x8000_0001n, args: [0x8000_8000n] },
  { fid: 0x8000_0002n, args: [0n] },
  { fid: 0x8400_0000n },
  { fid: 0x8400_000an, args: [0xc400_0003n] },
  { fid: 0xc400_0004n, args: [0n, 0n] },
  { fid: 0x8400_0050n },
  { fid: 0xc400_0053n, args: [192n] },
  { fid: 0x8600_ff01n },
  { fid: 0x8200_0001n },
  { fid: 0xc300_1234n, args: [1n, 2n, 3n, 4n, 5n, 6n, 7n] },
];

describe.each([false, true])("trapped SMC and HVC from real EL1 code (AArch32: %s)", (aarch32) => {
  it("give identical results for the same call, and the instruction after the SMC runs exactly once", async () => {
    const steps: ScriptStep[] = FIDS.flatMap((f) =>
      (["hvc", "smc"] as const).map((conduit) => ({ vcpu: 0, conduit, regs: [f.fid, ...(f.args ?? []), ...Array.from({ length: 17 - (f.args?.length ?? 0) }, (_, i) => 0x1000n + BigInt(i))] })),
    );
    const { reports, exits } = await boot(`vms:\n  vm0:\n    vcpus: 1\n    aarch32: ${aarch32}\n`, { vm0: { steps, stopWhenDone: true, aarch32 } });
    expect(exits.get("vm0")!.state).toBe("stopped");
    const r = reports.get("vm0")!;
    FIDS.forEach((f, i) => {
      const hvc = r.steps.get(2 * i)!, smc = r.steps.get(2 * i + 1)!;
      // TRNG data is random: compare everything but x1..x3 for it.
      const same = f.fid === 0xc400_0053n ? [0, ...Array.from({ length: 14 }, (_, k) => k + 4)] : Array.from({ length: 18 }, (_, k) => k);
      expect(same.map((k) => smc[k]), `0x${f.fid.toString(16)}`).toEqual(same.map((k) => hvc[k]));
    });
    expect(r.steps.get(18)![0]).toBe(0xffff_ffffn); // SiP call with no grant: denied, -1 as W0
    // An SMC64 ID from AArch32 is -1 by the convention (SMCCC §2.5); from AArch64 it is a call.
    if (aarch32) expect(r.steps.get(11)![0]).toBe(0xffff_ffffn);
    expect(r.afterSmc).toBe(FIDS.length);
  }, 60_000);
});

describe("CPU_ON races under multi-threaded TCG", () => {
  it("every vCPU issuing CPU_ON for the same secondary at once: one SUCCESS, the rest ALREADY_ON, one entry, for 8 rounds", async () => {
    const on = (vcpu: number, target: number, ctx: number): ScriptStep => ({ vcpu, conduit: "hvc", regs: [0xc400_0003n, BigInt(target), GUEST_SECONDARY_ENTRY, BigInt(ctx)] });
    const steps: ScriptStep[] = [on(0, 1, 1), on(0, 2, 2)];
    const rounds = 8;
    for (let r = 0; r < rounds; r++) {
      steps.push({ ...on(0, 3, 100 + r), group: 3 }, on(1, 3, 100 + r), on(2, 3, 100 + r));
      steps.push({ vcpu: 3, conduit: "hvc", regs: [0x8400_0002n], halts: true });
    }
    steps.push({ vcpu: 0, conduit: "hvc", regs: [0xc400_0004n, 3n, 0n] });
    const { reports, exits } = await boot("vms:\n  vm0:\n    vcpus: 4\n", { vm0: { steps, stopWhenDone: true } });
    expect(exits.get("vm0")!.state).toBe("stopped");
    const r = reports.get("vm0")!;
    for (let round = 0; round < rounds; round++) {
      const base = 2 + round * 4;
      const rets = [0, 1, 2].map((k) => Number(BigInt.asIntN(64, r.steps.get(base + k)![0]!)));
      expect(rets.filter((x) => x === 0), `round ${round}: ${rets}`).toHaveLength(1);
      expect(rets.filter((x) => x !== 0), `round ${round}: ${rets}`).toEqual([-4, -4]);
      expect(r.halts.has(base + 3)).toBe(true);
    }
    const entries3 = r.entries.filter((e) => e.cpu === 3);
    expect(entries3.map((e) => e.x0)).toEqual(Array.from({ length: rounds }, (_, i) => BigInt(100 + i)));
    expect(r.steps.get(steps.length - 1)![0]).toBe(1n); // AFFINITY_INFO: OFF after the last CPU_OFF
  }, 60_000);
});

describe("a reset from the host (the control API's), of a VM that makes no call", () => {
  it("resets the machine at once, over QMP: the next boot brings up its secondary again, and a reset of an ended VM is refused", async () => {
    const on: ScriptStep = { vcpu: 0, conduit: "hvc", regs: [0xc400_0003n, 1n, GUEST_SECONDARY_ENTRY, 7n] };
    const steps: ScriptStep[] = [{ vcpu: 0, conduit: "hvc", regs: [0x8400_0000n] }, on, { vcpu: 1, conduit: "smc", regs: [0x8400_0000n] }];
    const resets: Promise<unknown>[] = [];
    let dones = 0, lines = 0, quietLines = -1, qmpSocket = false, runRootMode = 0;
    const { m, reports, exits } = await boot("vms:\n  vm0:\n    vcpus: 2\n", { vm0: { steps } }, (mm, _r, line) => {
      lines++;
      if (!line.text.startsWith("SMCV-DONE")) return;
      if (++dones === 2) return mm.vm("vm0").stop("second boot done");
      // The script is done: the guest now spins without a call to the hypervisor, which a reset at its
      // next call would wait for forever.
      const at = lines;
      // QMP controls all of QEMU: its socket is in the VM's run directory, in a directory only we can enter.
      const runDir = mm.vm("vm0").runDir;
      qmpSocket = existsSync(join(runDir, "qmp.sock"));
      runRootMode = statSync(dirname(runDir)).mode & 0o777;
      resets.push(
        new Promise((r) => setTimeout(r, 300)).then(() => {
          quietLines = lines - at;
          return mm.vm("vm0").reset();
        }),
      );
    });
    expect(quietLines).toBe(0);
    expect([qmpSocket, runRootMode.toString(8)]).toEqual([true, "700"]);
    expect(await Promise.all(resets)).toEqual([{ ok: true }]);
    expect(exits.get("vm0")).toMatchObject({ state: "stopped", boots: 2 });
    const r = reports.get("vm0")!;
    expect(r.boots).toBe(2);
    expect(r.errors).toEqual([]);
    // CPU_ON succeeded on both boots: the reset left no secondary marked on, and each entry got its context.
    expect(r.entries).toEqual([{ cpu: 1, x0: 7n }, { cpu: 1, x0: 7n }]);
    expect(r.steps.get(1)![0]).toBe(0n);
    expect(r.steps.get(2)![0]).toBe(0x10001n);
    expect(await m.vm("vm0").reset()).toEqual({ ok: false, error: "vm0 has ended" });
  }, 60_000);
});

describe("one VM's failure ends that VM only", () => {
  const TWO_VMS = "vms:\n  victim:\n    vcpus: 1\n  survivor:\n    vcpus: 1\n";
  // The survivor makes many calls (each a console line), then powers off through PSCI.
  const survivor: Guest = { steps: [...Array.from({ length: 400 }, () => ({ vcpu: 0, conduit: "hvc" as const, regs: [0x8400_0000n] })), { vcpu: 0, conduit: "hvc", regs: [0x8400_0008n], halts: true }] };
  const victim: Guest = { steps: [{ vcpu: 0, conduit: "hvc", regs: [0x8000_0000n] }], loop: 1_000_000_000 };

  it("killing one VM's QEMU leaves the other running to a clean power-off, and removes the victim's sockets and RAM file", async () => {
    let runDir = "";
    let killed = false;
    const { m, exits } = await boot(TWO_VMS, { victim, survivor }, (mm, _r, line) => {
      if (!killed && line.vm === "survivor" && line.text.startsWith("SMCV-STEP 5 ")) {
        killed = true;
        runDir = mm.vm("victim").runDir;
        expect(existsSync(join(runDir, "doorbell0.sock"))).toBe(true);
        process.kill(mm.vm("victim").pid!, "SIGKILL");
      }
    });
    expect(killed).toBe(true);
    expect(exits.get("victim")).toMatchObject({ state: "failed", reason: expect.stringContaining("killed by SIGKILL") });
    expect(exits.get("survivor")).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)" });
    expect(existsSync(runDir)).toBe(false);
    expect(readdirSync("/dev/shm").filter((f) => f.startsWith(`smcvisor-${process.pid}-`))).toEqual([]);
    // The victim made calls before it died; the hypervisor kept serving the survivor after.
    expect(m.hypervisor.router.trace.events().filter((e) => e.vm === "survivor" && e.fid === 0x8400_0000)).toHaveLength(400);
  }, 60_000);

  it("a malformed request in one VM's mailbox ends that VM with the reason; the other powers off cleanly", async () => {
    let sent = false;
    const { exits } = await boot(TWO_VMS, { victim, survivor }, (mm, _r, line) => {
      if (!sent && line.vm === "survivor" && line.text.startsWith("SMCV-STEP 5 ")) {
        sent = true;
        // What a broken or subverted shim could post: garbage, announced as the next request.
        const mb = mm.vm("victim").mailbox(0);
        const words = new Int32Array(mb.buffer, mb.byteOffset, 4);
        mb.fill(0x41, MAILBOX.request, MAILBOX.request + 224);
        Atomics.add(words, MAILBOX.reqSeq / 4, 1);
        mm.vm("victim").doorbellRang(0, 1);
      }
    });
    expect(sent).toBe(true);
    expect(exits.get("victim")).toMatchObject({ state: "failed", reason: expect.stringContaining("protocol error") });
    expect(exits.get("survivor")!.state).toBe("off");
  }, 60_000);

  it("a doorbell storm ends that VM with the reason before it can keep the hypervisor busy; the other powers off cleanly", async () => {
    let stormed = false;
    const { exits } = await boot(TWO_VMS, { victim, survivor }, (mm, _r, line) => {
      if (!stormed && line.vm === "survivor" && line.text.startsWith("SMCV-STEP 5 ")) {
        stormed = true;
        // As the doorbell socket delivers them: rings that announce no request.
        for (let i = 0; i < 200 && !mm.vm("victim").ended; i++) mm.vm("victim").doorbellRang(0, 4096);
      }
    });
    expect(stormed).toBe(true);
    expect(exits.get("victim")).toMatchObject({ state: "failed", reason: expect.stringContaining("doorbell storm") });
    expect(exits.get("survivor")!.state).toBe("off");
  }, 60_000);
});

describe("the shim's fast path (SMCCC_ARCH_WORKAROUND_1/2/3)", () => {
  const WA1 = 0x8000_8000n, WA2 = 0x8000_7fffn, WA3 = 0x8000_3fffn;
  const steps: ScriptStep[] = [
    ...[WA1, WA2, WA3].flatMap((fid) => (["hvc", "smc"] as const).map((conduit) => ({ vcpu: 0, conduit, regs: [fid, 0n, 0x1111n, 0x2222n, 0x3333n, 0x4444n] }))),
    { vcpu: 0, conduit: "smc", regs: [WA2, 1n, 7n, 7n, 7n] }, // SSBD back on
    { vcpu: 0, conduit: "smc", regs: [0x8400_0000n] }, // a routed call carries the shim's state to the hypervisor
  ];
  const policy = (grants = "") => `platform: { cpu: cortex-a57 }\nvms:\n  vm0:\n    vcpus: 1\n${grants}`;

  it("answers them in the shim exactly as the router does, runs the instruction after an SMC once, and reports the WORKAROUND_2 state", async () => {
    const fast = await boot(policy(), { vm0: { steps, stopWhenDone: true } });
    const slow = await (async () => {
      const cfg = parseConfigText(policy());
      if (!cfg.ok) throw new Error("config");
      const image = join(dir, "slow.img");
      writeScriptImage(image, steps);
      const report = emptyReport();
      const m = await QemuMachine.create(cfg.value, { images: new Map([["vm0", { kernel: image }]]), fastTable: [], console: (_vm, l) => void (parseGuestLine(l, report) && report.done && m.vm("vm0").stop("done")) });
      await m.run(60_000);
      return { m, report };
    })();
    const f = fast.reports.get("vm0")!, s = slow.report;
    for (let i = 0; i < steps.length; i++) expect(f.steps.get(i), `step ${i}`).toEqual(s.steps.get(i));
    expect(f.steps.get(0)!.slice(0, 6)).toEqual([0n, 0n, 0n, 0n, 0x3333n, 0x4444n]);
    expect(f.afterSmc).toBe(s.afterSmc);
    expect(f.afterSmc).toBe(5);
    // Seven workaround calls answered in the shim, none traced one by one; the router saw them all in the slow run.
    expect(fast.exits.get("vm0")!.localCalls).toBe(7n);
    const traced = (m: QemuMachine) => m.hypervisor.router.trace.events().filter((e) => e.fid >>> 16 === 0x8000 && e.fid !== 0x8000_0000).length;
    expect(traced(fast.m)).toBe(0);
    expect(traced(slow.m)).toBe(7);
  }, 60_000);

  it("reports the vCPU's WORKAROUND_2 state to the Arm Architecture service", async () => {
    const off: ScriptStep[] = [{ vcpu: 0, conduit: "smc", regs: [WA2, 0n] }, { vcpu: 0, conduit: "hvc", regs: [0x8400_0000n] }];
    let arch: { ssbdEnabled: Uint8Array } | null = null;
    let atSecondCall = -1;
    await boot(policy(), { vm0: { steps: off, stopWhenDone: true } }, (m, _r, line) => {
      arch ??= m.hypervisor.domain("vm0").routed.services.get("arch") as unknown as { ssbdEnabled: Uint8Array };
      // The firmware default is on (1); the guest turned it off in the shim, and the next routed call told us.
      if (line.text.startsWith("SMCV-STEP 1 ")) atSecondCall = arch.ssbdEnabled[0]!;
    });
    expect(atSecondCall).toBe(0);
  }, 60_000);

  it("leaves a call the policy decides itself to the router (a grant denies WORKAROUND_1)", async () => {
    const calls = [WA1, WA3, 0x8400_0000n].map((fid): ScriptStep => ({ vcpu: 0, conduit: "hvc", regs: [fid] }));
    const { m, reports, exits } = await boot(policy("    grants: [{ id: 0x80008000, action: deny }]\n"), { vm0: { steps: calls, stopWhenDone: true } });
    expect(reports.get("vm0")!.steps.get(0)![0]).toBe(0xffff_ffffn);
    expect(reports.get("vm0")!.steps.get(1)![0]).toBe(0n);
    expect(exits.get("vm0")!.localCalls).toBe(1n);
    expect(m.hypervisor.router.trace.events().filter((e) => e.fid === 0x8000_8000).map((e) => e.action)).toEqual(["deny"]);
  }, 60_000);
});

describe("a non-zero immediate from real EL1 code (SMCCC §2.9)", () => {
  const steps = (fid: bigint): ScriptStep[] => [
    { vcpu: 0, conduit: "hvc", imm: 1, regs: [fid, 5n] },
    { vcpu: 0, conduit: "smc", imm: 1, regs: [fid, 5n] },
    { vcpu: 0, conduit: "hvc", regs: [fid] },
  ];

  it("by default is answered like KVM: x0 = ~0, the instruction skipped, nothing injected", async () => {
    for (const aarch32 of [false, true]) {
      const { reports } = await boot(`vms:\n  vm0:\n    vcpus: 1\n    aarch32: ${aarch32}\n`, { vm0: { steps: steps(0x8400_0000n), stopWhenDone: true, aarch32 } });
      const r = reports.get("vm0")!;
      const ones = aarch32 ? 0xffff_ffffn : 0xffff_ffff_ffff_ffffn;
      // A trapped AArch32 SMC reports no immediate (ESR EC 0x13 has CV/COND only), so SMC #1 from A32 is a call.
      expect([r.steps.get(0)![0], r.steps.get(1)![0], r.steps.get(2)![0]], `AArch32 ${aarch32}`).toEqual([ones, aarch32 ? 0x1_0001n : ones, 0x1_0001n]);
      expect(r.undefs.size).toBe(0);
    }
  }, 60_000);

  it("with immediate: undef, is answered like Xen: an UNDEFINED exception at the instruction, registers untouched", async () => {
    const { m, reports } = await boot("vms:\n  vm0:\n    vcpus: 1\n    immediate: undef\n", { vm0: { steps: steps(0x8400_0000n), stopWhenDone: true } });
    const r = reports.get("vm0")!;
    // The guest's EL1 vector saw EC 0 (unknown reason), IL set, and skipped the instruction itself.
    expect([...r.undefs]).toEqual([[0, 0x200_0000n], [1, 0x200_0000n]]);
    expect(r.steps.get(0)!.slice(0, 2)).toEqual([0x8400_0000n, 5n]);
    expect(r.steps.get(1)!.slice(0, 2)).toEqual([0x8400_0000n, 5n]);
    expect(r.steps.get(2)![0]).toBe(0x1_0001n);
    expect(m.hypervisor.router.trace.events().filter((e) => e.vm === "vm0").map((e) => e.outcome)).toEqual(["undef", "undef", "return"]);
  }, 60_000);
});
