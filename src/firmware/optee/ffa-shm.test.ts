// The FF-A regions OP-TEE holds for one guest (mobj_ffa.c with the SPMC below OP-TEE), and the guest's
// memory port: pages of regions the table holds, nothing else.
import { describe, expect, it } from "vitest";
import { FfaShmTable, type FfaMemoryPort, type FfaRetrieved } from "./ffa-shm.js";

const PAGE = 0x1000n;

function port(regions: Record<string, FfaRetrieved & { sender: number }>) {
  const log: string[] = [];
  const p: FfaMemoryPort = {
    retrieve: (guest, handle) => {
      const r = regions[handle.toString()];
      log.push(`retrieve ${handle}`);
      return r && r.sender === guest ? r : null;
    },
    relinquish: (_guest, handle) => void log.push(`relinquish ${handle}`),
    read: (pa, length) => (log.push(`read ${pa.toString(16)}+${length}`), new Uint8Array(length)),
    write: (pa, data) => (log.push(`write ${pa.toString(16)}+${data.length}`), true),
  };
  return { p, log };
}

const regions = {
  "1": { sender: 5, ranges: [{ pa: 0x10_0000n, pages: 2 }, { pa: 0x20_0000n, pages: 1 }], writable: true },
  "2": { sender: 5, ranges: [{ pa: 0x30_0000n, pages: 1 }], writable: false },
  "3": { sender: 6, ranges: [{ pa: 0x40_0000n, pages: 1 }], writable: true },
};

describe("FfaShmTable", () => {
  it("retrieves a region the first time it is named and holds it, inactive, until UNREGISTER_SHM; busy while used", () => {
    const { p, log } = port(regions);
    const t = new FfaShmTable(5, p, 100);
    const a = t.get(1n, 0)!;
    expect(FfaShmTable.size(a)).toBe(3 * 4096);
    expect(t.get(1n, 0)).toBe(a);
    expect(log.filter((l) => l.startsWith("retrieve"))).toEqual(["retrieve 1"]);
    expect(t.unregister(1n)).toBe("busy");
    t.put(a);
    expect(t.unregister(1n)).toBe("busy");
    t.put(a);
    expect(t.count).toBe(1);
    expect(t.unregister(1n)).toBe("ok");
    expect(t.unregister(1n)).toBe("not-found");
    expect(log).toContain("relinquish 1");
    expect(t.count + t.pages).toBe(0);
  });

  it("internal_offs: past the first page, or another than the one an active region has, is refused; an inactive region takes the new one", () => {
    const { p } = port(regions);
    const t = new FfaShmTable(5, p, 100);
    expect(t.get(1n, 4096)).toBeNull();
    const a = t.get(1n, 16)!;
    expect(FfaShmTable.size(a)).toBe(3 * 4096 - 16);
    expect(t.get(1n, 32)).toBeNull();
    t.put(a);
    expect(t.get(1n, 32)!.pageOffset).toBe(32);
  });

  it("another guest's region is refused (the lender must be the guest); past the page budget a region is relinquished at once", () => {
    const { p, log } = port(regions);
    const t = new FfaShmTable(5, p, 3);
    expect(t.get(3n, 0)).toBeNull();
    expect(t.get(1n, 0)).not.toBeNull();
    expect(t.get(2n, 0)).toBeNull();
    expect(log.slice(-2)).toEqual(["retrieve 2", "relinquish 2"]);
    expect(t.pages).toBe(3);
  });

  it("the guest's memory reaches only pages of regions it holds, within one range; writes only writable ones", () => {
    const { p, log } = port(regions);
    const t = new FfaShmTable(5, p, 100);
    const m = t.memory;
    expect(m.read(0x10_0000n, 16, 5)).toBeNull();
    t.get(1n, 0);
    t.get(2n, 0);
    expect(m.read(0x10_0000n, 2 * 4096, 5)).not.toBeNull();
    expect(m.read(0x10_0000n + PAGE, 4097, 5)).toBeNull(); // runs past the range
    expect(m.read(0x20_0000n + 4000n, 96, 5)).not.toBeNull();
    expect(m.read(0x20_0000n + 4000n, 97, 5)).toBeNull();
    expect(m.read(0x40_0000n, 16, 5)).toBeNull(); // another guest's region's page
    expect(m.read(0x30_0000n, 16, 5)).not.toBeNull();
    expect(m.write(0x30_0000n, new Uint8Array(16), 5)).toBe(false); // shared read-only
    expect(m.write(0x10_0000n, new Uint8Array(16), 5)).toBe(true);
    t.clear();
    expect(m.read(0x10_0000n, 16, 5)).toBeNull();
    expect(log.filter((l) => l.startsWith("relinquish"))).toEqual(["relinquish 1", "relinquish 2"]);
    expect(log.filter((l) => l.startsWith("read")).length).toBe(3); // only the three it allowed reached the SPMC
  });
});
