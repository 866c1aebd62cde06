import type { FunctionTable } from "./table.js";

/**
 * The SiP platform-management calls of the modelled monitor, shaped like Xilinx ZynqMP's EEMI: SMC64,
 * OEN 2, 0xC2000000 | API ID (Linux include/linux/firmware/xlnx-zynqmp.h, PM_SIP_SVC and enum pm_api_id).
 * SiP IDs are platform-specific: these names hold for the modelled platform.
 */
export const EEMI_FUNCTIONS = {
  PM_GET_API_VERSION: { smc64: 0xc200_0001 },
  PM_REQUEST_NODE: { smc64: 0xc200_000d },
  PM_RELEASE_NODE: { smc64: 0xc200_000e },
  PM_SET_REQUIREMENT: { smc64: 0xc200_000f },
  PM_RESET_ASSERT: { smc64: 0xc200_0011 },
  PM_RESET_GET_STATUS: { smc64: 0xc200_0012 },
  PM_FPGA_LOAD: { smc64: 0xc200_0016 },
  PM_GET_CHIPID: { smc64: 0xc200_0018 },
  PM_CLOCK_ENABLE: { smc64: 0xc200_0024 },
  PM_CLOCK_DISABLE: { smc64: 0xc200_0025 },
  PM_CLOCK_GETSTATE: { smc64: 0xc200_0026 },
  PM_CLOCK_SETDIVIDER: { smc64: 0xc200_0027 },
  PM_CLOCK_GETDIVIDER: { smc64: 0xc200_0028 },
  PM_CLOCK_SETRATE: { smc64: 0xc200_0029 },
  PM_CLOCK_GETRATE: { smc64: 0xc200_002a },
  PM_FEATURE_CHECK: { smc64: 0xc200_003f },
} as const satisfies FunctionTable;
