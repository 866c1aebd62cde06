/**
 * The device-enumeration pseudo-TA Linux's OP-TEE driver opens at probe (drivers/tee/optee/device.c,
 * UUID 7011a688-ddde-4053-a5a9-7b3c4ddf13b8): PTA_CMD_GET_DEVICES returns the UUIDs of TAs that want a
 * driver on the TEE bus (here the RNG TA, which Linux's optee-rng binds to); PTA_CMD_GET_DEVICES_SUPP
 * those that need tee-supplicant first (none). A buffer too small gets SHORT_BUFFER with the size needed.
 */
import { TEEC } from "../../../smccc/optee/abi.js";
import { uuidBytes } from "../../../smccc/uuid.js";
import type { TrustedApp } from "../ta.js";

export const DEVICE_ENUM_PTA_UUID = "7011a688-ddde-4053-a5a9-7b3c4ddf13b8";
export const PTA_CMD_GET_DEVICES = 0;
export const PTA_CMD_GET_DEVICES_SUPP = 1;

export function deviceEnumPta(devices: readonly string[]): TrustedApp<null> {
  return {
    uuid: DEVICE_ENUM_PTA_UUID,
    name: "device.pta",
    open: () => ({ result: TEEC.SUCCESS, state: null }),
    *invoke(_state, cmd, params) {
      const list = cmd === PTA_CMD_GET_DEVICES ? devices : cmd === PTA_CMD_GET_DEVICES_SUPP ? [] : null;
      if (list === null) return { result: TEEC.ERROR_NOT_SUPPORTED };
      const p = params[0];
      if (!p || p.type !== "memref-out" || params.slice(1).some((q) => q.type !== "none")) return { result: TEEC.ERROR_BAD_PARAMETERS };
      const need = 16 * list.length;
      const capacity = p.buffer.length;
      p.size = need;
      if (capacity < need) return { result: TEEC.ERROR_SHORT_BUFFER };
      list.forEach((u, i) => p.buffer.set(uuidBytes(u), 16 * i));
      return { result: TEEC.SUCCESS };
    },
    close: () => {},
  };
}
