/** The SPMC's answers in registers (DEN0077, FFA_SUCCESS / FFA_ERROR): FFA_SUCCESS and FFA_ERROR. */
import type { SmcResult } from "../../router/call.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";

/** FFA_ERROR: w2 the status as a signed 32-bit value (upper half zero for SMC64 callers). */
export function replyError(res: SmcResult, code: number): void {
  res.set(0, F.FFA_ERROR.smc32);
  res.set(1, 0);
  res.setWords(2, code >>> 0, 0);
}

/** FFA_SUCCESS_32 with w2, w3. */
export function replySuccess(res: SmcResult, w2 = 0, w3 = 0): void {
  res.set(0, F.FFA_SUCCESS.smc32);
  res.set(1, 0);
  res.set(2, w2 >>> 0);
  res.set(3, w3 >>> 0);
}

/** FFA_SUCCESS for status 0, FFA_ERROR(status) otherwise. */
export function replyStatus(res: SmcResult, code: number): void {
  return code === 0 ? replySuccess(res) : replyError(res, code);
}
