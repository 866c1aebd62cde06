/**
 * What one VM may hold through the FF-A mediator: every table the mediator keeps for a VM is bounded here,
 * so a guest cannot grow the hypervisor's memory (docs/threat-model.md). Xen's mediator keeps the same kind
 * of limits (xen/arch/arm/tee/ffa_shm.c FFA_MAX_SHM_PAGE_COUNT, FFA_MAX_SHM_COUNT); ours are larger where
 * the issue asks for more (1 MiB shares, several borrowers, fragments).
 */
export interface FfaMediatorLimits {
  /** Pages of one RX or TX buffer (FFA_RXTX_MAP w3); FFA_FEATURES reports it to v1.2 VMs. */
  readonly rxtxPages: number;
  /** Memory transactions a VM has open as lender (shared or lent, to SPs or peers, fragments included). */
  readonly transactions: number;
  /** 4 KiB pages a VM has shared or lent at once, all transactions together. */
  readonly pages: number;
  /** Receivers of one transaction. */
  readonly receivers: number;
  /**
   * Bytes of one transaction descriptor (all fragments): the mediator holds a copy until the transaction
   * is complete. 64 KiB is 4,000 constituents, a 16 MiB share of scattered pages.
   */
  readonly descriptorBytes: number;
  /** Transactions of peer VMs this VM has retrieved at once, as borrower. */
  readonly retrieved: number;
}

export const DEFAULT_FFA_LIMITS: FfaMediatorLimits = {
  rxtxPages: 4,
  transactions: 64,
  // 16 MiB: the benchmark shares 1 MiB; Xen allows 512 KiB per share and 32 shares.
  pages: 4096,
  receivers: 4,
  descriptorBytes: 64 * 1024,
  retrieved: 64,
};

