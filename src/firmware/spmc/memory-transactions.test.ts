import { describe, expect, it } from "vitest";
import { FFA_MEM_ATTR_NORMAL_WB_IS, FFA_MEM_PERM, FFA_MEM_TRANSACTION, FFA_RET } from "../../smccc/ffa/abi.js";
import { encodeMemTransaction, type FfaMemRange } from "../../smccc/ffa/descriptors.js";
import { FakeSpmcMemory } from "./harness.js";
import { SPMC_DEFAULT_LIMITS } from "./limits.js";
import { MemoryTransactions } from "./memory-transactions.js";

const VM = 1, SP = 0x8001;
const BASE = 0x8000_0000n;

/** `count` single-page constituents from page `first`: the most constituents a page count can make. */
function singles(first: number, count: number): FfaMemRange[] {
  return Array.from({ length: count }, (_, i) => ({ address: BASE + BigInt(first + i) * 4096n, pageCount: 1 }));
}

function setup() {
  const mem = new FakeSpmcMemory();
  mem.give(BASE, SPMC_DEFAULT_LIMITS.maxPagesPerVm + 4096, VM);
  const t = new MemoryTransactions(mem, SPMC_DEFAULT_LIMITS, { vmKnown: (vm) => vm === VM, partitionFor: (sp) => (sp === SP ? "ok" : "unknown") });
  const send = (ranges: FfaMemRange[]) => {
    const bytes = encodeMemTransaction(
      { sender: VM, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges },
      "v1.1",
    );
    return t.send(FFA_MEM_TRANSACTION.SHARE, bytes.length, bytes, "v1.1");
  };
  return { mem, t, send };
}

describe("memory transactions at their bounds", () => {
  it("a VM's largest transactions, one constituent per page, check and look up in time linear in their pages", { timeout: 4000 }, () => {
    const { t, send } = setup();
    const per = SPMC_DEFAULT_LIMITS.maxPagesPerShare;
    const handles: bigint[] = [];
    for (let i = 0; i * per < SPMC_DEFAULT_LIMITS.maxPagesPerVm; i++) {
      const r = send(singles(i * per, per));
      expect(r.kind).toBe("done");
      if (r.kind === "done") handles.push(r.handle);
    }
    expect(t.counters(VM)).toMatchObject({ shares: 4, pages: SPMC_DEFAULT_LIMITS.maxPagesPerVm });
    // Full: one page more is NO_MEMORY; a page already held would be DENIED once there is room.
    expect(send(singles(SPMC_DEFAULT_LIMITS.maxPagesPerVm, 1))).toEqual({ kind: "error", error: FFA_RET.NO_MEMORY });
    expect(t.reclaim(handles[0]!, 0)).toBe(0);
    expect(send(singles(per, per))).toEqual({ kind: "error", error: FFA_RET.DENIED });
    // A partition reading the last transaction page by page finds each page.
    const last = handles.at(-1)!;
    expect(t.retrieve(SP, last).ok).toBe(true);
    for (let p = 3 * per; p < 4 * per; p++) expect(t.read(SP, BASE + BigInt(p) * 4096n, 16)).not.toBeNull();
    expect(t.read(SP, BASE + BigInt(4 * per) * 4096n, 16)).toBeNull();
    expect(t.relinquish(SP, last)).toBe(0);
    // The reclaimed pages are free again.
    expect(send(singles(0, per)).kind).toBe("done");
  });
});
