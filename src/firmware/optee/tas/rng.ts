/**
 * The RNG TA Linux's optee-rng driver binds to (drivers/char/hw_random/optee-rng.c, UUID
 * ab7a617c-b8e7-4d8f-8301-d09b61036b64): TA_CMD_GET_ENTROPY fills memref 0 (at most 4 KiB) from the secure
 * world's entropy source; TA_CMD_GET_RNG_INFO returns the rate in value a (bytes per second) and the
 * quality in value b (per 1024 bits).
 */
import { TEEC } from "../../../smccc/optee/abi.js";
import type { TrustedApp } from "../ta.js";

export const RNG_TA_UUID = "ab7a617c-b8e7-4d8f-8301-d09b61036b64";
export const TA_CMD_GET_ENTROPY = 0;
export const TA_CMD_GET_RNG_INFO = 1;
const MAX_ENTROPY_REQ = 4096;

export const rngTa: TrustedApp<null> = {
  uuid: RNG_TA_UUID,
  name: "rng",
  open: () => ({ result: TEEC.SUCCESS, state: null }),
  *invoke(_state, cmd, params, env) {
    const p = params[0];
    if (cmd === TA_CMD_GET_ENTROPY) {
      if (!p || p.type !== "memref-inout") return { result: TEEC.ERROR_BAD_PARAMETERS };
      const n = Math.min(p.buffer.length, MAX_ENTROPY_REQ);
      if (!env.random(p.buffer.subarray(0, n))) return { result: TEEC.ERROR_BUSY };
      p.size = n;
      return { result: TEEC.SUCCESS };
    }
    if (cmd === TA_CMD_GET_RNG_INFO) {
      if (!p || p.type !== "value-out") return { result: TEEC.ERROR_BAD_PARAMETERS };
      p.a = 1024 * 1024;
      p.b = 900;
      return { result: TEEC.SUCCESS };
    }
    return { result: TEEC.ERROR_NOT_SUPPORTED };
  },
  close: () => {},
};
