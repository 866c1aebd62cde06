/**
 * PSCI conformance cases (DEN0022 F.b), one per rule, generated for a PSCI version, a caller width and a
 * conduit. Names give the function and the rule; expectations are exactly what the specification requires
 * (and, where it leaves a choice, what smcvisor documents in src/services/psci/README.md).
 */
import { ARCH_FUNCTIONS } from "../../src/smccc/functions/arch.js";
import { PSCI_0_1_KVM_FUNCTIONS as P01, PSCI_FUNCTIONS as F } from "../../src/smccc/functions/psci.js";
import { PSCI_VERSION_VALUES } from "../../src/services/psci/versions.js";
import { nativeFid, RAM_BASE, RAM_SIZE, SECONDARY_ENTRY, type Case, type Params } from "./case.js";

const R = { SUCCESS: 0, NOT_SUPPORTED: -1, INVALID_PARAMETERS: -2, DENIED: -3, ALREADY_ON: -4, INVALID_ADDRESS: -9 } as const;
const ON = 0, OFF = 1;

export function psciCases(p: Params): Case[] {
  const v = PSCI_VERSION_VALUES[p.psci];
  const v10 = v >= 0x1_0000, v11 = v >= 0x1_0001, v13 = v >= 0x1_0003;
  const fid = (def: { smc32?: number; smc64?: number }) => nativeFid(def, p);
  const CPU_ON = fid(F.PSCI_CPU_ON), AFFINITY = fid(F.PSCI_AFFINITY_INFO), SUSPEND = fid(F.PSCI_CPU_SUSPEND);
  const OFF_FID = F.PSCI_CPU_OFF.smc32, FEATURES = F.PSCI_FEATURES.smc32;
  // PSCI 0.2 uses the original power_state format; smcvisor reports the extended one from 1.0.
  const standby = 0;
  const powerDown = v10 ? 0x4000_0000 : 0x1_0000;
  const reservedBit = 0x8000_0000;
  const notIn = (since: boolean, r: number) => (since ? r : R.NOT_SUPPORTED);
  const cases: Case[] = [];
  const add = (c: Case) => cases.push(c);

  add({ name: "DEN0022 PSCI_VERSION: returns the version the VM is configured for", steps: [{ vcpu: 0, fid: F.PSCI_VERSION.smc32, ret: v }] });

  // PSCI_FEATURES (1.0+): mandatory, reports SMCCC_VERSION, the CPU_SUSPEND format and optional functions.
  add({ name: "DEN0022 PSCI_FEATURES: SMCCC_VERSION is implemented (0)", steps: [{ vcpu: 0, fid: FEATURES, args: [ARCH_FUNCTIONS.SMCCC_VERSION.smc32], ret: notIn(v10, 0) }] });
  add({
    name: "DEN0022 PSCI_FEATURES: every mandatory function is implemented",
    steps: [F.PSCI_VERSION, F.PSCI_CPU_OFF, F.PSCI_CPU_ON, F.PSCI_AFFINITY_INFO, F.PSCI_SYSTEM_OFF, F.PSCI_SYSTEM_RESET, F.PSCI_FEATURES].map((def) => ({
      vcpu: 0, fid: FEATURES, args: [fid(def)], ret: notIn(v10, 0),
    })),
  });
  add({ name: "DEN0022 PSCI_FEATURES: CPU_SUSPEND reports the extended StateID format, no OS-initiated mode", steps: [{ vcpu: 0, fid: FEATURES, args: [SUSPEND], ret: notIn(v10, 0b10) }] });
  add({
    name: "DEN0022 PSCI_FEATURES: functions outside the version or not offered are NOT_SUPPORTED",
    steps: [
      { vcpu: 0, fid: FEATURES, args: [F.PSCI_MIGRATE.smc32], ret: R.NOT_SUPPORTED },
      { vcpu: 0, fid: FEATURES, args: [F.PSCI_STAT_COUNT.smc32], ret: R.NOT_SUPPORTED },
      { vcpu: 0, fid: FEATURES, args: [F.PSCI_SYSTEM_RESET2.smc32], ret: notIn(v11, 0) },
      { vcpu: 0, fid: FEATURES, args: [F.PSCI_MEM_PROTECT.smc32], ret: notIn(v11, 0) },
      // SYSTEM_OFF2 answers with its bitmap of types: bit 0 = HIBERNATE_OFF.
      { vcpu: 0, fid: FEATURES, args: [F.PSCI_SYSTEM_OFF2.smc32], ret: notIn(v13, 1) },
      { vcpu: 0, fid: FEATURES, args: [0x8400_001f], ret: R.NOT_SUPPORTED },
    ],
  });
  if (p.aarch32) {
    add({ name: "DEN0022 PSCI_FEATURES: SMC64 functions are not implemented for AArch32 callers", steps: [{ vcpu: 0, fid: FEATURES, args: [F.PSCI_CPU_ON.smc64], ret: R.NOT_SUPPORTED }] });
  }

  // CPU_ON / AFFINITY_INFO / CPU_OFF.
  add({
    name: "DEN0022 CPU_ON: the target is ON at once, AFFINITY_INFO reports ON, after its CPU_OFF it reports OFF",
    vm: { vcpus: 2 },
    steps: [
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: OFF },
      { vcpu: 0, fid: CPU_ON, args: [1, SECONDARY_ENTRY, 0x1234], ret: R.SUCCESS },
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: ON },
      { vcpu: 1, fid: OFF_FID, halts: true },
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: OFF },
    ],
    starts: { 1: 1 },
    entryContext: { 1: 0x1234n },
    needs: ["entry-registers"],
  });
  add({ name: "DEN0022 CPU_ON: ALREADY_ON for a running target", vm: { vcpus: 2 }, steps: [{ vcpu: 0, fid: CPU_ON, args: [0, SECONDARY_ENTRY, 0], ret: R.ALREADY_ON }] });
  add({
    name: "DEN0022 CPU_ON: an MPIDR no vCPU has, or with bits outside the affinity fields, is INVALID_PARAMETERS",
    vm: { vcpus: 2 },
    steps: [
      { vcpu: 0, fid: CPU_ON, args: [2, SECONDARY_ENTRY, 0], ret: R.INVALID_PARAMETERS },
      { vcpu: 0, fid: CPU_ON, args: [0x100, SECONDARY_ENTRY, 0], ret: R.INVALID_PARAMETERS },
      { vcpu: 0, fid: CPU_ON, args: [0x100_0001, SECONDARY_ENTRY, 0], ret: R.INVALID_PARAMETERS },
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: OFF },
    ],
  });
  add({
    name: "DEN0022 CPU_ON: an entry point outside the VM's RAM is INVALID_ADDRESS",
    vm: { vcpus: 2 },
    steps: [
      { vcpu: 0, fid: CPU_ON, args: [1, 0x1000, 0], ret: R.INVALID_ADDRESS },
      { vcpu: 0, fid: CPU_ON, args: [1, RAM_BASE + RAM_SIZE, 0], ret: R.INVALID_ADDRESS },
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: OFF },
    ],
  });
  if (!p.aarch32) {
    add({
      name: "DEN0022 CPU_ON: the AArch32 Thumb bit in an AArch64 VM's entry point is INVALID_ADDRESS",
      vm: { vcpus: 2 },
      steps: [{ vcpu: 0, fid: CPU_ON, args: [1, SECONDARY_ENTRY | 1n, 0], ret: R.INVALID_ADDRESS }],
    });
    add({
      name: "SMCCC CPU_ON SMC32 from AArch64: the callee reads W registers only",
      vm: { vcpus: 2 },
      steps: [{ vcpu: 0, fid: F.PSCI_CPU_ON.smc32, args: [0xffff_ffff_0000_0001n, SECONDARY_ENTRY | 0xffff_ffff_0000_0000n, 7], ret: R.SUCCESS }],
      starts: { 1: 1 },
    });
  }
  add({
    name: "DEN0022 CPU_ON: three vCPUs racing CPU_ON for a fourth: one SUCCESS, the others ALREADY_ON",
    vm: { vcpus: 4 },
    steps: [
      { vcpu: 0, fid: CPU_ON, args: [1, SECONDARY_ENTRY, 1], ret: R.SUCCESS },
      { vcpu: 0, fid: CPU_ON, args: [2, SECONDARY_ENTRY, 2], ret: R.SUCCESS },
      { vcpu: 0, fid: CPU_ON, args: [3, SECONDARY_ENTRY, 3], race: "cpu3" },
      { vcpu: 1, fid: CPU_ON, args: [3, SECONDARY_ENTRY, 3], race: "cpu3" },
      { vcpu: 2, fid: CPU_ON, args: [3, SECONDARY_ENTRY, 3], race: "cpu3" },
      { vcpu: 0, fid: AFFINITY, args: [3, 0], ret: ON },
    ],
    races: { cpu3: { winner: R.SUCCESS, others: R.ALREADY_ON } },
    starts: { 1: 1, 2: 1, 3: 1 },
  });

  add({
    name: "DEN0022 AFFINITY_INFO: every level the topology has; ON while any vCPU in the node is on",
    vm: { vcpus: 2 },
    steps: [
      { vcpu: 0, fid: AFFINITY, args: [0, 0], ret: ON },
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: OFF },
      // Level 1 ignores Aff0: vCPUs 0 and 1 share cluster 0, and vCPU 0 is on.
      { vcpu: 0, fid: AFFINITY, args: [1, 1], ret: ON },
      { vcpu: 0, fid: AFFINITY, args: [0, 2], ret: ON },
      { vcpu: 0, fid: AFFINITY, args: [0, 3], ret: ON },
      // Level 3 ignores Aff2 as well: Aff2 = 1 names the same node as Aff2 = 0.
      { vcpu: 0, fid: AFFINITY, args: [0x1_0000, 3], ret: ON },
      { vcpu: 0, fid: AFFINITY, args: [0, 4], ret: R.INVALID_PARAMETERS },
    ],
  });
  add({
    name: "DEN0022 AFFINITY_INFO: a node with no vCPU, or stray MPIDR bits, is INVALID_PARAMETERS",
    vm: { vcpus: 2 },
    steps: [
      { vcpu: 0, fid: AFFINITY, args: [2, 0], ret: R.INVALID_PARAMETERS },
      { vcpu: 0, fid: AFFINITY, args: [0x100, 1], ret: R.INVALID_PARAMETERS },
      // Level 2 still compares Aff2 (DEN0022 §5.7, KVM's psci_affinity_mask): no vCPU has Aff2 = 1.
      { vcpu: 0, fid: AFFINITY, args: [0x1_0000, 2], ret: R.INVALID_PARAMETERS },
      { vcpu: 0, fid: AFFINITY, args: [0x8000_0000, 0], ret: R.INVALID_PARAMETERS },
    ],
  });

  // CPU_SUSPEND.
  add({ name: "DEN0022 CPU_SUSPEND: a standby state returns SUCCESS", steps: [{ vcpu: 0, fid: SUSPEND, args: [standby, SECONDARY_ENTRY, 0], ret: R.SUCCESS }] });
  add({ name: "DEN0022 CPU_SUSPEND: reserved power_state bits are INVALID_PARAMETERS", steps: [{ vcpu: 0, fid: SUSPEND, args: [reservedBit, SECONDARY_ENTRY, 0], ret: R.INVALID_PARAMETERS }] });
  add({ name: "DEN0022 CPU_SUSPEND: a power-down state with an entry point outside RAM is INVALID_ADDRESS", steps: [{ vcpu: 0, fid: SUSPEND, args: [powerDown, 0x1000, 0], ret: R.INVALID_ADDRESS }] });
  add({
    name: "DEN0022 CPU_SUSPEND: a power-down state resumes at the entry point with x0 = context; the core stays ON",
    vm: { vcpus: 2 },
    needs: ["wake", "entry-registers"],
    steps: [
      { vcpu: 0, fid: CPU_ON, args: [1, SECONDARY_ENTRY, 1], ret: R.SUCCESS },
      { vcpu: 1, fid: SUSPEND, args: [powerDown, SECONDARY_ENTRY, 0xabc], halts: true },
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: ON },
      { vcpu: 1, fid: F.PSCI_VERSION.smc32, ret: v, wakeFirst: 1 },
    ],
    starts: { 1: 2 },
    entryContext: { 1: 0xabcn },
  });
  add({ name: "DEN0022 CPU_DEFAULT_SUSPEND: offered as standby, returns SUCCESS", steps: [{ vcpu: 0, fid: fid(F.PSCI_CPU_DEFAULT_SUSPEND), args: [SECONDARY_ENTRY, 0], ret: notIn(v10, R.SUCCESS) }] });

  add({
    name: "DEN0022 MIGRATE_INFO_TYPE: 2, no Trusted OS to migrate; MIGRATE and MIGRATE_INFO_UP_CPU are not offered",
    steps: [
      { vcpu: 0, fid: F.PSCI_MIGRATE_INFO_TYPE.smc32, ret: 2 },
      { vcpu: 0, fid: fid(F.PSCI_MIGRATE), args: [0], ret: R.NOT_SUPPORTED },
      { vcpu: 0, fid: fid(F.PSCI_MIGRATE_INFO_UP_CPU), ret: R.NOT_SUPPORTED },
    ],
  });

  // SYSTEM_SUSPEND (1.0+).
  add({
    name: "DEN0022 SYSTEM_SUSPEND: DENIED while another vCPU is on",
    vm: { vcpus: 2 },
    steps: [
      { vcpu: 0, fid: CPU_ON, args: [1, SECONDARY_ENTRY, 0], ret: R.SUCCESS },
      { vcpu: 0, fid: fid(F.PSCI_SYSTEM_SUSPEND), args: [SECONDARY_ENTRY, 0], ret: notIn(v10, R.DENIED) },
    ],
  });
  add({ name: "DEN0022 SYSTEM_SUSPEND: an entry point outside RAM is INVALID_ADDRESS", steps: [{ vcpu: 0, fid: fid(F.PSCI_SYSTEM_SUSPEND), args: [0x1000, 0], ret: notIn(v10, R.INVALID_ADDRESS) }] });
  if (v10) {
    add({
      name: "DEN0022 SYSTEM_SUSPEND: the last vCPU suspends the VM and resumes at the entry point",
      needs: ["wake", "entry-registers"],
      steps: [
        { vcpu: 0, fid: fid(F.PSCI_SYSTEM_SUSPEND), args: [SECONDARY_ENTRY, 0x55], halts: true },
        { vcpu: 0, fid: F.PSCI_VERSION.smc32, ret: v, wakeFirst: 0 },
      ],
      entryContext: { 0: 0x55n },
    });
  }

  // System power.
  add({ name: "DEN0022 SYSTEM_OFF: the VM powers off", needs: ["system-events"], steps: [{ vcpu: 0, fid: F.PSCI_SYSTEM_OFF.smc32, halts: true }], vmState: "off" });
  add({ name: "DEN0022 SYSTEM_RESET: the VM restarts", needs: ["system-events"], steps: [{ vcpu: 0, fid: F.PSCI_SYSTEM_RESET.smc32, halts: true }], vmState: "reset" });
  if (v11) {
    add({ name: "DEN0022 SYSTEM_RESET2: WARM_RESET restarts the VM", needs: ["system-events"], steps: [{ vcpu: 0, fid: fid(F.PSCI_SYSTEM_RESET2), args: [0, 0], halts: true }], vmState: "reset" });
  }
  add({
    name: "DEN0022 SYSTEM_RESET2: unknown architectural and vendor reset types are INVALID_PARAMETERS",
    steps: [
      { vcpu: 0, fid: fid(F.PSCI_SYSTEM_RESET2), args: [1, 0], ret: notIn(v11, R.INVALID_PARAMETERS) },
      { vcpu: 0, fid: fid(F.PSCI_SYSTEM_RESET2), args: [0x8000_0001, 0], ret: notIn(v11, R.INVALID_PARAMETERS) },
    ],
  });
  if (v13) {
    add({ name: "DEN0022 SYSTEM_OFF2: HIBERNATE_OFF powers the VM off", needs: ["system-events"], steps: [{ vcpu: 0, fid: fid(F.PSCI_SYSTEM_OFF2), args: [1, 0], halts: true }], vmState: "off" });
    add({ name: "DEN0022 SYSTEM_OFF2: type 0 is accepted as HIBERNATE_OFF (F.b)", needs: ["system-events"], steps: [{ vcpu: 0, fid: fid(F.PSCI_SYSTEM_OFF2), args: [0, 0], halts: true }], vmState: "off" });
  }
  add({
    name: "DEN0022 SYSTEM_OFF2: other types and a non-zero cookie are INVALID_PARAMETERS",
    steps: [
      { vcpu: 0, fid: fid(F.PSCI_SYSTEM_OFF2), args: [2, 0], ret: notIn(v13, R.INVALID_PARAMETERS) },
      { vcpu: 0, fid: fid(F.PSCI_SYSTEM_OFF2), args: [1, 1], ret: notIn(v13, R.INVALID_PARAMETERS) },
    ],
  });

  // MEM_PROTECT (1.1+).
  add({
    name: "DEN0022 MEM_PROTECT: returns the previous state",
    steps: [
      { vcpu: 0, fid: F.PSCI_MEM_PROTECT.smc32, args: [1], ret: notIn(v11, 0) },
      { vcpu: 0, fid: F.PSCI_MEM_PROTECT.smc32, args: [0], ret: notIn(v11, 1) },
      { vcpu: 0, fid: F.PSCI_MEM_PROTECT.smc32, args: [0], ret: notIn(v11, 0) },
    ],
  });
  add({
    name: "DEN0022 MEM_PROTECT_CHECK_RANGE: SUCCESS inside the VM's RAM, DENIED outside it or for an empty range",
    steps: [
      { vcpu: 0, fid: fid(F.PSCI_MEM_PROTECT_CHECK_RANGE), args: [RAM_BASE, 0x1000], ret: notIn(v11, R.SUCCESS) },
      { vcpu: 0, fid: fid(F.PSCI_MEM_PROTECT_CHECK_RANGE), args: [RAM_BASE + RAM_SIZE - 0x1000n, 0x2000], ret: notIn(v11, R.DENIED) },
      { vcpu: 0, fid: fid(F.PSCI_MEM_PROTECT_CHECK_RANGE), args: [RAM_BASE, 0], ret: notIn(v11, R.DENIED) },
    ],
  });

  add({ name: "DEN0022: an ID in the PSCI range that no version defines is NOT_SUPPORTED", steps: [{ vcpu: 0, fid: 0x8400_001f, ret: R.NOT_SUPPORTED }] });

  // PSCI 0.1 IDs, as KVM's device tree names them: a VM that asks for them gets them alongside its version.
  add({
    name: "DEN0022 0.1: CPU_ON, CPU_OFF and MIGRATE through the IDs the device tree names",
    vm: { vcpus: 2, services: { psci: { version: p.psci, v0_1: "kvm" } } },
    steps: [
      { vcpu: 0, fid: P01.PSCI_0_1_CPU_ON.smc32, args: [1, SECONDARY_ENTRY], ret: R.SUCCESS },
      // PSCI 0.1 has no ALREADY_ON: INVALID_PARAMETERS, as KVM and Xen answer.
      { vcpu: 0, fid: P01.PSCI_0_1_CPU_ON.smc32, args: [1, SECONDARY_ENTRY], ret: R.INVALID_PARAMETERS },
      { vcpu: 0, fid: P01.PSCI_0_1_MIGRATE.smc32, args: [1], ret: R.NOT_SUPPORTED },
      { vcpu: 1, fid: P01.PSCI_0_1_CPU_OFF.smc32, halts: true },
      { vcpu: 0, fid: AFFINITY, args: [1, 0], ret: OFF },
    ],
    starts: { 1: 1 },
  });
  return cases;
}
