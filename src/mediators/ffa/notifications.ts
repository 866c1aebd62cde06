/**
 * Notifications a VM receives from partitions and sends to them (DEN0077 v1.2 §10.x, §17): BIND, UNBIND,
 * SET, GET go to the SPMC with the IDs checked (the VM is the receiver it binds for and gets for, the sender
 * it sets from; the other end is a partition it may use). INFO_GET is the SPMC's list for all VMs: the
 * mediator asks the SPMC, remembers every VM the list names (so that none loses its entry), and tells the
 * caller only of itself, as Xen does (ffa_notif.c: a VM learns of its own pending notifications only).
 * The bitmaps themselves (BITMAP_CREATE/DESTROY) are the hypervisor's, made at enable and destroy.
 * VM↔VM notifications are not offered; the hypervisor's framework notification "RX buffer full" is
 * (indirect-messaging.ts).
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_NOTIFICATION, FFA_RET, ffaReceiverOf, ffaSenderOf } from "../../smccc/ffa/abi.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { FfaMediator } from "./mediator.js";
import { FFA_ERROR, ffaError, ffaSuccess, type FfaVm, reply } from "./vm.js";

/** The hypervisor framework notification "RX buffer full" (bit 0 of NOTIFICATION_GET's w7). */
const HYP_RX_BUFFER_FULL = 1;

/** INFO_GET rounds the mediator makes while the SPMC says more is pending (bounded: the VMs are). */
const INFO_GET_ROUNDS = 8;

export class Notifications {
  private readonly args = new Uint32Array(36);

  constructor(private readonly m: FfaMediator) {}

  offered(st: FfaVm, fid: number): number | null {
    switch (fid) {
      case F.FFA_NOTIFICATION_BIND.smc32:
      case F.FFA_NOTIFICATION_UNBIND.smc32:
      case F.FFA_NOTIFICATION_SET.smc32:
      case F.FFA_NOTIFICATION_GET.smc32:
      case F.FFA_NOTIFICATION_INFO_GET.smc32:
        return 0;
      case F.FFA_NOTIFICATION_INFO_GET.smc64:
        return st.aarch32 ? null : 0;
    }
    return null;
  }

  handle(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const m = this.m, w1 = call.w(1);
    switch (call.fid) {
      case F.FFA_NOTIFICATION_BIND.smc32:
      case F.FFA_NOTIFICATION_UNBIND.smc32:
        // w1: sender (the partition) [31:16], receiver (the VM) [15:0].
        if (ffaReceiverOf(w1) !== st.id || !m.mayUsePartition(st, ffaSenderOf(w1))) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `notification binding 0x${w1.toString(16)}`);
        return this.forward(st, call, res, 4);
      case F.FFA_NOTIFICATION_SET.smc32:
        // w1: sender (the VM) [31:16], receiver (a partition) [15:0].
        if (ffaSenderOf(w1) !== st.id || !m.mayUsePartition(st, ffaReceiverOf(w1))) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `notification set 0x${w1.toString(16)}`);
        return this.forward(st, call, res, 4);
      case F.FFA_NOTIFICATION_GET.smc32:
        return this.get(st, call, res);
      case F.FFA_NOTIFICATION_INFO_GET.smc32:
      case F.FFA_NOTIFICATION_INFO_GET.smc64:
        return this.infoGet(st, call, res);
    }
    ffaError(res, FFA_RET.NOT_SUPPORTED);
  }

  private forward(st: FfaVm, call: SmcCall, res: SmcResult, last: number): void {
    const a = this.args;
    a.fill(0);
    for (let n = 1; n <= last; n++) a[2 * n] = call.w(n);
    st.port.callWith(call.fid, a, last);
    if (st.port.w(0) === FFA_ERROR) return ffaError(res, st.port.sw(2));
    ffaSuccess(res);
  }

  /**
   * GET (w1: vCPU [31:16], receiver [15:0] = the VM): the partitions' and the SPMC's bitmaps from the SPMC;
   * the VM and hypervisor bitmaps are the hypervisor's, and no VM or hypervisor notification exists here.
   */
  private get(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const w1 = call.w(1);
    if (ffaReceiverOf(w1) !== st.id) return this.m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `notification get for 0x${ffaReceiverOf(w1).toString(16)}`);
    // w2[31:4] are reserved (MBZ): INVALID_PARAMETERS, as Hafnium's api_ffa_notification_get answers.
    if ((call.w(2) >>> 4) !== 0) return this.m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `notification get flags 0x${call.w(2).toString(16)}`);
    const flags = call.w(2) & (FFA_NOTIFICATION.GET_SP | FFA_NOTIFICATION.GET_SPM);
    const port = st.port;
    port.call(F.FFA_NOTIFICATION_GET.smc32, w1, flags);
    if (port.w(0) === FFA_ERROR) return ffaError(res, port.sw(2));
    // w7: the hypervisor's framework notifications; bit 0, RX buffer full (a peer's FFA_MSG_SEND2).
    let hyp = 0;
    if ((call.w(2) & FFA_NOTIFICATION.GET_HYP) !== 0 && st.rxBufferFull) {
      st.rxBufferFull = false;
      hyp = HYP_RX_BUFFER_FULL;
    }
    reply(res, F.FFA_SUCCESS.smc32, 0, port.w(2), port.w(3), 0, 0, port.w(6), hyp);
  }

  /**
   * INFO_GET (§17.x): one list naming the VM (no vCPU IDs: global notifications) when the SPMC has
   * listed it, else NO_DATA. w2: lists in [11:7]; x3: the IDs.
   */
  private infoGet(st: FfaVm, call: SmcCall, res: SmcResult): void {
    for (let round = 0; round < INFO_GET_ROUNDS; round++) {
      const port = this.m.own;
      port.call(F.FFA_NOTIFICATION_INFO_GET.smc64);
      if (port.w(0) === FFA_ERROR) break;
      this.markListed(port.words);
      if ((port.w(2) & FFA_NOTIFICATION.INFO_GET_MORE_PENDING) === 0) break;
    }
    if (!st.notificationPending && !st.rxBufferFull) return ffaError(res, FFA_RET.NO_DATA);
    st.notificationPending = false;
    reply(res, call.fid === F.FFA_NOTIFICATION_INFO_GET.smc64 ? F.FFA_SUCCESS.smc64 : F.FFA_SUCCESS.smc32, 0, 1 << FFA_NOTIFICATION.INFO_GET_LIST_COUNT_SHIFT, st.id);
  }

  /** Marks every VM an INFO_GET_64 answer lists: IDs packed 4 to a register from x3, each list an endpoint ID then its vCPU IDs. */
  private markListed(words: Uint32Array): void {
    const w2 = words[4]!;
    const lists = (w2 >>> FFA_NOTIFICATION.INFO_GET_LIST_COUNT_SHIFT) & FFA_NOTIFICATION.INFO_GET_LIST_COUNT_MASK;
    const id = (k: number) => {
      const reg = 3 + (k >> 2), half = k & 3;
      if (reg > 17) return -1;
      const word = words[2 * reg + (half >> 1)]!;
      return half & 1 ? word >>> 16 : word & 0xffff;
    };
    let at = 0;
    for (let i = 0; i < lists; i++) {
      const vcpus = (w2 >>> (FFA_NOTIFICATION.INFO_GET_ID_COUNTS_SHIFT + 2 * i)) & 3;
      const vm = this.m.vmById(id(at));
      if (vm) vm.notificationPending = true;
      at += 1 + vcpus;
    }
  }
}
