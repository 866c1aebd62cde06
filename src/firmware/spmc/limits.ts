/**
 * The modelled SPMC's bounds. Everything the normal world can make the SPMC hold is counted against one
 * of these, so no VM (through the hypervisor) grows the secure world's state without a limit; a call
 * that would pass one is refused with FFA_ERROR(NO_MEMORY), as a real SPMC out of its heap would answer.
 */
export interface SpmcLimits {
  /** VMs the SPMC tracks at once (VM_CREATED or NOTIFICATION_BITMAP_CREATE). */
  readonly maxVms: number;
  /** Outstanding memory transactions (shared or lent, complete or in fragments) per VM. */
  readonly maxSharesPerVm: number;
  /** 4 KiB pages one transaction may describe. */
  readonly maxPagesPerShare: number;
  /** 4 KiB pages of all a VM's outstanding transactions together. */
  readonly maxPagesPerVm: number;
  /** Bytes of one memory transaction descriptor (the sum of its fragments). */
  readonly maxDescriptorBytes: number;
  /** Receivers one transaction may name. */
  readonly maxReceivers: number;
  /** Pages of the hypervisor's RX and of its TX buffer (FFA_RXTX_MAP's page count). */
  readonly maxRxTxPages: number;
  /** Nested retrievals of one region by one partition before it relinquishes. */
  readonly maxRetrievals: number;
}

export const SPMC_DEFAULT_LIMITS: SpmcLimits = {
  // A few dozen VMs is more than any machine this models; TF-A's EL3 SPMC and Hafnium size their VM
  // tables statically too.
  maxVms: 64,
  // Linux's optee driver shares one region per registered buffer and keeps few at once; Xen allows 32
  // (FFA_MAX_SHM_COUNT). Twice that leaves room for a client that keeps several sessions busy.
  maxSharesPerVm: 64,
  // 16 MiB in one transaction: well above the 1 MiB benchmark and Xen's 1 MiB (FFA_MAX_SHM_PAGE_COUNT),
  // and its descriptor (at worst one constituent per page, 64 KiB) fits maxDescriptorBytes.
  maxPagesPerShare: 4096,
  // 64 MiB of a VM's memory lent or shared at once.
  maxPagesPerVm: 16384,
  // One constituent per page of the largest transaction, plus headers and receivers.
  maxDescriptorBytes: 4096 * 16 + 4096,
  // Linux shares with one partition at a time; Hafnium's MAX_MEM_SHARE_RECIPIENTS is 2; a little more.
  maxReceivers: 4,
  // FF-A v1.2 lets FEATURES(RXTX_MAP) say the maximum; the hypervisor maps one page (as Xen does).
  maxRxTxPages: 16,
  // TF-A's EL3 SPMC counts retrievals per region; a partition that retrieves this often without
  // relinquishing is broken.
  maxRetrievals: 255,
};
