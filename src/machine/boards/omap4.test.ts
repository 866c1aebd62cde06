import { describe, expect, it } from "vitest";
import { ScriptedMachine } from "../scripted/machine.js";
import { OMAP4_MON, type Omap4Board } from "./omap4.js";

describe("board firmware: OMAP4's ROM monitor (R12, a board's own SMC interface)", () => {
  const m = ScriptedMachine.fromText("vms:\n  panda: { aarch32: true, vcpus: 2, board: omap4 }\n  plain: { aarch32: true }\n");
  const board = m.hypervisor.domain("panda").routed.board as Omap4Board;
  /** omap_smc1(service, value): r12 = service, r0 = value, smc #0. */
  const smc1 = (vm: string, service: number, value: number) => {
    const v = m.vm(vm).vcpu(0);
    v.setX(12, service);
    return v.smc(value);
  };

  it("serves the L2 cache controller's secure registers through r12-indexed SMCs", () => {
    const r = smc1("panda", OMAP4_MON.L2X0_AUXCTRL_INDEX, 0x0e47_0000);
    expect(r.x0).toBe(0n);
    expect(r.decision).toEqual({ action: "delegate", rule: "board:omap4" });
    expect(smc1("panda", OMAP4_MON.L2X0_CTRL_INDEX, 1).x0).toBe(0n);
    expect(smc1("panda", OMAP4_MON.L2X0_DBG_CTRL_INDEX, 3).x0).toBe(0n);
    expect(board.l2c).toMatchObject({ ctrl: 1, auxCtrl: 0x0e47_0000, debugCtrl: 3 });
    expect(r.pcAdvance).toBe(4);
  });

  it("leaves SMCCC calls to the calling convention (r12 is not a ROM service)", () => {
    const r = smc1("panda", 0, 0x8400_0000);
    expect(r.x0).toBe(0x1_0001n);
    expect(r.decision.rule).toBe("default:psci");
  });

  it("is the VM's own: another VM's identical SMC is an unknown SMCCC call", () => {
    const r = smc1("plain", OMAP4_MON.L2X0_CTRL_INDEX, 0);
    expect(r.decision.rule).toBe("default:deny");
    expect(r.sw(0)).toBe(-1);
    expect(board.served.get(OMAP4_MON.L2X0_CTRL_INDEX)).toBe(1);
  });

  it("names an unknown board profile with the VM's path", () => {
    expect(() => ScriptedMachine.fromText("vms:\n  a: { board: exynos9 }\n")).toThrow(/vms\.a\.board: no board profile named "exynos9" \(known: omap4\)/);
  });

  it("takes its registers' reset values when the VM resets (PSCI SYSTEM_RESET); the other VM is not touched", () => {
    const mm = ScriptedMachine.fromText("vms:\n  panda: { aarch32: true, board: omap4 }\n  panda2: { aarch32: true, board: omap4 }\n");
    const boards = ["panda", "panda2"].map((vm) => mm.hypervisor.domain(vm).routed.board as Omap4Board);
    for (const vm of ["panda", "panda2"]) {
      const v = mm.vm(vm).vcpu(0);
      for (const [service, value] of [[OMAP4_MON.L2X0_CTRL_INDEX, 1], [OMAP4_MON.L2X0_AUXCTRL_INDEX, 0x0e47_0000], [OMAP4_MON.SCU_PWR_INDEX, 0x0303]] as const) {
        v.setX(12, service);
        v.smc(value);
      }
    }
    expect(mm.vm("panda").vcpu(0).hvc(0x8400_0009).outcome).toBe("halt");
    expect(boards[0]!.l2c).toEqual({ ctrl: 0, auxCtrl: 0x0202_0000, debugCtrl: 0, prefetchCtrl: 0 });
    expect(boards[0]!.scuPower).toBe(0);
    expect(boards[1]!.l2c).toMatchObject({ ctrl: 1, auxCtrl: 0x0e47_0000 });
    expect(boards[1]!.scuPower).toBe(0x0303);
  });
});
