/**
 * The hypervisor's notification calls in registers (DEN0077 v1.1+, notifications; Linux
 * drivers/firmware/arm_ffa/driver.c and Xen xen/arch/arm/tee/ffa_notif.c use the same layouts), decoded
 * for the SPMC's Notifications.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_ID_HYPERVISOR, FFA_RET, ffaHandle, ffaHandleHi, ffaHandleLo, ffaIdIsSecure, ffaReceiverOf, ffaSenderOf } from "../../smccc/ffa/abi.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { Notifications } from "./notifications.js";
import { replyError, replyStatus, replySuccess } from "./replies.js";

/** The SPMC's table of known VMs, as notification calls change it. */
export interface KnownVms {
  has(vm: number): boolean;
  readonly size: number;
  /** The VM becomes known (its bitmap was created). */
  add(vm: number): void;
  /** The VM's bitmap is gone: forget it if nothing else holds it. */
  forgetIfIdle(vm: number): void;
}

/** An FF-A VM ID in w1[15:0] with w1[31:16] zero. */
function vmIn(w1: number): boolean {
  return w1 >>> 16 === 0 && w1 !== FFA_ID_HYPERVISOR && !ffaIdIsSecure(w1);
}

export function notificationCall(fid: number, call: SmcCall, res: SmcResult, n: Notifications, vms: KnownVms): void {
  const w1 = call.w(1);
  const bits = ffaHandle(call.w(3), call.w(4));
  switch (fid) {
    case F.FFA_NOTIFICATION_BITMAP_CREATE.smc32: {
      // w1 the VM, w2 its vCPU count; the VM becomes known to the SPMC.
      if (!vmIn(w1)) return replyError(res, FFA_RET.INVALID_PARAMETERS);
      const known = vms.has(w1);
      const r = n.create(w1, call.w(2), known ? 0 : vms.size);
      if (r === 0 && !known) vms.add(w1);
      return replyStatus(res, r);
    }
    case F.FFA_NOTIFICATION_BITMAP_DESTROY.smc32: {
      if (!vmIn(w1)) return replyError(res, FFA_RET.INVALID_PARAMETERS);
      const r = n.destroy(w1);
      if (r === 0) vms.forgetIfIdle(w1);
      return replyStatus(res, r);
    }
    // BIND/UNBIND: w1 = sender (the partition) in [31:16], receiver (the VM) in [15:0]; the bitmap's low
    // half in w3, high half in w4 (Xen once swapped them).
    case F.FFA_NOTIFICATION_BIND.smc32:
      return replyStatus(res, n.bind(ffaReceiverOf(w1), ffaSenderOf(w1), call.w(2), bits));
    case F.FFA_NOTIFICATION_UNBIND.smc32:
      return replyStatus(res, n.unbind(ffaReceiverOf(w1), ffaSenderOf(w1), call.w(2), bits));
    case F.FFA_NOTIFICATION_GET.smc32: {
      // w1 = vCPU in [31:16], receiver in [15:0]; SUCCESS w2-w3 the partitions' bits (w4-w7: VMs' and
      // framework bits, which the SPMC never holds for a VM).
      const g = n.get(ffaReceiverOf(w1), ffaSenderOf(w1), call.w(2));
      if (typeof g === "number") return replyError(res, g);
      return replySuccess(res, ffaHandleLo(g.fromSp), ffaHandleHi(g.fromSp));
    }
    case F.FFA_NOTIFICATION_INFO_GET.smc64:
      return infoGet(res, n);
    default:
      return replyError(res, FFA_RET.NOT_SUPPORTED);
  }
}

/**
 * NOTIFICATION_INFO_GET_64: SUCCESS_64, x2 = more-pending bit 0 and the list count in [11:7] (each list's
 * vCPU count, 2 bits from bit 12, stays 0: global notifications), the IDs from x3, four 16-bit IDs per
 * register; NO_DATA when no VM has anything new.
 */
function infoGet(res: SmcResult, n: Notifications): void {
  const { ids, more } = n.infoGet();
  if (ids.length === 0) return replyError(res, FFA_RET.NO_DATA);
  res.set(0, F.FFA_SUCCESS.smc64);
  res.set(1, 0);
  res.set(2, (more ? 1 : 0) | (ids.length << 7));
  for (let r = 0; r * 4 < ids.length; r++) {
    let v = 0n;
    for (let k = 0; k < 4 && r * 4 + k < ids.length; k++) v |= BigInt(ids[r * 4 + k]!) << BigInt(16 * k);
    res.setBig(3 + r, v);
  }
}
