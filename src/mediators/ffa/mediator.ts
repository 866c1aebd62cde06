/**
 * The FF-A mediator (DEN0077 v1.0-v1.2): VMs speak FF-A to the hypervisor, which checks and translates
 * their calls and speaks FF-A itself, as endpoint 0, to the SPMC (the physical FF-A instance, §4.1).
 * Xen's xen/arch/arm/tee/ffa*.c is the reference design; the feature table is in README.md.
 *
 * - Every VM negotiates its own version (§13.2.1) and gets the v1.0 or v1.1+ layouts it asked for.
 * - A VM sees and reaches only the partitions its config lets it use and its peers; its endpoint ID is its
 *   VM ID, and every ID it puts in a register or a descriptor is checked against it.
 * - Guest RX/TX contents are copied once into the mediator's memory before any check (memory.ts); guest
 *   addresses are translated to physical ones and refused unless they are the VM's own RAM.
 * - Everything a VM holds is bounded (limits.ts) and freed at destroy and reset, its partitions told.
 */
import type { ServiceClaim } from "../../policy/compile.js";
import type { VmConfig } from "../../policy/load.js";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, HandlerReturn } from "../../router/ports.js";
import {
  FFA_FEATURES_FUNCTION_BIT,
  FFA_FEATURES_RXTX_MAP,
  FFA_FRAMEWORK_MSG,
  FFA_ID_HYPERVISOR,
  FFA_ID_SPMC,
  FFA_MSG_FLAG_FRAMEWORK,
  FFA_PAGE_SIZE,
  FFA_PARTITION_PROP,
  FFA_RET,
  FFA_VERSION_1_0,
  FFA_VERSION_1_1,
  FFA_VERSION_1_2,
  ffaEndpoints,
  ffaVersionMajor,
  ffaVersionValid,
} from "../../smccc/ffa/abi.js";
import { decodePartitionInfo, type FfaPartitionInfo } from "../../smccc/ffa/partition-info.js";
import { CALL_TYPE } from "../../smccc/fid.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { OEN } from "../../smccc/owners.js";
import type { EnableResult, Mediator } from "../mediator.js";
import { DEFAULT_FFA_LIMITS, type FfaMediatorLimits } from "./limits.js";
import { FfaMemory, type Stuck } from "./memory.js";
import { Notifications } from "./notifications.js";
import { msgSend2 } from "./indirect-messaging.js";
import { directReq, run } from "./messaging.js";
import { directResp, dropMessaging, msgWait } from "./vm-messaging.js";
import { partitionInfoGet, partitionInfoGetRegs } from "./partition-info.js";
import { rxRelease, rxtxMap, rxtxUnmap } from "./rxtx.js";
import { type FfaMediatorHost, SpmcPort } from "./spmc-port.js";
import { FFA_ERROR, ffaError, ffaSuccess, type FfaVm, reply } from "./vm.js";

/** The version the mediator implements and answers FFA_VERSION with. */
export const FFA_MEDIATOR_VERSION = FFA_VERSION_1_2;

/** Which VMs may use a partition (platform.spmc.partitions[].vms). */
export interface FfaPartitionAccess {
  readonly id: number;
  readonly vms: readonly string[];
}

export interface FfaMediatorOptions {
  readonly partitions: readonly FfaPartitionAccess[];
  readonly limits?: Partial<FfaMediatorLimits>;
}

/** The owner of the hypervisor's own RX/TX pages in the heap: shared with the SPMC for every VM's calls. */
export const FFA_HYPERVISOR_OWNER = "hypervisor";

/** The VM a VmConfig describes, with FF-A's config (the lead's `ffa` field) read where it is given. */
type FfaVmConfig = VmConfig & { readonly ffa?: { readonly peers: readonly string[] } | null };

export class FfaMediator implements Mediator {
  readonly name = "ffa";
  present = false;
  /** The SPMC's version as negotiated at probe, its ID, and the partitions it reported. */
  spmcVersion = 0;
  spmcId = FFA_ID_SPMC;
  partitions: readonly FfaPartitionInfo[] = [];
  /** The hypervisor's RX/TX pair mapped with the SPMC (heap pages). */
  hypTx = 0n;
  hypRx = 0n;
  readonly limits: FfaMediatorLimits;
  private readonly vms = new Map<string, FfaVm>();
  private readonly byId = new Map<number, FfaVm>();
  private readonly access: ReadonlyMap<number, ReadonlySet<string>>;
  readonly own: SpmcPort;
  readonly memory: FfaMemory;
  private readonly notifications: Notifications;
  private notificationsOffered = false;

  constructor(readonly host: FfaMediatorHost, options: FfaMediatorOptions) {
    this.limits = { ...DEFAULT_FFA_LIMITS, ...options.limits };
    this.access = new Map(options.partitions.map((p) => [p.id, new Set(p.vms)]));
    this.own = new SpmcPort(host, "ffa mediator", null);
    this.memory = new FfaMemory(this);
    this.notifications = new Notifications(this);
  }

  claims(vm: VmConfig): ServiceClaim[] {
    if (!(vm as FfaVmConfig).ffa) return [];
    // FF-A: OEN 4 (standard secure service), function numbers 0x60-0xFF, fast calls (DEN0077 v1.2 §11.1).
    const types = vm.aarch32 ? [CALL_TYPE.fast32] : [CALL_TYPE.fast32, CALL_TYPE.fast64];
    return [{ service: "ffa", owner: OEN.STD_SECURE, types, first: 0x60, last: 0xff, mediator: "ffa" }];
  }

  // ---------------------------------------------------------------------------------------------------
  // Lifecycle

  probe(): boolean {
    this.present = false;
    const own = this.own;
    own.call(F.FFA_VERSION.smc32, FFA_MEDIATOR_VERSION);
    const v = own.w(0);
    // The hypervisor needs v1.1+ of the SPMC (the v1.1 partition info and descriptor layouts).
    if (own.sw(0) < 0 || ffaVersionMajor(v) !== 1 || v < FFA_VERSION_1_1) return false;
    this.spmcVersion = Math.min(v, FFA_MEDIATOR_VERSION);
    const tx = this.host.heap.alloc(FFA_HYPERVISOR_OWNER), rx = this.host.heap.alloc(FFA_HYPERVISOR_OWNER);
    if (tx === null || rx === null) return this.unprobe(tx, rx);
    own.call(F.FFA_RXTX_MAP.smc64, tx, rx, 1);
    if (own.w(0) === FFA_ERROR) return this.unprobe(tx, rx);
    this.hypTx = tx;
    this.hypRx = rx;
    const parts = this.spmcPartitions(0, 0, 0, 0);
    if (parts === null) return false;
    this.partitions = parts;
    own.call(F.FFA_SPM_ID_GET.smc32);
    if (own.w(0) !== FFA_ERROR) this.spmcId = own.w(2) & 0xffff;
    own.call(F.FFA_FEATURES.smc32, F.FFA_NOTIFICATION_BITMAP_CREATE.smc32);
    this.notificationsOffered = own.w(0) !== FFA_ERROR;
    this.present = true;
    return true;
  }

  private unprobe(tx: bigint | null, rx: bigint | null): false {
    if (tx !== null) this.host.heap.free(tx);
    if (rx !== null) this.host.heap.free(rx);
    return false;
  }

  /**
   * FFA_PARTITION_INFO_GET to the SPMC (by UUID words, nil for all), its answer read out of the
   * hypervisor's RX buffer, which is then released (§13.9: the caller owns RX until FFA_RX_RELEASE).
   * null when the SPMC refuses; the FFA_ERROR code is then in the port's w2.
   */
  spmcPartitions(u0: number, u1: number, u2: number, u3: number, port = this.own): FfaPartitionInfo[] | null {
    port.call(F.FFA_PARTITION_INFO_GET.smc32, u0, u1, u2, u3, 0);
    if (port.w(0) === FFA_ERROR) return null;
    const count = port.w(2), size = port.w(3);
    const bytes = size > 0 && count <= FFA_PAGE_SIZE / size ? this.host.heap.read(this.hypRx, count * size) : null;
    port.call(F.FFA_RX_RELEASE.smc32, 0);
    return bytes === null ? [] : (decodePartitionInfo(bytes, count, size) ?? []);
  }

  enable(vm: VmConfig): EnableResult {
    const cfg = (vm as FfaVmConfig).ffa;
    if (!this.present) return { ok: false, message: "there is no FF-A SPMC in the secure world" };
    if (this.vms.has(vm.name)) return { ok: false, message: "FF-A is already enabled for this VM" };
    // Bit 15 set names the secure world and 0 the hypervisor (DEN0077 v1.2 §6.1).
    if (!Number.isInteger(vm.id) || vm.id < 1 || vm.id > 0x7fff) return { ok: false, message: `VM ID ${vm.id} is not a normal-world FF-A endpoint ID (1-0x7fff)` };
    const other = this.byId.get(vm.id);
    if (other) return { ok: false, message: `VM ID ${vm.id} is already the FF-A endpoint ID of VM ${other.name}` };
    const port = new SpmcPort(this.host, `ffa mediator for ${vm.name}`, vm.name);
    const st: FfaVm = {
      name: vm.name, id: vm.id, vcpus: vm.vcpus, aarch32: vm.aarch32, peers: cfg?.peers ?? [], version: 0, locked: false, port,
      rxtx: null, rxFull: false, bitmap: false, lent: new Map(), fragmented: null, pagesInUse: new Set(), retrieved: new Map(), notificationPending: false, rxBufferFull: false, parked: null, serving: null, awaiting: null,
    };
    if (this.notificationsOffered) {
      port.call(F.FFA_NOTIFICATION_BITMAP_CREATE.smc32, vm.id, vm.vcpus);
      if (port.w(0) === FFA_ERROR) return { ok: false, message: `the SPMC refused a notification bitmap for the VM (FFA_ERROR ${port.sw(2)})` };
      st.bitmap = true;
    }
    // VM_CREATED to every partition that asked for it (properties bit 6; Xen ffa_partinfo_domain_init).
    const told: number[] = [];
    for (const p of this.partitions) {
      if (!(p.properties & FFA_PARTITION_PROP.VM_CREATED_MSG)) continue;
      const status = this.vmAvailability(port, p.id, vm.id, FFA_FRAMEWORK_MSG.VM_CREATED_REQ);
      if (status !== 0) {
        this.tellDestroyed(port, vm.id, told);
        this.destroyBitmap(st);
        return { ok: false, message: `partition 0x${p.id.toString(16)} refused VM_CREATED (${status})` };
      }
      told.push(p.id);
    }
    this.vms.set(vm.name, st);
    this.byId.set(vm.id, st);
    this.memory.retryStuck();
    return { ok: true };
  }

  /**
   * A VM availability framework message (DEN0077 v1.2 §18.2): DIRECT_REQ_32 from the hypervisor with the
   * VM ID in w5; the partition answers DIRECT_RESP_32 with the matching response type and a status in w3.
   */
  private vmAvailability(port: SpmcPort, sp: number, vmId: number, type: number): number {
    port.call(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(FFA_ID_HYPERVISOR, sp), FFA_MSG_FLAG_FRAMEWORK | type, 0, 0, vmId);
    if (port.w(0) === FFA_ERROR) return port.sw(2);
    if (port.w(0) !== F.FFA_MSG_SEND_DIRECT_RESP.smc32 || port.w(2) !== ((FFA_MSG_FLAG_FRAMEWORK | (type + 1)) >>> 0)) return FFA_RET.ABORTED;
    return port.sw(3);
  }

  /** VM_DESTROYED to the partitions that asked for it (bit 7), or to `only` of them. */
  private tellDestroyed(port: SpmcPort, vmId: number, only?: readonly number[]): void {
    for (const p of this.partitions) {
      if (!(p.properties & FFA_PARTITION_PROP.VM_DESTROYED_MSG) || (only && !only.includes(p.id))) continue;
      const status = this.vmAvailability(port, p.id, vmId, FFA_FRAMEWORK_MSG.VM_DESTROYED_REQ);
      if (status !== 0) this.host.log(FFA_HYPERVISOR_OWNER, `ffa:vm-destroyed:${p.id}`, `smcvisor: ffa mediator: partition 0x${p.id.toString(16)} answered VM_DESTROYED for VM ${vmId} with ${status}`);
    }
  }

  private destroyBitmap(st: FfaVm): void {
    if (!st.bitmap) return;
    st.port.call(F.FFA_NOTIFICATION_BITMAP_DESTROY.smc32, st.id);
    st.bitmap = false;
  }

  /**
   * Frees everything held for the VM: its peer transactions (as lender and borrower) and fragments here;
   * its partitions are told VM_DESTROYED and then what it shared or lent them is reclaimed (Xen's order,
   * ffa_domain_teardown); a region a partition still holds is reported and retried later (memory.ts).
   */
  destroy(vm: string): void {
    const st = this.vms.get(vm);
    if (!st) return;
    dropMessaging(st);
    this.memory.dropPeers(st);
    this.memory.abortFragmented(st);
    this.tellDestroyed(st.port, st.id);
    this.memory.reclaimAll(st);
    this.destroyBitmap(st);
    st.rxtx = null;
    st.rxFull = false;
    this.vms.delete(vm);
    this.byId.delete(st.id);
    this.memory.retryStuck();
  }

  reset(vm: VmConfig): EnableResult {
    if (!this.vms.has(vm.name)) return { ok: false, message: "FF-A is not enabled for this VM" };
    this.destroy(vm.name);
    return this.enable(vm);
  }

  counters(vm: string): Record<string, number> {
    const st = this.vms.get(vm);
    return {
      rxtx: st?.rxtx ? 1 : 0,
      rxFull: st?.rxFull ? 1 : 0,
      transactions: st?.lent.size ?? 0,
      fragmented: st?.fragmented ? 1 : 0,
      pages: st?.pagesInUse.size ?? 0,
      retrieved: st?.retrieved.size ?? 0,
      messaging: st ? (st.parked ? 1 : 0) + (st.serving ? 1 : 0) + (st.awaiting ? 1 : 0) : 0,
    };
  }

  /** Regions partitions still hold after their lender went (reported, retried at every destroy, reset and enable). */
  get stuck(): readonly Stuck[] {
    return this.memory.stuck;
  }

  // ---------------------------------------------------------------------------------------------------
  // Who may talk to whom

  vm(name: string): FfaVm | undefined {
    return this.vms.get(name);
  }
  vmById(id: number): FfaVm | undefined {
    return this.byId.get(id);
  }

  /** Whether `id` is a partition the SPMC reported and the config lets this VM use. */
  mayUsePartition(st: FfaVm, id: number): boolean {
    return this.access.get(id)?.has(st.name) === true && this.partitions.some((p) => p.id === id);
  }

  /** The peer VM with endpoint ID `id`, if both name each other as peers (vms.<name>.tee.peers). */
  peer(st: FfaVm, id: number): FfaVm | undefined {
    const other = this.byId.get(id);
    return other && other !== st && st.peers.includes(other.name) && other.peers.includes(st.name) ? other : undefined;
  }

  /** Refuses a call with `code` and reports why (rate-limited per VM and code, not per detail). */
  refuse(st: FfaVm, res: SmcResult, code: number, why: string): void {
    this.host.log(st.name, `ffa:${code}`, `smcvisor: ffa mediator: ${st.name}: ${why}`);
    ffaError(res, code);
  }

  /**
   * Writes `bytes` into the VM's RX buffer and gives the buffer to the VM (§7.2.2.4: the producer may not
   * write again until the consumer's FFA_RX_RELEASE). 0, or the FFA_ERROR code that refuses it.
   */
  writeRx(st: FfaVm, bytes: Uint8Array): number {
    if (!st.rxtx) return FFA_RET.DENIED;
    if (st.rxFull) return FFA_RET.BUSY;
    if (bytes.length > st.rxtx.pages * FFA_PAGE_SIZE) return FFA_RET.NO_MEMORY;
    const mem = this.host.memory(st.name);
    if (!mem || !mem.write(st.rxtx.rx, bytes)) return FFA_RET.ABORTED;
    st.rxFull = true;
    return 0;
  }

  // ---------------------------------------------------------------------------------------------------
  // Calls

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): HandlerReturn {
    const st = this.vms.get(origin.vmName);
    // A VM without FF-A enabled gets -1, as for any call it may not make.
    if (!st) return res.ret(-1);
    const fid = call.fid;
    if (fid === F.FFA_VERSION.smc32) return this.version(st, call, res);
    // Nothing before FFA_VERSION (§13.2.1: the version is negotiated first; Xen ffa_negotiate_version).
    if (st.version === 0) return this.refuse(st, res, FFA_RET.NOT_SUPPORTED, `FF-A call 0x${fid.toString(16)} before FFA_VERSION`);
    st.locked = true;
    if (this.offered(st, fid) === null) return ffaError(res, FFA_RET.NOT_SUPPORTED);
    switch (fid) {
      case F.FFA_FEATURES.smc32:
        return this.features(st, call, res);
      case F.FFA_ID_GET.smc32:
        return ffaSuccess(res, st.id);
      case F.FFA_SPM_ID_GET.smc32:
        return ffaSuccess(res, this.spmcId);
      case F.FFA_RXTX_MAP.smc32:
      case F.FFA_RXTX_MAP.smc64:
        return rxtxMap(this, st, call, res);
      case F.FFA_RXTX_UNMAP.smc32:
        return rxtxUnmap(this, st, call, res);
      case F.FFA_RX_RELEASE.smc32:
        return rxRelease(this, st, call, res);
      case F.FFA_PARTITION_INFO_GET.smc32:
        return partitionInfoGet(this, st, call, res);
      case F.FFA_PARTITION_INFO_GET_REGS.smc64:
        return partitionInfoGetRegs(this, st, call, res);
      case F.FFA_MSG_SEND_DIRECT_REQ.smc32:
      case F.FFA_MSG_SEND_DIRECT_REQ.smc64:
      case F.FFA_MSG_SEND_DIRECT_REQ2.smc64:
        return directReq(this, st, call, res);
      case F.FFA_RUN.smc32:
        return run(this, st, call, res);
      case F.FFA_MSG_WAIT.smc32:
        return msgWait(this, st, call, res);
      case F.FFA_MSG_SEND2.smc32:
        return msgSend2(this, st, call, res);
      case F.FFA_MSG_SEND_DIRECT_RESP.smc32:
      case F.FFA_MSG_SEND_DIRECT_RESP.smc64:
      case F.FFA_MSG_SEND_DIRECT_RESP2.smc64:
        return directResp(this, st, call, res);
    }
    if (this.memory.handles(fid)) return this.memory.handle(st, call, res);
    this.notifications.handle(st, call, res);
  }

  /**
   * FFA_VERSION (§13.2.1): the mediator's version; the version the VM asked for (its minor clamped to ours)
   * is what it gets until its first other call fixes it; then asking for another is NOT_SUPPORTED. A major
   * version other than 1, or bit 31 set, is NOT_SUPPORTED in w0 itself, -1 over all 64 bits of x0 in the
   * result words (Linux's ffa_version_check compares the unsigned long a0 with FFA_RET_NOT_SUPPORTED).
   */
  private version(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const asked = call.w(1);
    if (!ffaVersionValid(asked) || ffaVersionMajor(asked) !== 1) {
      res.ret(FFA_RET.NOT_SUPPORTED);
      return;
    }
    const version = Math.max(FFA_VERSION_1_0, Math.min(asked, FFA_MEDIATOR_VERSION));
    // Once fixed, another version is NOT_SUPPORTED (§13.2.1; the FF-A ACS's ffa_version_negotiation checks it).
    if (st.locked && version !== st.version) {
      res.ret(FFA_RET.NOT_SUPPORTED);
      return;
    }
    st.version = version;
    reply(res, FFA_MEDIATOR_VERSION);
  }

  /**
   * What FFA_FEATURES reports for a function ID, for this VM's version: its properties (w2), or null when
   * not offered. Dispatch asks the same question, so the two cannot disagree.
   */
  offered(st: FfaVm, fid: number): number | null {
    const v11 = st.version >= FFA_VERSION_1_1, v12 = st.version >= FFA_VERSION_1_2;
    switch (fid) {
      // Results a VM is given (the FF-A ACS's ffa_features lists ERROR and INTERRUPT as mandatory).
      case F.FFA_ERROR.smc32:
      case F.FFA_INTERRUPT.smc32:
      case F.FFA_SUCCESS.smc32:
      case F.FFA_VERSION.smc32:
      case F.FFA_FEATURES.smc32:
      case F.FFA_ID_GET.smc32:
      case F.FFA_RX_RELEASE.smc32:
      case F.FFA_RXTX_UNMAP.smc32:
      case F.FFA_PARTITION_INFO_GET.smc32:
      case F.FFA_MSG_SEND_DIRECT_REQ.smc32:
      case F.FFA_MSG_SEND_DIRECT_RESP.smc32:
      case F.FFA_MSG_WAIT.smc32:
      case F.FFA_RUN.smc32:
        return 0;
      // No SMC64 ID is ever given to an AArch32 caller (SMCCC; Xen's handle_features refuses them all).
      case F.FFA_SUCCESS.smc64:
      case F.FFA_MSG_SEND_DIRECT_REQ.smc64:
      case F.FFA_MSG_SEND_DIRECT_RESP.smc64:
      case F.FFA_RXTX_MAP.smc64:
        return st.aarch32 ? null : this.rxtxProperties(fid, v12);
      case F.FFA_RXTX_MAP.smc32:
        return this.rxtxProperties(fid, v12);
      case F.FFA_SPM_ID_GET.smc32:
      case F.FFA_MSG_SEND2.smc32:
        return v11 ? 0 : null;
      case F.FFA_MSG_SEND_DIRECT_REQ2.smc64:
      case F.FFA_MSG_SEND_DIRECT_RESP2.smc64:
      case F.FFA_PARTITION_INFO_GET_REGS.smc64:
        return v12 && !st.aarch32 ? 0 : null;
    }
    const mem = this.memory.offered(st, fid);
    if (mem !== undefined) return mem;
    return this.notificationsOffered && v11 ? this.notifications.offered(st, fid) : null;
  }

  private rxtxProperties(fid: number, v12: boolean): number {
    if (fid !== F.FFA_RXTX_MAP.smc32 && fid !== F.FFA_RXTX_MAP.smc64) return 0;
    // 4 KiB minimum; v1.2 adds the maximum in pages in [31:16] (§13.3, Table 13.13).
    return (FFA_FEATURES_RXTX_MAP.MIN_SIZE_4K | (v12 ? this.limits.rxtxPages << FFA_FEATURES_RXTX_MAP.MAX_PAGES_SHIFT : 0)) >>> 0;
  }

  /** FFA_FEATURES (§13.3): a function ID (bit 31 set) it offers, or NOT_SUPPORTED; feature IDs are not offered (no interrupts to give). */
  private features(st: FfaVm, call: SmcCall, res: SmcResult): void {
    const id = call.w(1);
    if ((id & FFA_FEATURES_FUNCTION_BIT) === 0) return ffaError(res, FFA_RET.NOT_SUPPORTED);
    const props = this.offered(st, id);
    if (props === null) return ffaError(res, FFA_RET.NOT_SUPPORTED);
    ffaSuccess(res, props);
  }
}
