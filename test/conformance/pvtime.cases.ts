/** PV time conformance cases (DEN0057A): both calls are SMC64, so AArch64 callers only. */
import { ARCH_FUNCTIONS } from "../../src/smccc/functions/arch.js";
import { PV_TIME_FUNCTIONS as PV } from "../../src/smccc/functions/hypervisor.js";
import { PSCI_FUNCTIONS as F } from "../../src/smccc/functions/psci.js";
import { SECONDARY_ENTRY, type Case, type Params } from "./case.js";

const BASE = 0x4ff0_0000n;

export function pvtimeCases(p: Params): Case[] {
  if (p.aarch32) return [];
  const vm = { vcpus: 2, services: { psci: { version: p.psci }, pvtime: { base: `0x${BASE.toString(16)}` } } };
  return [
    {
      name: "DEN0057A: discovery through SMCCC_ARCH_FEATURES(PV_TIME_FEATURES) then PV_TIME_FEATURES(PV_TIME_ST)",
      vm,
      steps: [
        { vcpu: 0, fid: ARCH_FUNCTIONS.SMCCC_ARCH_FEATURES.smc32, args: [PV.PV_TIME_FEATURES.smc64], ret: 0 },
        { vcpu: 0, fid: PV.PV_TIME_FEATURES.smc64, args: [PV.PV_TIME_ST.smc64], ret: 0 },
        { vcpu: 0, fid: PV.PV_TIME_FEATURES.smc64, args: [PV.PV_TIME_FEATURES.smc64], ret: 0 },
        { vcpu: 0, fid: PV.PV_TIME_FEATURES.smc64, args: [0xc500_0022], ret: -1 },
      ],
    },
    {
      name: "DEN0057A PV_TIME_ST: each vCPU's record at the configured IPA, 64 bytes apart",
      vm,
      steps: [
        { vcpu: 0, fid: PV.PV_TIME_ST.smc64, regs: { 0: BASE } },
        { vcpu: 0, fid: F.PSCI_CPU_ON.smc64, args: [1, SECONDARY_ENTRY, 0], ret: 0 },
        { vcpu: 1, fid: PV.PV_TIME_ST.smc64, regs: { 0: BASE + 64n } },
      ],
    },
    {
      name: "DEN0057A: a VM without PV time is told NOT_SUPPORTED",
      steps: [
        { vcpu: 0, fid: ARCH_FUNCTIONS.SMCCC_ARCH_FEATURES.smc32, args: [PV.PV_TIME_FEATURES.smc64], ret: -1 },
        { vcpu: 0, fid: PV.PV_TIME_ST.smc64, ret: -1 },
      ],
    },
  ];
}
