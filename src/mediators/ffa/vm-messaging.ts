/**
 * Direct messages between peer VMs (DEN0077 v1.2 §15, the partition runtime model of §8): a VM receives a
 * direct request only while one of its vCPUs waits for one, in FFA_MSG_WAIT or in the FFA_MSG_SEND_DIRECT_RESP
 * that answered the previous one. The request then becomes that call's answer, and the sender's call stays
 * pending until the receiver responds; a receiver that is not waiting is BUSY (as Hafnium answers,
 * api_ffa_msg_send_direct_req). The mediator holds the two calls as promises: the router resumes each vCPU
 * when its call completes.
 *
 * One waiting vCPU and one request in service per VM; everything pending is answered FFA_ERROR(ABORTED)
 * when either VM is destroyed or reset, so no call is left waiting for a VM that is gone.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import { FFA_RET, FFA_VERSION_1_1, FFA_VERSION_1_2, ffaReceiverOf, ffaSenderOf } from "../../smccc/ffa/abi.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import type { FfaMediator } from "./mediator.js";
import { ffaError, type FfaVm, type Parked } from "./vm.js";

/** FFA_MSG_WAIT w2 bit 0 (v1.1+): keep the RX buffer; without it, waiting gives the buffer back (§14.x). */
const MSG_WAIT_RETAIN_RX = 1;

/** The response that answers each request. */
const RESPONSE_OF = new Map<number, number>([
  [F.FFA_MSG_SEND_DIRECT_REQ.smc32, F.FFA_MSG_SEND_DIRECT_RESP.smc32],
  [F.FFA_MSG_SEND_DIRECT_REQ.smc64, F.FFA_MSG_SEND_DIRECT_RESP.smc64],
  [F.FFA_MSG_SEND_DIRECT_REQ2.smc64, F.FFA_MSG_SEND_DIRECT_RESP2.smc64],
]);

/** The registers a message carries: x0-x7, or x0-x17 for REQ2/RESP2. */
function lastRegister(fid: number): number {
  return fid === F.FFA_MSG_SEND_DIRECT_REQ2.smc64 || fid === F.FFA_MSG_SEND_DIRECT_RESP2.smc64 ? 17 : 7;
}

/** Copies the call's x0-x(last) into a parked call's result: the message as its receiver sees it. */
function deliver(call: SmcCall, to: SmcResult): void {
  const last = lastRegister(call.fid);
  to.setWords(0, call.fid, 0);
  // An SMC64 message reaches the receiver's (SMC32) FFA_MSG_WAIT with its X registers whole.
  if ((call.fid & 0x4000_0000) !== 0) to.wide = true;
  for (let n = 1; n <= last; n++) to.setWords(n, call.w(n), call.hi(n));
  for (let n = last + 1; n <= 7; n++) to.set(n, 0);
}

function park(st: FfaVm, res: SmcResult): Promise<void> {
  return new Promise((done) => {
    st.parked = { res, done };
  });
}

/** FFA_MSG_WAIT (§14.1): the vCPU waits for a direct request from a peer. */
export function msgWait(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void | Promise<void> {
  const flags = call.w(2);
  if (call.w(1) !== 0 || (flags & ~MSG_WAIT_RETAIN_RX) !== 0) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `FFA_MSG_WAIT with w1 0x${call.w(1).toString(16)}, w2 0x${flags.toString(16)}`);
  // A request in service is answered with DIRECT_RESP, not abandoned.
  if (st.serving) return m.refuse(st, res, FFA_RET.DENIED, "FFA_MSG_WAIT with a direct request to answer");
  if (st.parked) return m.refuse(st, res, FFA_RET.BUSY, "FFA_MSG_WAIT while another vCPU waits");
  if ((flags & MSG_WAIT_RETAIN_RX) === 0 && st.version >= FFA_VERSION_1_1) st.rxFull = false;
  return park(st, res);
}

/**
 * A direct request from `st` to its peer: delivered as the answer of the peer's waiting call; the sender's
 * call completes with the peer's response. REQ2 needs a v1.2 peer and a nil UUID (VMs have none here);
 * 64-bit requests an AArch64 peer.
 */
export function peerRequest(m: FfaMediator, st: FfaVm, peer: FfaVm, call: SmcCall, res: SmcResult): void | Promise<void> {
  const req2 = call.fid === F.FFA_MSG_SEND_DIRECT_REQ2.smc64;
  if (req2 && (call.x(2) !== 0n || call.x(3) !== 0n)) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "DIRECT_REQ2 to a VM with a UUID");
  if ((req2 && peer.version < FFA_VERSION_1_2) || (call.fid !== F.FFA_MSG_SEND_DIRECT_REQ.smc32 && peer.aarch32)) return m.refuse(st, res, FFA_RET.DENIED, "a direct request the peer cannot take");
  // One request to a peer at a time per VM: the mediator keeps one (st.awaiting), and destroy or reset
  // must find every call it has to answer ABORTED (a second vCPU's request would otherwise be forgotten,
  // and its late answer delivered into the VM's next boot).
  if (st.awaiting) return m.refuse(st, res, FFA_RET.BUSY, `a second direct request while ${st.awaiting.name} has one of this VM's to answer`);
  const waiting = peer.parked;
  if (!waiting) return m.refuse(st, res, FFA_RET.BUSY, `direct request to ${peer.name}, which is not waiting for one`);
  peer.parked = null;
  deliver(call, waiting.res);
  const pending = new Promise<void>((done) => {
    peer.serving = { from: st, request: call.fid, sender: { res, done } };
    st.awaiting = peer;
  });
  waiting.done();
  return pending;
}

/**
 * DIRECT_RESP_32/64 and DIRECT_RESP2 (§15.3): the VM answers the request it serves, with its own ID as
 * sender and the requester as receiver, in the request's width; then it waits for the next one.
 */
export function directResp(m: FfaMediator, st: FfaVm, call: SmcCall, res: SmcResult): void | Promise<void> {
  const s = st.serving;
  if (!s) return m.refuse(st, res, FFA_RET.DENIED, "a direct response without a request");
  const w1 = call.w(1);
  if (RESPONSE_OF.get(s.request) !== call.fid || ffaSenderOf(w1) !== st.id || ffaReceiverOf(w1) !== s.from.id || call.hi(1) !== 0) {
    return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, `a direct response 0x${call.fid.toString(16)} with w1 0x${w1.toString(16)}`);
  }
  if (call.fid !== F.FFA_MSG_SEND_DIRECT_RESP2.smc64 && (call.w(2) !== 0 || call.hi(2) !== 0)) return m.refuse(st, res, FFA_RET.INVALID_PARAMETERS, "a direct response with w2 set");
  st.serving = null;
  if (s.sender) {
    s.from.awaiting = null;
    deliver(call, s.sender.res);
    s.sender.done();
  }
  return park(st, res);
}

/** Everything pending of `st`'s messaging, answered ABORTED: destroy and reset. */
export function dropMessaging(st: FfaVm): void {
  const abort = (p: Parked | null) => {
    if (!p) return;
    ffaError(p.res, FFA_RET.ABORTED);
    p.done();
  };
  abort(st.parked);
  st.parked = null;
  if (st.serving) {
    st.serving.from.awaiting = null;
    abort(st.serving.sender);
    st.serving = null;
  }
  const peer = st.awaiting;
  if (peer?.serving?.from === st) {
    // The peer still answers; its response goes nowhere.
    abort(peer.serving.sender);
    peer.serving.sender = null;
  }
  st.awaiting = null;
}

