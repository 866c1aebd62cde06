/**
 * Direct messages from a VM to the partitions it may use (DEN0077 v1.2 §15), and FFA_RUN to resume one
 * that an interrupt preempted (§14.2): forwarded to the SPMC with the VM's own ID as sender. Requests to
 * peer VMs go to vm-messaging.ts.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_RET, ffaEndpoints, ffaReceiverOf, ffaSenderOf } from "../../smccc/ffa/abi.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { FfaMediator } from "./mediator.js";
import { peerRequest } from "./vm-messaging.js";
import { FFA_ERROR, ffaError, type FfaVm, passAnswer } from "./vm.js";

/** The arguments of the call being forwarded, x_n words at [2n], [2n + 1]: one buffer (calls do not overlap). */
const ARGS = new Uint32Array(36);

/**
 * DIRECT_REQ_32/64 and DIRECT_REQ2 (§15.2-15.4) to a partition the VM may use, forwarded with the VM's
 * own ID as sender (the VM's w1 must say so). No framework messages from a VM (w2 bit 31), w2 MBZ
 * otherwise. A request to a peer VM is delivered to the peer's waiting vCPU (vm-messaging.ts).
 */
export function directReq(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void | Promise<void> {
  const fid = call.fid, w1 = call.w(1), req2 = fid === F.FFA_MSG_SEND_DIRECT_REQ2.smc64;
  const receiver = ffaReceiverOf(w1);
  if (ffaSenderOf(w1) !== st.id || call.hi(1) !== 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `direct request with sender 0x${ffaSenderOf(w1).toString(16)}`);
  if (!req2 && (call.w(2) !== 0 || call.hi(2) !== 0)) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `direct request with w2 = 0x${call.w(2).toString(16)}`);
  const peer = m.peer(st, receiver);
  if (peer) return peerRequest(m, st, peer, call, res);
  if (!m.mayUsePartition(st, receiver)) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `direct request to 0x${receiver.toString(16)}`);
  forward(m, st, call, res, req2 ? 17 : 7, receiver);
}

/** FFA_RUN (§14.2) of a partition the VM may use: what Linux calls after an FFA_INTERRUPT answer. */
export function run(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void {
  const target = ffaSenderOf(call.w(1));
  if (!m.mayUsePartition(st, target)) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_RUN of 0x${target.toString(16)}`);
  forward(m, st, call, res, 7, target);
}

/**
 * Forwards the VM's x1-x(last) to the SPMC and passes back only answers that belong to this call: the
 * partition's response to this VM, an error, or the partition's preemption (INTERRUPT, YIELD).
 */
function forward(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult, last: number, partition: number): void {
  const a = ARGS;
  a.fill(0);
  for (let n = 1; n <= last; n++) {
    a[2 * n] = call.w(n);
    a[2 * n + 1] = call.hi(n);
  }
  const port = st.port;
  port.callWith(call.fid, a, last);
  const r0 = port.w(0);
  if (r0 === FFA_ERROR) return ffaError(res, port.sw(2));
  const responses: number[] = [F.FFA_MSG_SEND_DIRECT_RESP.smc32, F.FFA_MSG_SEND_DIRECT_RESP.smc64, F.FFA_MSG_SEND_DIRECT_RESP2.smc64];
  if (responses.includes(r0)) {
    if (port.w(1) !== ffaEndpoints(partition, st.id)) return m.refuse(st, res, FFA_RET.ABORTED, `a response from 0x${ffaSenderOf(port.w(1)).toString(16)} for 0x${ffaReceiverOf(port.w(1)).toString(16)}`);
    return passAnswer(res, port.words, r0 === F.FFA_MSG_SEND_DIRECT_RESP2.smc64 ? 17 : 7);
  }
  if (r0 === F.FFA_INTERRUPT.smc32 || r0 === F.FFA_YIELD.smc32 || r0 === F.FFA_SUCCESS.smc32) return passAnswer(res, port.words, 7);
  m.refuse(st, res, FFA_RET.ABORTED, `the SPMC answered 0x${r0.toString(16)}`);
}
