import { describe, expect, it } from "vitest";
import { FFA_MEM_TRANSACTION, FFA_RET } from "../../../smccc/ffa/abi.js";
import type { PartitionContext, RetrieveResult } from "../partition.js";
import { TEST_SP_CMD, TestPartition } from "./test-sp.js";

const UUID = "5f1a3c9e-2b7d-4e60-9c84-a1d3e5f70b26";

/** A context over one 2-page region of VM 1 at 0x1000 whose bytes are all 1, recording what is asked. */
function fakeContext(o: { readFails?: boolean; retrieve?: RetrieveResult } = {}) {
  const calls: string[] = [];
  const ctx: PartitionContext = {
    self: 0x8001,
    retrieve: (handle, opts) => {
      calls.push(`retrieve ${handle} sender=${opts?.sender}`);
      return o.retrieve ?? {
        ok: true,
        region: { handle, sender: 1, transaction: FFA_MEM_TRANSACTION.SHARE, permissions: 2, attributes: 0x6f, tag: 0n, ranges: [{ address: 0x1000n, pageCount: 2 }], totalPages: 2 },
      };
    },
    relinquish: (handle) => {
      calls.push(`relinquish ${handle}`);
      return 0;
    },
    read: (pa, length) => (o.readFails && pa > 0x1000n ? null : new Uint8Array(length).fill(1)),
    write: () => false,
    notificationSet: (vm, bits) => {
      calls.push(`set ${vm} ${bits}`);
      return vm === 1 ? 0 : FFA_RET.DENIED;
    },
  };
  return { ctx, calls };
}

describe("the test partition", () => {
  const sp = new TestPartition({ id: 0x8001, uuid: UUID });

  it("echoes its payload", () => {
    expect(sp.directRequest(1, [1n, 2n, 3n, 4n, 5n], true, fakeContext().ctx)).toEqual({ ok: true, args: [1n, 2n, 3n, 4n, 5n] });
  });

  it("checksums the caller's region: retrieves it as the caller's, sums every page, relinquishes", () => {
    const { ctx, calls } = fakeContext();
    const r = sp.directRequest(1, [BigInt(TEST_SP_CMD.CHECKSUM), 0x5n, 0x1n, 0n, 0n], false, ctx);
    expect(r).toEqual({ ok: true, args: [0n, 8192n, 2n] });
    expect(calls).toEqual([`retrieve ${0x1_0000_0005n} sender=1`, `relinquish ${0x1_0000_0005n}`]);
  });

  it("answers the retrieval's refusal as its status, and ABORTED (still relinquishing) when a page cannot be read", () => {
    const refused = fakeContext({ retrieve: { ok: false, error: FFA_RET.DENIED } });
    expect(sp.directRequest(1, [2n, 5n, 0n], true, refused.ctx)).toEqual({ ok: true, args: [BigInt(FFA_RET.DENIED >>> 0)] });
    expect(refused.calls).toHaveLength(1);
    const unreadable = fakeContext({ readFails: true });
    expect(sp.directRequest(1, [2n, 5n, 0n], true, unreadable.ctx)).toEqual({ ok: true, args: [BigInt(FFA_RET.ABORTED >>> 0)] });
    expect(unreadable.calls.at(-1)).toBe("relinquish 5");
  });

  it("sets notifications for the VM named, bitmap from two 32-bit halves, and passes the status on", () => {
    const { ctx, calls } = fakeContext();
    expect(sp.directRequest(1, [3n, 1n, 0x1n, 0x8000_0000n], true, ctx)).toEqual({ ok: true, args: [0n] });
    expect(sp.directRequest(1, [3n, 2n, 0x1n, 0n], true, ctx)).toEqual({ ok: true, args: [BigInt(FFA_RET.DENIED >>> 0)] });
    expect(calls).toEqual([`set 1 ${0x8000_0000_0000_0001n}`, "set 2 1"]);
  });

  it("refuses unknown commands with INVALID_PARAMETERS, and keeps the VMs it was told of", () => {
    expect(sp.directRequest(1, [0n], true, fakeContext().ctx)).toEqual({ ok: false, error: FFA_RET.INVALID_PARAMETERS });
    const t = new TestPartition({ id: 0x8002, uuid: UUID });
    expect(t.onVmCreated(3)).toBe(0);
    expect([...t.vms]).toEqual([3]);
    expect(t.onVmDestroyed(3)).toBe(0);
    expect(t.vms.size).toBe(0);
  });
});
