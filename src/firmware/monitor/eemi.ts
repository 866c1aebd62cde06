/**
 * A SiP platform-management service shaped like Xilinx ZynqMP's EEMI (TF-A plat/xilinx/zynqmp/pm_service,
 * Linux drivers/firmware/xilinx/zynqmp.c), the seeds' "forward some dom0 calls to the secure monitor" case.
 *
 * Calling convention, as Linux's zynqmp_pm_invoke_fn uses it: FID = 0xC2000000 | API ID (SMC64, OEN 2);
 * x1 = arg1 << 32 | arg0, x2 = arg3 << 32 | arg2; results x0 = payload[1] << 32 | status,
 * x1 = payload[3] << 32 | payload[2]. Status codes are EEMI's XST_PM_* values.
 *
 * Device node IDs are ZynqMP's (enum pm_node_id); clock and reset IDs are this model's own, one per node,
 * with resets numbered from 1000 as ZynqMP's are. The monitor keeps what a real one keeps: which VM has
 * requested which node, its requirement, clock and reset state. A VM cannot touch a node another VM holds.
 */
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin } from "../../router/ports.js";

export const PM_SIP_SVC = 0xc200_0000;

/** EEMI API IDs (Linux include/linux/firmware/xlnx-zynqmp.h, enum pm_api_id). */
export const PM_API = {
  PM_GET_API_VERSION: 1,
  PM_REQUEST_NODE: 13,
  PM_RELEASE_NODE: 14,
  PM_SET_REQUIREMENT: 15,
  PM_RESET_ASSERT: 17,
  PM_RESET_GET_STATUS: 18,
  PM_FPGA_LOAD: 22,
  PM_GET_CHIPID: 24,
  PM_CLOCK_ENABLE: 36,
  PM_CLOCK_DISABLE: 37,
  PM_CLOCK_GETSTATE: 38,
  PM_CLOCK_SETDIVIDER: 39,
  PM_CLOCK_GETDIVIDER: 40,
  PM_CLOCK_SETRATE: 41,
  PM_CLOCK_GETRATE: 42,
  PM_FEATURE_CHECK: 63,
} as const;

/** EEMI status codes (enum pm_ret_status). */
export const XST_PM = {
  SUCCESS: 0,
  NO_FEATURE: 19,
  INTERNAL: 2000,
  CONFLICT: 2001,
  NO_ACCESS: 2002,
  INVALID_NODE: 2003,
  DOUBLE_REQ: 2004,
  ABORT_SUSPEND: 2005,
  MULT_USER: 2008,
} as const;

/** EEMI API version 1.0: major in bits 31:16 (PM_VERSION_MAJOR << 16 | PM_VERSION_MINOR). */
export const PM_API_VERSION = 0x1_0000;

/** PM_RESET_ASSERT actions (enum zynqmp_pm_reset_action). */
const RESET_RELEASE = 0, RESET_ASSERT = 1, RESET_PULSE = 2;

export interface NodeSpec {
  readonly id: number;
  readonly name: string;
  /** The VM that holds the node from boot (the platform's configuration object), if any. */
  readonly owner?: string;
}

/** ZynqMP peripheral nodes this model offers (pm_node_id values). */
export const ZYNQMP_NODES: readonly NodeSpec[] = [
  { id: 22, name: "NODE_USB_0" },
  { id: 23, name: "NODE_USB_1" },
  { id: 29, name: "NODE_ETH_0" },
  { id: 30, name: "NODE_ETH_1" },
  { id: 33, name: "NODE_UART_0" },
  { id: 34, name: "NODE_UART_1" },
  { id: 35, name: "NODE_SPI_0" },
  { id: 36, name: "NODE_SPI_1" },
  { id: 37, name: "NODE_I2C_0" },
  { id: 38, name: "NODE_I2C_1" },
  { id: 39, name: "NODE_SD_0" },
  { id: 40, name: "NODE_SD_1" },
  { id: 45, name: "NODE_QSPI" },
  { id: 46, name: "NODE_GPIO" },
  { id: 47, name: "NODE_CAN_0" },
  { id: 48, name: "NODE_CAN_1" },
];

/** The model's clock ID for a node: one reference clock per peripheral, numbered after the node. */
export function clockOf(nodeId: number): number {
  return 100 + nodeId;
}

/** The model's reset ID for a node, numbered from 1000 like ZynqMP's resets. */
export function resetOf(nodeId: number): number {
  return 1000 + nodeId;
}

const REF_CLOCK_HZ = 1_000_000_000;

interface NodeState {
  readonly spec: NodeSpec;
  owner: string | null;
  capabilities: number;
  qos: number;
  clockOn: boolean;
  divider: number;
  resetAsserted: boolean;
}

/** What the monitor needs from the platform to reach a VM's memory (for PM_FPGA_LOAD's buffer). */
export interface PlatformMemoryAccess {
  /** Reads `length` bytes at platform physical address `pa` on behalf of `vm`; a reason string when refused. */
  read(vm: string, pa: bigint, length: number): Uint8Array | string;
}

export class EemiService {
  private readonly nodes = new Map<number, NodeState>();
  private readonly byClock = new Map<number, NodeState>();
  private readonly byReset = new Map<number, NodeState>();
  /** The last bitstream loaded through PM_FPGA_LOAD: who, and a checksum of what. */
  fpga: { vm: string; bytes: number; checksum: number } | null = null;

  constructor(nodes: readonly NodeSpec[] = ZYNQMP_NODES, private readonly memory?: PlatformMemoryAccess, private readonly onRefusal?: (vm: string, what: string) => void) {
    for (const spec of nodes) {
      const st: NodeState = { spec, owner: spec.owner ?? null, capabilities: 0, qos: 0, clockOn: false, divider: 10, resetAsserted: false };
      this.nodes.set(spec.id, st);
      this.byClock.set(clockOf(spec.id), st);
      this.byReset.set(resetOf(spec.id), st);
    }
  }

  /** Whether the FID is one of this service's (SMC64, OEN 2, bits 23:16 clear). */
  claims(fid: number): boolean {
    return (fid & 0xffff_0000) >>> 0 === PM_SIP_SVC;
  }

  /** The node's holder, for tests and `smcvisor` summaries. */
  ownerOf(nodeId: number): string | null | undefined {
    return this.nodes.get(nodeId)?.owner;
  }

  nodeState(nodeId: number): Readonly<NodeState> | undefined {
    return this.nodes.get(nodeId);
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): void {
    const api = call.fid & 0xffff;
    const arg0 = call.w(1), arg1 = call.hi(1), arg2 = call.w(2);
    const vm = origin.vmName;
    let status: number = XST_PM.SUCCESS;
    const payload = [0, 0, 0];
    switch (api) {
      case PM_API.PM_GET_API_VERSION:
        payload[0] = PM_API_VERSION;
        break;
      case PM_API.PM_GET_CHIPID:
        // A ZU9EG-shaped IDCODE and a version word; the values only need to be stable.
        payload[0] = 0x0473_8093;
        payload[1] = 0x0000_0003;
        break;
      case PM_API.PM_FEATURE_CHECK:
        if (Object.values(PM_API).includes(arg0 as never)) payload[0] = 1;
        else status = XST_PM.NO_FEATURE;
        break;
      case PM_API.PM_REQUEST_NODE:
        status = this.request(vm, arg0, arg1, arg2);
        break;
      case PM_API.PM_RELEASE_NODE:
        status = this.withNode(vm, this.nodes.get(arg0), (n) => {
          n.owner = null;
          n.clockOn = false;
          n.capabilities = 0;
          return XST_PM.SUCCESS;
        });
        break;
      case PM_API.PM_SET_REQUIREMENT:
        status = this.withNode(vm, this.nodes.get(arg0), (n) => {
          n.capabilities = arg1;
          n.qos = arg2;
          return XST_PM.SUCCESS;
        });
        break;
      case PM_API.PM_RESET_ASSERT:
        status = this.withNode(vm, this.byReset.get(arg0), (n) => {
          if (arg1 === RESET_ASSERT) n.resetAsserted = true;
          else if (arg1 === RESET_RELEASE || arg1 === RESET_PULSE) n.resetAsserted = false;
          else return XST_PM.INTERNAL;
          return XST_PM.SUCCESS;
        });
        break;
      case PM_API.PM_RESET_GET_STATUS:
        status = this.withNode(vm, this.byReset.get(arg0), (n) => ((payload[0] = n.resetAsserted ? 1 : 0), XST_PM.SUCCESS));
        break;
      case PM_API.PM_CLOCK_ENABLE:
      case PM_API.PM_CLOCK_DISABLE:
        status = this.withNode(vm, this.byClock.get(arg0), (n) => ((n.clockOn = api === PM_API.PM_CLOCK_ENABLE), XST_PM.SUCCESS));
        break;
      case PM_API.PM_CLOCK_GETSTATE:
        status = this.withNode(vm, this.byClock.get(arg0), (n) => ((payload[0] = n.clockOn ? 1 : 0), XST_PM.SUCCESS));
        break;
      case PM_API.PM_CLOCK_SETDIVIDER:
        status = this.withNode(vm, this.byClock.get(arg0), (n) => {
          if (arg1 === 0 || arg1 > 0x3f) return XST_PM.INTERNAL;
          n.divider = arg1;
          return XST_PM.SUCCESS;
        });
        break;
      case PM_API.PM_CLOCK_GETDIVIDER:
        status = this.withNode(vm, this.byClock.get(arg0), (n) => ((payload[0] = n.divider), XST_PM.SUCCESS));
        break;
      case PM_API.PM_CLOCK_SETRATE: {
        // arg1:arg2 = rate in Hz (low:high), rounded to the nearest divider of the reference.
        const rate = arg1 + arg2 * 0x1_0000_0000;
        status = this.withNode(vm, this.byClock.get(arg0), (n) => {
          const div = rate === 0 ? 0 : Math.round(REF_CLOCK_HZ / rate);
          if (div < 1 || div > 0x3f) return XST_PM.INTERNAL;
          n.divider = div;
          return XST_PM.SUCCESS;
        });
        break;
      }
      case PM_API.PM_CLOCK_GETRATE:
        status = this.withNode(vm, this.byClock.get(arg0), (n) => {
          const rate = Math.floor(REF_CLOCK_HZ / n.divider);
          payload[0] = rate >>> 0;
          payload[1] = Math.floor(rate / 0x1_0000_0000);
          return XST_PM.SUCCESS;
        });
        break;
      case PM_API.PM_FPGA_LOAD:
        status = this.fpgaLoad(vm, arg0, arg1, arg2);
        break;
      default:
        // TF-A's pm_smc_handler answers an unknown PM API with SMC_UNK.
        return res.ret(-1);
    }
    res.setWords(0, status, payload[0]!);
    res.setWords(1, payload[1]!, payload[2]!);
  }

  private request(vm: string, nodeId: number, capabilities: number, qos: number): number {
    const n = this.nodes.get(nodeId);
    if (!n) return XST_PM.INVALID_NODE;
    if (n.owner === vm) return XST_PM.DOUBLE_REQ;
    if (n.owner !== null) return XST_PM.NO_ACCESS;
    n.owner = vm;
    n.capabilities = capabilities;
    n.qos = qos;
    return XST_PM.SUCCESS;
  }

  /** Runs `op` on a node the caller holds; the EEMI errors otherwise. */
  private withNode(vm: string, n: NodeState | undefined, op: (n: NodeState) => number): number {
    if (!n) return XST_PM.INVALID_NODE;
    if (n.owner !== vm) {
      if (n.owner !== null) this.onRefusal?.(vm, `${n.spec.name} is held by another VM`);
      return XST_PM.NO_ACCESS;
    }
    return op(n);
  }

  /** PM_FPGA_LOAD: arg0:arg1 = bitstream address (low:high), arg2 = size. The monitor reads it from memory. */
  private fpgaLoad(vm: string, lo: number, hi: number, size: number): number {
    if (!this.memory || size === 0 || size > 64 << 20) return XST_PM.INTERNAL;
    const pa = (BigInt(hi) << 32n) | BigInt(lo);
    const data = this.memory.read(vm, pa, size);
    if (typeof data === "string") {
      this.onRefusal?.(vm, data);
      return XST_PM.NO_ACCESS;
    }
    let checksum = 0;
    for (const b of data) checksum = (Math.imul(checksum, 31) + b) >>> 0;
    this.fpga = { vm, bytes: size, checksum };
    return XST_PM.SUCCESS;
  }
}
