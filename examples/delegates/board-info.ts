/**
 * An example delegate handler, loaded in-process: it serves OEM calls (owner 3) a VM's policy delegates to
 * it, the way KVM hands calls to the VMM or seL4 to a fault handler.
 *   0x83000001  BOARD_INFO_VERSION  → x0 = 0 (success), x1 = 1 (version)
 *   0x83000002  BOARD_INFO_SERIAL   → x0 = 0, x1 = a serial number derived from the VM's name
 * Anything else gets -1.
 */
import type { DelegateContext, DelegateReply, DelegateRequest } from "../../src/machine/delegates/protocol.js";

export function handle(req: DelegateRequest, _ctx: DelegateContext): DelegateReply {
  switch (req.fid) {
    case 0x8300_0001:
      return { regs: [0, 1] };
    case 0x8300_0002: {
      let serial = 0;
      for (const c of req.vm) serial = (serial * 31 + c.charCodeAt(0)) >>> 0;
      return { regs: [0, serial] };
    }
  }
  return { regs: [-1] };
}
