/**
 * TI OMAP4's boot-ROM secure monitor, as Linux drives it (arch/arm/mach-omap2/omap-smc.S, omap-secure.h,
 * omap4-common.c): `omap_smc1(service, value)` puts the service number in r12 and the value in r0 and
 * issues `smc #0`. The PL310 L2 cache controller's control, auxiliary-control, debug and prefetch registers
 * are secure-only on OMAP4, so the kernel asks the ROM to write them; SCU power status likewise.
 *
 * This board module keeps those registers: what a guest writes is what the board (and a test) reads back.
 * It is the seed-004 use case: a board's own SMC interface served outside the hypervisor's core.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { BoardFirmware } from "../../router/ports.js";

/** Secure Monitor API service numbers (Linux arch/arm/mach-omap2/omap-secure.h). */
export const OMAP4_MON = {
  L2X0_DBG_CTRL_INDEX: 0x100,
  L2X0_CTRL_INDEX: 0x102,
  SCU_PWR_INDEX: 0x108,
  L2X0_AUXCTRL_INDEX: 0x109,
  L2X0_PREFETCH_INDEX: 0x113,
} as const;

const SERVICES = new Set<number>(Object.values(OMAP4_MON));

/** The PL310 registers after reset (L2C-310 TRM): the cache disabled; the auxiliary control as this board's ROM leaves it. */
const L2C_AT_RESET: Readonly<Record<"ctrl" | "auxCtrl" | "debugCtrl" | "prefetchCtrl", number>> = { ctrl: 0, auxCtrl: 0x0202_0000, debugCtrl: 0, prefetchCtrl: 0 };

export class Omap4Board implements BoardFirmware {
  readonly name = "omap4";
  /** PL310 registers (ARM CoreLink L2C-310 TRM): offsets 0x100, 0x104, 0xF40, 0xF60. */
  readonly l2c = { ...L2C_AT_RESET };
  /** SCU CPU power status, one byte per CPU (Cortex-A9 MPCore TRM, SCU_CPU_STATUS). */
  scuPower = 0;
  /** Calls served, by service number. */
  readonly served = new Map<number, number>();

  /**
   * The SoC was reset: the PL310 registers take their reset values and every CPU's SCU power status is 0
   * (normal mode). `served` counts calls over the machine's life and stays.
   */
  reset(): void {
    Object.assign(this.l2c, L2C_AT_RESET);
    this.scuPower = 0;
  }

  /** An OMAP4 ROM call: an SMC from AArch32 whose r12 names one of the monitor's services. */
  claims(call: SmcCall): boolean {
    return call.aarch32 && call.conduit === "smc" && SERVICES.has(call.w(12));
  }

  handle(call: SmcCall, res: SmcResult): void {
    const service = call.w(12);
    const value = call.w(0);
    this.served.set(service, (this.served.get(service) ?? 0) + 1);
    switch (service) {
      case OMAP4_MON.L2X0_CTRL_INDEX:
        this.l2c.ctrl = value & 1; // bit 0: L2 cache enable
        break;
      case OMAP4_MON.L2X0_AUXCTRL_INDEX:
        this.l2c.auxCtrl = value >>> 0;
        break;
      case OMAP4_MON.L2X0_DBG_CTRL_INDEX:
        this.l2c.debugCtrl = value & 0x7;
        break;
      case OMAP4_MON.L2X0_PREFETCH_INDEX:
        this.l2c.prefetchCtrl = value >>> 0;
        break;
      case OMAP4_MON.SCU_PWR_INDEX:
        this.scuPower = value & 0xffff_ffff;
        break;
    }
    // The ROM returns 0 in r0; r1-r3 are scratch across omap_smc1, and zero is what the guest sees.
    res.ret(0);
  }
}
