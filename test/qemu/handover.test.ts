// The hyp-stub handover under QEMU (issue 13, part 2; docs/handover.md): examples/handover.yaml, one boot of
// each VM. `late` (two vCPUs) boots Debian's kernel at EL2, which starts its second CPU itself through
// QEMU's PSCI; it loads smcv_handover.ko, which hands EL2 to smcvisor on both CPUs, and then tries to get
// EL2 back and to read the shim's region from each CPU, and takes CPU 1 offline and back through smcvisor's
// PSCI; `stays` never hands over.
import { beforeAll, describe, expect, it } from "vitest";
import { runScenario, type RunReport, type VmReport } from "../../src/cli/run.js";
import { loadScenario } from "../../src/machine/qemu/scenario.js";
import type { TraceEvent } from "../../src/trace/ring.js";

const vm = (r: RunReport, name: string): VmReport => r.vms.find((v) => v.name === name)!;
const calls = (r: RunReport, name: string) => r.events.filter((e: TraceEvent) => e.vm === name && e.conduit !== "hypervisor");
const PSCI_VERSION = 0x8400_0000, TRNG_VERSION = 0x8400_0050, SYSTEM_OFF = 0x8400_0008, CPU_OFF = 0x8400_0002, CPU_ON64 = 0xc400_0003, AFFINITY_INFO64 = 0xc400_0004;
/** What the module prints for one of the scenario's stub calls: x0 and x1 of the call, x0 of the answer. */
const hvcLine = (lines: readonly string[], x0: string, x1: string) => lines.find((l) => l.includes(`smcv_handover: hvc x0=${x0} x1=${x1}:`) && !l.includes("SMCV-HO dmesg"));

describe("examples/handover.yaml: a kernel booted at EL2 hands EL2 to smcvisor", () => {
  let report: RunReport;
  const logs: string[] = [];

  beforeAll(async () => {
    const s = loadScenario("examples/handover.yaml");
    if (!s.ok) throw new Error(JSON.stringify(s.errors));
    report = await runScenario(s.scenario, { log: (l) => logs.push(l) });
  }, 240_000);

  it("runs both VMs to a clean power-off, and every expectation of the scenario holds", () => {
    expect(report.vms.flatMap((v) => v.failures.map((f) => `${v.name}: ${f}`))).toEqual([]);
    expect(vm(report, "late").exit).toMatchObject({ state: "off", reason: "powered off (PSCI_SYSTEM_OFF)" });
    // The kernel that kept EL2 powered off through QEMU's PSCI itself: smcvisor saw nothing.
    // It rebooted once through QEMU's PSCI too (boots: 2): smcvisor counts that boot from the shim's HELLO.
    expect(vm(report, "stays").exit).toMatchObject({ state: "off", reason: "powered off before the handover (QEMU's PSCI, not smcvisor's)", boots: 2 });
    expect(vm(report, "stays").console.filter((l) => l.includes("SMCV-GUEST up")).length).toBe(2);
    expect(vm(report, "late").exit.boots).toBe(1);
    // Both CPUs of `late` handed over; `stays` kept EL2 on its one CPU.
    expect(vm(report, "late").exit).toMatchObject({ handedOver: [0, 1], keptEl2: [] });
    // `stays` never handed over, so smcvisor never asked which CPUs ran: nothing is known to keep EL2 either.
    expect(vm(report, "stays").exit).toMatchObject({ handedOver: [], keptEl2: [] });
  });

  it("the kernel started its second CPU itself (QEMU's PSCI, unseen), and both CPUs handed over at once: each CPU's first call in the trace is its handover", () => {
    const c = vm(report, "late").console;
    expect(c.some((l) => l.includes("SMCV-HO cpus online 0-1"))).toBe(true);
    for (const cpu of [0, 1]) {
      expect(c.some((l) => l.includes(`smcv_handover: HVC_SET_VECTORS 0x40001800: stub=0x0 smcvisor=0x0 (CPU ${cpu})`)), `CPU ${cpu}`).toBe(true);
      const first = calls(report, "late").find((e) => e.vcpu === cpu)!;
      expect([first.fid, first.conduit, first.action, first.rule.split(":").slice(0, 2).join(":"), first.x0], `vCPU ${cpu}`).toEqual([0, "hvc", "emulate", "hyp-stub:handover", 0n]);
      expect(logs.filter((l) => l.includes(`late: vCPU ${cpu}: the kernel handed EL2 over`)), `vCPU ${cpu}`).toEqual([expect.stringContaining("(its HVC x0=0x0 x1=0x40001800)")]);
    }
    // The two handovers are the first two calls of the VM: nothing of either CPU was traced before both.
    expect(calls(report, "late").slice(0, 2).map((e) => e.rule.split(":").slice(0, 2).join(":"))).toEqual(["hyp-stub:handover", "hyp-stub:handover"]);
    // smcvisor asked QEMU's PSCI which CPUs run and saw every running one hand over: contained.
    const contained = logs.filter((l) => l.includes("every CPU the kernel runs has handed EL2 over"));
    expect(contained).toEqual([expect.stringMatching(/^late: every CPU the kernel runs has handed EL2 over \(vCPU 0, 1 of 2, [\d.]+ ms after the first\); no CPU of the VM runs at EL2 but the shim$/)]);
    // A figure, not a limit: how long the second CPU's handover and the machine's answers took after the first.
    console.log(`handover: both CPUs handed over ${/, ([\d.]+) ms after the first/.exec(contained[0]!)![1]} ms after the first`);
    expect(logs.some((l) => l.includes("kept EL2"))).toBe(false);
  });

  it("after the handover the SMCs of both CPUs are smcvisor's: the module's PSCI_VERSION on each, the scenario's on CPU 1", () => {
    const c = vm(report, "late").console;
    for (const cpu of [0, 1]) {
      expect(c.some((l) => l.includes(`smcv_handover: after the handover: PSCI_VERSION=0x10000 (CPU ${cpu})`)), `CPU ${cpu}`).toBe(true);
      const versions = calls(report, "late").filter((e) => e.vcpu === cpu && e.conduit === "smc" && e.fid >>> 0 === PSCI_VERSION);
      expect(versions.length, `vCPU ${cpu}`).toBeGreaterThan(0);
      expect(versions.every((e) => e.action === "emulate" && e.x0 === 0x1_0000n), `vCPU ${cpu}`).toBe(true);
    }
    // CPU 1 (taskset -c 1): the module's call, the scenario's before the hotplug and the one after it.
    expect(calls(report, "late").filter((e) => e.vcpu === 1 && e.fid >>> 0 === PSCI_VERSION).length).toBeGreaterThanOrEqual(3);
  });

  it("CPU 1 goes offline and comes back through smcvisor's PSCI, which knew it ran (it learnt so at its handover)", () => {
    const c = vm(report, "late").console;
    expect(c.some((l) => l.includes("SMCV-HO cpu1 offline: 0"))).toBe(true);
    expect(c.some((l) => l.includes("SMCV-HO cpu1 online again: 0-1"))).toBe(true);
    const mine = calls(report, "late");
    // CPU_OFF from CPU 1 itself (smcvisor believed it ON: no DENIED), then CPU_ON for it from CPU 0: SUCCESS,
    // not ALREADY_ON, and no INVALID_PARAMETERS.
    const off = mine.findIndex((e) => e.vcpu === 1 && e.fid >>> 0 === CPU_OFF);
    expect(off).toBeGreaterThan(0);
    expect(mine[off]!.action).toBe("emulate");
    const on = mine.findIndex((e, i) => i > off && e.fid >>> 0 === CPU_ON64);
    expect(on).toBeGreaterThan(off);
    expect([mine[on]!.vcpu, mine[on]!.action, mine[on]!.x0]).toEqual([0, "emulate", 0n]);
    // Linux waited for the CPU to be OFF (AFFINITY_INFO, answered by smcvisor: OFF = 1) before it was started again.
    const polls = mine.slice(off, on).filter((e) => e.fid >>> 0 === AFFINITY_INFO64);
    expect(polls.length).toBeGreaterThan(0);
    expect(polls.at(-1)!.x0).toBe(1n);
    // After it came back, CPU 1's calls are still smcvisor's: it entered the kernel at EL1 through the shim.
    expect(mine.slice(on).some((e) => e.vcpu === 1 && e.fid >>> 0 === PSCI_VERSION)).toBe(true);
  });

  it("the kernel ran at EL2 first: KVM off by the command line smcvisor gave it, its stub kept", () => {
    for (const name of ["late", "stays"]) {
      const c = vm(report, name).console;
      expect(c.some((l) => l.includes("Kernel command line:") && l.includes("kvm-arm.mode=none")), name).toBe(true);
      expect(c.some((l) => l.includes("kvm [1]: KVM disabled from command line")), name).toBe(true);
    }
  });

  it("before the handover its SMCs went to QEMU's PSCI (1.1) and none is in the trace; after it, the same call is smcvisor's (1.0), traced", () => {
    const c = vm(report, "late").console;
    expect(c.some((l) => l.includes("psci: PSCIv1.1 detected in firmware."))).toBe(true);
    expect(c.some((l) => l.includes("smcv_handover: before the handover: PSCI_VERSION=0x10001"))).toBe(true);
    // The boot's PSCI_VERSION, PSCI_FEATURES, SMCCC_VERSION and ARCH_FEATURES probes, its CPU_ON of CPU 1 and
    // the module's first PSCI_VERSION are not there: the trace starts with the handovers.
    const smcs = calls(report, "late").filter((e) => e.conduit === "smc");
    const count = (fid: number) => smcs.filter((e) => e.fid >>> 0 === fid).length;
    // PSCI_VERSION: the module's on each CPU, its 200 timed ones, the scenario's three; then TRNG_VERSION,
    // the hotplug's CPU_OFF and CPU_ON (and Linux's AFFINITY_INFO polls between them), SYSTEM_OFF last.
    expect(count(PSCI_VERSION)).toBe(205);
    expect(smcs.filter((e) => e.fid >>> 0 === PSCI_VERSION).every((e) => e.action === "emulate" && e.x0 === 0x1_0000n)).toBe(true);
    expect([count(TRNG_VERSION), count(CPU_OFF), count(CPU_ON64), count(SYSTEM_OFF)]).toEqual([1, 1, 1, 1]);
    expect(smcs.filter((e) => ![PSCI_VERSION, TRNG_VERSION, CPU_OFF, CPU_ON64, AFFINITY_INFO64, SYSTEM_OFF].includes(e.fid >>> 0))).toEqual([]);
    expect(smcs.at(-1)!.fid >>> 0).toBe(SYSTEM_OFF);
    expect(calls(report, "stays")).toEqual([]);
  });

  it("after the handover its SMCs follow the VM's policy: TRNG_VERSION denied by its grant", () => {
    expect(vm(report, "late").console.some((l) => l.includes("smcv_handover: smc x0=0x84000050 x1=0x0: x0=0xffffffff"))).toBe(true);
  });

  it("every stub call that would give EL2 back is refused with HVC_STUB_ERR; the harmless ones are answered as the stub answers them", () => {
    const c = vm(report, "late").console;
    const answer = (x0: string, x1: string) => /: x0=(0x[0-9a-f]+)/.exec(hvcLine(c, x0, x1) ?? "")?.[1];
    expect(answer("0x3", "0x0"), "HVC_FINALISE_EL2").toBe("0xbadca11");
    expect(answer("0x0", "0x40100000"), "HVC_SET_VECTORS into the shim's region").toBe("0xbadca11");
    expect(answer("0x1", "0x40100000"), "HVC_SOFT_RESTART into the shim's region").toBe("0xbadca11");
    expect(answer("0x1", "0x40200002"), "HVC_SOFT_RESTART to a misaligned address").toBe("0xbadca11");
    expect(answer("0x7", "0x0"), "an unknown stub call").toBe("0xbadca11");
    expect(answer("0x0", "0x40001800"), "HVC_SET_VECTORS naming the shim's vectors").toBe("0x0");
    expect(answer("0x2", "0x0"), "HVC_RESET_VECTORS").toBe("0x0");
    // The VM kept running after each: it reached its power-off (above) with the stub calls logged and traced.
    // Seven here, and the soft restart at the end (its own test below).
    expect(logs.filter((l) => l.includes("hyp stub:")).length).toBe(8);
    const stub = calls(report, "late").filter((e) => e.conduit === "hvc" && !e.rule.startsWith("hyp-stub:handover")).slice(0, -1);
    expect(stub.map((e) => [e.fid, e.action, e.x0])).toEqual([
      [3, "deny", 0xbadca11n],
      [0, "deny", 0xbadca11n],
      [0, "emulate", 0n],
      [2, "emulate", 0n],
      [7, "deny", 0xbadca11n],
      [1, "deny", 0xbadca11n],
      [1, "deny", 0xbadca11n],
    ]);
    expect(stub.map((e) => e.rule.replace(/^(hyp-stub:\w+).*$/, "$1"))).toEqual(["hyp-stub:HVC_FINALISE_EL2", "hyp-stub:HVC_SET_VECTORS", "hyp-stub:HVC_SET_VECTORS", "hyp-stub:HVC_RESET_VECTORS", "hyp-stub:unknown", "hyp-stub:HVC_SOFT_RESTART", "hyp-stub:HVC_SOFT_RESTART"]);
  });

  it("stage 2 covers both CPUs from the handover on: the shim's host page read before is out of reach of each after, and of CPU 1 after its hotplug", () => {
    const c = vm(report, "late").console;
    expect(c.some((l) => l.includes("SMCV-HO host-page-before 0x48434D53"))).toBe(true);
    expect(c.filter((l) => l.includes("SMCV-RUN Bus error")).length).toBe(3);
    for (const read of ["host-page-after", "host-page-after-cpu1", "host-page-after-hotplug"]) expect(c.some((l) => new RegExp(`SMCV-HO ${read}\\s*$`).test(l)), read).toBe(true);
    expect(vm(report, "late").exit.aborts).toBe(3n);
    // Each CPU's refusals are reported with its next request: vCPU 0 once, vCPU 1 twice (before and after its hotplug).
    for (const [cpu, n] of [[0, 1], [1, 2]] as const) {
      expect(logs.filter((l) => l.includes(`late: vCPU ${cpu}: 1 access(es) outside the VM's memory map refused (last at IPA 0x40100000)`)).length, `vCPU ${cpu}`).toBe(n);
    }
  });

  it("HVC_SOFT_RESTART (kexec's way out) enters its entry at EL1 with the MMU off, still behind smcvisor: the code there powers off through smcvisor", () => {
    const c = vm(report, "late").console;
    const at = /smcv_handover: HVC_SOFT_RESTART to (0x[0-9a-f]+), which makes SMC 0x84000008/.exec(c.find((l) => l.includes("HVC_SOFT_RESTART to")) ?? "");
    expect(at).not.toBeNull();
    const entry = BigInt(at![1]!);
    expect(entry >= 0x4020_0000n && entry < 0x5020_0000n).toBe(true);
    // The kernel never ran again: no return from the HVC, no init power-off.
    expect(c.some((l) => l.includes("HVC_SOFT_RESTART returned") || l.includes("SMCV-GUEST poweroff"))).toBe(false);
    // The CPU that wrote soft_restart: its last two calls (the other CPU was idle in the kernel meanwhile).
    const cpu = calls(report, "late").at(-1)!.vcpu;
    const last = calls(report, "late").filter((e) => e.vcpu === cpu).slice(-2);
    expect(last.map((e) => [e.fid >>> 0, e.conduit, e.action])).toEqual([
      [1, "hvc", "emulate"],
      [SYSTEM_OFF, "smc", "emulate"],
    ]);
    expect(last[0]!.rule).toContain("hyp-stub:HVC_SOFT_RESTART");
  });

  it("measures what a call costs before the handover (QEMU's PSCI) and after it (smcvisor), in the same run", () => {
    const c = vm(report, "late").console;
    const cost = (when: string) => Number(/smcv_handover: \w+ the handover: (\d+) ns per PSCI_VERSION \(200 calls\)/.exec(c.find((l) => l.includes(`${when} the handover:`) && l.includes("ns per")) ?? "")?.[1]);
    const before = cost("before"), after = cost("after");
    expect(before).toBeGreaterThan(0);
    expect(after).toBeGreaterThan(0);
    // A figure, not a limit (bench/ rules): how many times dearer a call through smcvisor is than QEMU's own PSCI.
    console.log(`handover: PSCI_VERSION ${before} ns before the handover, ${after} ns after (x${(after / before).toFixed(1)})`);
  });
});
