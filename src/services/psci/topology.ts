/**
 * A VM's vCPU topology as MPIDR affinity values. smcvisor numbers vCPUs the way QEMU's `virt` machine
 * numbers CPUs (hw/arm/virt.c, virt_cpu_mp_affinity: clusters of 8), so a vCPU has the same MPIDR
 * in-process and under QEMU: Aff0 = index % 8, Aff1 = index / 8, Aff2 = Aff3 = 0.
 */
export const CPUS_PER_CLUSTER = 8;

/** MPIDR bits PSCI lets a caller set (DEN0022 §5.1.4): Aff3 [39:32], Aff2 [23:16], Aff1 [15:8], Aff0 [7:0]. */
export const MPIDR_AFFINITY_MASK = 0xff_00ff_ffffn;

export function mpidrOf(index: number): bigint {
  return (BigInt(Math.floor(index / CPUS_PER_CLUSTER)) << 8n) | BigInt(index % CPUS_PER_CLUSTER);
}

/** The vCPU index with exactly this affinity, or -1 (unknown MPIDR, or bits outside the affinity fields). */
export function indexOfMpidr(mpidr: bigint, vcpus: number): number {
  if ((mpidr & ~MPIDR_AFFINITY_MASK) !== 0n) return -1;
  const aff0 = Number(mpidr & 0xffn), aff1 = Number((mpidr >> 8n) & 0xffn);
  if ((mpidr >> 16n) !== 0n || aff0 >= CPUS_PER_CLUSTER) return -1;
  const index = aff1 * CPUS_PER_CLUSTER + aff0;
  return index < vcpus ? index : -1;
}

/**
 * The affinity fields of the MPIDR's low word that AFFINITY_INFO compares at each level (DEN0022 §5.7, as
 * KVM's psci_affinity_mask): level 0 compares Aff2-Aff0, level 1 ignores Aff0, level 2 ignores Aff1 and
 * Aff0, level 3 ignores all three. Aff3 (the high word) is compared at every level.
 */
export const AFFINITY_LEVEL_MASK_LO = [0xff_ffff, 0xff_ff00, 0xff_0000, 0] as const;

/** The low word of a vCPU's MPIDR (Aff2-Aff0; its Aff3 is 0). */
export function mpidrLoOf(index: number): number {
  return ((index / CPUS_PER_CLUSTER) << 8) | index % CPUS_PER_CLUSTER;
}
