import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../../machine/scripted/machine.js";
import { ARCH_FUNCTIONS as A } from "../../smccc/functions/arch.js";
import { decodeSocIdName } from "./soc-id.js";

const VERSIONS = ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6"] as const;

function vmsYaml(extra = ""): string {
  return `${extra}vms:\n${VERSIONS.map((v) => `  v${v.replace(".", "_")}: { smccc: "${v}" }`).join("\n")}\n  dom0:\n    grants:\n      - { owner: sip, action: forward }\n  domU: {}\n`;
}

const m = ScriptedMachine.fromText(vmsYaml('platform:\n  cpu: cortex-a57\n  socId: { jep106Bank: 0, jep106Id: 0x7f, soc: 0x0d07, revision: 3, name: "smcvisor test SoC" }\n'));
const vcpu = (v: string) => m.vm(`v${v.replace(".", "_")}`).vcpu(0);

describe("SMCCC_VERSION (DEN0028 §7.2)", () => {
  it.each(VERSIONS.slice(1).map((v, i) => [v, 0x1_0001 + i]))("a VM told %s reads 0x%s", (v, want) => {
    expect(vcpu(v).hvc(A.SMCCC_VERSION.smc32).w(0)).toBe(want);
  });

  it("is NOT_SUPPORTED for a VM told 1.0, which is how 1.0 is recognised", () => {
    expect(vcpu("1.0").hvc(A.SMCCC_VERSION.smc32).sw(0)).toBe(-1);
    expect(vcpu("1.0").hvc(A.SMCCC_ARCH_FEATURES.smc32, A.SMCCC_VERSION.smc32).sw(0)).toBe(-1);
  });

  it("defaults to 1.2, the highest version whose rules are all implemented", () => {
    expect(m.vm("domU").vcpu(0).hvc(A.SMCCC_VERSION.smc32).w(0)).toBe(0x1_0002);
  });
});

describe("SMCCC_ARCH_FEATURES (DEN0028 §7.3)", () => {
  const f = (v: string, fid: number) => vcpu(v).hvc(A.SMCCC_ARCH_FEATURES.smc32, fid).sw(0);

  it("is 0 for SMCCC_VERSION and SMCCC_ARCH_FEATURES from 1.1", () => {
    for (const v of VERSIONS.slice(1)) {
      expect(f(v, A.SMCCC_VERSION.smc32)).toBe(0);
      expect(f(v, A.SMCCC_ARCH_FEATURES.smc32)).toBe(0);
    }
  });

  it("reports SOC_ID from 1.2 and its SMC64 name form from 1.6", () => {
    expect(f("1.1", A.SMCCC_ARCH_SOC_ID.smc32)).toBe(-1);
    expect(f("1.2", A.SMCCC_ARCH_SOC_ID.smc32)).toBe(0);
    expect(f("1.5", A.SMCCC_ARCH_SOC_ID.smc64)).toBe(-1);
    expect(f("1.6", A.SMCCC_ARCH_SOC_ID.smc64)).toBe(0);
  });

  it("answers the workarounds from the platform profile (cortex-a57)", () => {
    expect(f("1.1", A.SMCCC_ARCH_WORKAROUND_1.smc32)).toBe(0);
    expect(f("1.1", A.SMCCC_ARCH_WORKAROUND_2.smc32)).toBe(0);
    expect(f("1.1", A.SMCCC_ARCH_WORKAROUND_3.smc32)).toBe(0);
    expect(f("1.1", A.SMCCC_ARCH_WORKAROUND_4.smc32)).toBe(-1);
  });

  it("does not offer SMCCC_ARCH_FEATURE_AVAILABILITY (an EL3 view a hypervisor cannot give honestly)", () => {
    expect(f("1.6", A.SMCCC_ARCH_FEATURE_AVAILABILITY.smc64)).toBe(-1);
  });

  it("ignores the SVE hint in the queried ID", () => {
    expect(f("1.3", A.SMCCC_VERSION.smc32 | 0x1_0000)).toBe(0);
  });

  it("answers for other owners through the VM's policy", () => {
    const g = (vm: string, fid: number) => m.vm(vm).vcpu(0).hvc(A.SMCCC_ARCH_FEATURES.smc32, fid).sw(0);
    expect(g("domU", 0x8400_0000)).toBe(0); // PSCI_VERSION, emulated
    expect(g("domU", 0xc500_0020)).toBe(-1); // PV time is off
    expect(g("dom0", 0x8200_0001)).toBe(0); // forwarded for dom0
    expect(g("domU", 0x8200_0001)).toBe(-1); // denied for domU
  });
});

describe("SMCCC_ARCH_SOC_ID (DEN0028 §7.4)", () => {
  it("type 0: JEP-106 bank in [30:24], ID code in [23:16], SoC ID in [15:0]", () => {
    expect(vcpu("1.2").hvc(A.SMCCC_ARCH_SOC_ID.smc32, 0).w(0)).toBe(0x007f_0d07);
  });

  it("type 1: the revision", () => {
    expect(vcpu("1.2").hvc(A.SMCCC_ARCH_SOC_ID.smc32, 1).w(0)).toBe(3);
  });

  it("other types, and type 2 through SMC32, are INVALID_PARAMETER", () => {
    expect(vcpu("1.6").hvc(A.SMCCC_ARCH_SOC_ID.smc32, 2).sw(0)).toBe(-3);
    expect(vcpu("1.6").hvc(A.SMCCC_ARCH_SOC_ID.smc32, 7).sw(0)).toBe(-3);
  });

  it("type 2 (SMC64, 1.6): the NUL-terminated name in x1-x17, first character in the low byte of x1", () => {
    const r = vcpu("1.6").hvc(A.SMCCC_ARCH_SOC_ID.smc64, 2);
    expect(r.x0).toBe(0n);
    expect(decodeSocIdName(r.regs)).toBe("smcvisor test SoC");
    expect(Number(r.x(1) & 0xffn)).toBe("s".charCodeAt(0));
  });

  it("is absent below 1.2 and on platforms without a SoC ID", () => {
    expect(vcpu("1.1").hvc(A.SMCCC_ARCH_SOC_ID.smc32, 0).sw(0)).toBe(-1);
    const none = ScriptedMachine.fromText("platform: { socId: false }\nvms:\n  a: {}\n");
    expect(none.vm("a").vcpu(0).hvc(A.SMCCC_ARCH_SOC_ID.smc32, 0).sw(0)).toBe(-1);
  });
});

describe("SMCCC_ARCH_WORKAROUND_1..4 (DEN0028 §7.5-7.8)", () => {
  const profile = (cpu: string, extra = "") => ScriptedMachine.fromText(`platform: { cpu: ${cpu}${extra} }\nvms:\n  a: {}\n`).vm("a").vcpu(0);
  const answers = (v: ReturnType<typeof profile>) =>
    [A.SMCCC_ARCH_WORKAROUND_1, A.SMCCC_ARCH_WORKAROUND_2, A.SMCCC_ARCH_WORKAROUND_3, A.SMCCC_ARCH_WORKAROUND_4].map((w) => v.hvc(A.SMCCC_ARCH_FEATURES.smc32, w.smc32).sw(0));

  it.each([
    ["cortex-a57", [0, 0, 0, -1]],
    ["cortex-a53", [1, -2, 1, -1]],
    ["cortex-a76", [1, 0, 0, -1]],
    ["legacy-firmware", [-1, -1, -1, -1]],
  ])("profile %s answers %j", (cpu, want) => {
    expect(answers(profile(cpu as string))).toEqual(want);
  });

  it("takes per-workaround overrides", () => {
    expect(answers(profile("cortex-a57", ", workarounds: { wa4: mitigated, wa2: not-required }"))).toEqual([0, 1, 0, 0]);
  });

  it("WORKAROUND_1 and _3 are no-ops returning SUCCESS where offered, -1 where not", () => {
    expect(profile("cortex-a57").hvc(A.SMCCC_ARCH_WORKAROUND_1.smc32).sw(0)).toBe(0);
    expect(profile("cortex-a57").hvc(A.SMCCC_ARCH_WORKAROUND_3.smc32).sw(0)).toBe(0);
    expect(profile("legacy-firmware").hvc(A.SMCCC_ARCH_WORKAROUND_1.smc32).sw(0)).toBe(-1);
  });

  it("WORKAROUND_2 switches the dynamic SSBD mitigation per vCPU", () => {
    const mm = ScriptedMachine.fromText("vms:\n  a: {}\n");
    const arch = mm.hypervisor.domain("a").routed.services.get("arch") as unknown as { ssbdEnabled: Uint8Array };
    expect(arch.ssbdEnabled[0]).toBe(1);
    expect(mm.vm("a").vcpu(0).hvc(A.SMCCC_ARCH_WORKAROUND_2.smc32, 0).sw(0)).toBe(0);
    expect(arch.ssbdEnabled[0]).toBe(0);
  });
});
