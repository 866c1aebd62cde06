/**
 * FF-A in the config (DEN0077): the modelled SPMC's secure partitions (platform.spmc) and the VMs that use
 * FF-A (`tee: ffa`). What is checked here is what the mediator and the SPMC rely on and cannot check
 * themselves: endpoint IDs that cannot collide, partitions that name VMs that exist, and peers that speak
 * FF-A too.
 */
import { DEFAULT_SMCCC_VERSION, type ConfigError, type RawConfig } from "./config.js";
import { SMCCC_VERSIONS } from "../smccc/version.js";

import { OPTEE_FFA_UUID } from "../smccc/optee/abi.js";

export { OPTEE_FFA_UUID };

/** The test partition's UUID when the config gives none (smcvisor's own; it names no real partition). */
export const TEST_PARTITION_UUID = "5f1a3c9e-2b7d-4e60-9c84-a1d3e5f70b26";

/**
 * FF-A VMs' endpoint IDs: bit 15 clear, since bit 15 set marks the secure world's endpoints (DEN0077's
 * endpoint IDs; Linux and Xen test the same bit), and 0 is the hypervisor's.
 */
export const FFA_VM_ID_MAX = 0x7fff;

export interface PartitionConfig {
  readonly name: string;
  /** Endpoint ID, 0x8001-0xFFFE. */
  readonly id: number;
  /** Lower-case 8-4-4-4-12. */
  readonly uuid: string;
  readonly runs: "optee" | "test";
  /** VMs that may send it direct requests and share memory with it. */
  readonly vms: readonly string[];
  /** Their endpoint IDs (their VM IDs), in the same order. */
  readonly vmIds: readonly number[];
}

export interface SpmcConfig {
  readonly partitions: readonly PartitionConfig[];
}

/** The SPMC's partitions with defaults filled in, and what is wrong with them. */
export function spmcConfig(raw: RawConfig, vmIds: ReadonlyMap<string, number>, errors: ConfigError[]): SpmcConfig | null {
  const spmc = raw.platform.spmc;
  if (!spmc) return null;
  const names = new Map<string, number>(), ids = new Map<number, number>(), uuids = new Map<string, number>();
  const partitions = spmc.partitions.map((p, i): PartitionConfig => {
    const path = `platform.spmc.partitions[${i}]`;
    const uuid = (p.uuid ?? (p.runs === "optee" ? OPTEE_FFA_UUID : TEST_PARTITION_UUID)).toLowerCase();
    const seen = (map: Map<string | number, number>, key: string | number, field: string, what: string) => {
      const first = map.get(key);
      if (first !== undefined) errors.push({ path: `${path}.${field}`, message: `${what} is already platform.spmc.partitions[${first}]'s` });
      else map.set(key, i);
    };
    seen(names as Map<string | number, number>, p.name, "name", `the name ${p.name}`);
    seen(ids as Map<string | number, number>, p.id, "id", `ID 0x${p.id.toString(16)}`);
    seen(uuids as Map<string | number, number>, uuid, "uuid", `UUID ${uuid}${p.uuid === undefined ? " (the default for this kind of partition: give one)" : ""}`);
    if (p.runs === "optee" && !raw.platform.tee) errors.push({ path: `${path}.runs`, message: "an OP-TEE partition runs the platform's OP-TEE: set platform.tee" });
    if (p.runs === "optee" && uuid !== OPTEE_FFA_UUID) {
      errors.push({ path: `${path}.uuid`, message: `OP-TEE's partition has OP-TEE's UUID, ${OPTEE_FFA_UUID}, by which Linux's optee driver finds it: leave uuid out` });
    }
    p.vms.forEach((vm, k) => {
      const v = Object.hasOwn(raw.vms, vm) ? raw.vms[vm]! : undefined;
      if (v === undefined) errors.push({ path: `${path}.vms[${k}]`, message: `no VM named "${vm}"` });
      else if (mediatorOf(v.tee) !== "ffa") errors.push({ path: `${path}.vms[${k}]`, message: `${vm} does not use FF-A (give it tee: ffa)` });
    });
    return { name: p.name, id: p.id, uuid, runs: p.runs, vms: p.vms, vmIds: p.vms.map((vm) => vmIds.get(vm) ?? 0) };
  });
  if (partitions.filter((p) => p.runs === "optee").length > 1) {
    errors.push({ path: "platform.spmc.partitions", message: "one OP-TEE runs in the secure world: at most one partition runs optee" });
  }
  return { partitions };
}

export function mediatorOf(tee: RawConfig["vms"][string]["tee"]): "optee" | "ffa" | null {
  return tee === undefined ? null : typeof tee === "string" ? tee : tee.mediator;
}

/** FF-A VMs: the platform has an SPMC, their IDs are normal-world endpoint IDs, their peers speak FF-A. */
export function ffaVmProblems(raw: RawConfig, ids: ReadonlyMap<string, number>): ConfigError[] {
  const errors: ConfigError[] = [];
  for (const [name, vm] of Object.entries(raw.vms)) {
    if (mediatorOf(vm.tee) !== "ffa") continue;
    if (!raw.platform.spmc) errors.push({ path: `vms.${name}.tee`, message: "the platform has no SPMC (platform.spmc)" });
    // FF-A passes arguments and results in x0-x17 (DEN0077 v1.1+ over SMCCC 1.2), and Linux's FF-A driver
    // does not load unless SMCCC_VERSION says 1.2 or later.
    const smccc = (vm.smccc ?? raw.defaults.smccc ?? DEFAULT_SMCCC_VERSION) as keyof typeof SMCCC_VERSIONS;
    if (SMCCC_VERSIONS[smccc] < SMCCC_VERSIONS["1.2"]) {
      errors.push({ path: vm.smccc !== undefined ? `vms.${name}.smccc` : "defaults.smccc", message: `an FF-A VM needs SMCCC 1.2 or later (FF-A uses x0-x17; Linux's FF-A driver refuses SMCCC ${smccc})` });
    }
    const id = ids.get(name);
    if (id !== undefined && id > FFA_VM_ID_MAX) {
      errors.push({ path: `vms.${name}.id`, message: `an FF-A VM's endpoint ID is at most 0x${FFA_VM_ID_MAX.toString(16)} (bit 15 marks the secure world's), not 0x${id.toString(16)}` });
    }
    const peers = typeof vm.tee === "object" && vm.tee.mediator === "ffa" ? (vm.tee.peers ?? []) : [];
    peers.forEach((peer, k) => {
      const path = `vms.${name}.tee.peers[${k}]`;
      const p = Object.hasOwn(raw.vms, peer) ? raw.vms[peer]! : undefined;
      if (peer === name) errors.push({ path, message: "a VM is not its own peer" });
      else if (p === undefined) errors.push({ path, message: `no VM named "${peer}"` });
      else if (mediatorOf(p.tee) !== "ffa") errors.push({ path, message: `${peer} does not use FF-A (give it tee: ffa)` });
      if (peers.indexOf(peer) !== k) errors.push({ path, message: `${peer} is already a peer` });
    });
  }
  return errors;
}
