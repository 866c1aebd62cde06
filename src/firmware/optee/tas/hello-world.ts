/**
 * The hello-world TA of OP-TEE's examples (optee_examples/hello_world): same UUID and commands, so a
 * client written for it works unchanged. INC_VALUE adds one to value a of parameter 0, DEC_VALUE
 * subtracts one. Each invoke also asks the normal world for the time over RPC, as a real TA calling
 * TEE_GetREETime would, so every invoke exercises the RPC path.
 */
import { TEEC } from "../../../smccc/optee/abi.js";
import type { TrustedApp } from "../ta.js";

export const HELLO_WORLD_UUID = "8aaaf200-2450-11e4-abe2-0002a5d5c51b";
export const TA_HELLO_WORLD_CMD_INC_VALUE = 0;
export const TA_HELLO_WORLD_CMD_DEC_VALUE = 1;

export const helloWorldTa: TrustedApp<{ calls: number; lastTime: number }> = {
  uuid: HELLO_WORLD_UUID,
  name: "hello_world",
  open: () => ({ result: TEEC.SUCCESS, state: { calls: 0, lastTime: 0 } }),
  *invoke(state, cmd, params) {
    const p = params[0];
    if (!p || p.type !== "value-inout") return { result: TEEC.ERROR_BAD_PARAMETERS };
    const t = yield { kind: "get-time" };
    if (t.kind === "time") state.lastTime = t.seconds;
    state.calls++;
    if (cmd === TA_HELLO_WORLD_CMD_INC_VALUE) p.a = (p.a + 1) >>> 0;
    else if (cmd === TA_HELLO_WORLD_CMD_DEC_VALUE) p.a = (p.a - 1) >>> 0;
    else return { result: TEEC.ERROR_BAD_PARAMETERS };
    return { result: TEEC.SUCCESS };
  },
  close: () => {},
};
