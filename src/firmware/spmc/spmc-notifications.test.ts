import { describe, expect, it } from "vitest";
import { FFA_RET, FFA_VERSION_1_0 } from "../../smccc/ffa/abi.js";
import { FFA_FUNCTIONS as F } from "../../smccc/functions/ffa.js";
import { TEST_SP_CMD } from "./partitions/test-sp.js";
import { SP1, SP2, SP4, VM_A, VM_B, VM_C, ZERO_COUNTERS, expectError, expectOk, world } from "./spmc-fixture.js";

const W = (x: bigint) => Number(x & 0xffff_ffffn);
const N = F;

function ready(o: Parameters<typeof world>[0] = {}) {
  const w = world(o);
  w.create(VM_A);
  w.create(VM_B);
  expectOk(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_A, 2));
  return w;
}
/** BIND for `vm` of bits (low word, high word) to partition `sp`. */
const bind = (w: ReturnType<typeof world>, sp: number, vm: number, lo: number, hi: number, flags = 0) =>
  w.call(N.FFA_NOTIFICATION_BIND.smc32, ((sp << 16) | vm) >>> 0, flags, lo, hi);
/** The test partition sets bits (low, high) for `vm`, on a direct request from `from`: its status. */
const notify = (w: ReturnType<typeof world>, from: number, vm: number, lo: number, hi: number) =>
  Number(w.direct(from, SP1, [TEST_SP_CMD.NOTIFY, vm, lo, hi])[3]!) | 0;

describe("notification bitmaps (DEN0077 v1.2 §10)", () => {
  it("BITMAP_CREATE makes a VM known; twice is DENIED; VM 0, secure IDs, w1[31:16] and 0 vCPUs are INVALID_PARAMETERS", () => {
    const w = world();
    expectOk(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_C, 1));
    expect(w.spmc.counters(VM_C)).toMatchObject({ known: true, bitmaps: 1 });
    expectError(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_C, 1), FFA_RET.DENIED);
    for (const [vm, vcpus] of [[0, 1], [0x8001, 1], [0x1_0002, 1], [VM_B, 0]] as const) {
      expectError(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, vm, vcpus), FFA_RET.INVALID_PARAMETERS);
    }
    expect(w.spmc.counters(VM_B)).toEqual(ZERO_COUNTERS);
    expectOk(w.call(N.FFA_NOTIFICATION_BITMAP_DESTROY.smc32, VM_C));
    expect(w.spmc.counters(VM_C)).toEqual(ZERO_COUNTERS);
    expectError(w.call(N.FFA_NOTIFICATION_BITMAP_DESTROY.smc32, VM_C), FFA_RET.INVALID_PARAMETERS);
  });

  it("at most maxVms VMs known: a bitmap for one more is NO_MEMORY", () => {
    const w = world({ limits: { maxVms: 1 } });
    expectOk(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_A, 1));
    expectError(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_B, 1), FFA_RET.NO_MEMORY);
    expect(w.spmc.counters(VM_B)).toEqual(ZERO_COUNTERS);
  });

  it("not offered at v1.0", () => {
    const w = world({ version: FFA_VERSION_1_0 });
    expectError(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_A, 1), FFA_RET.NOT_SUPPORTED);
  });
});

describe("bind, set, get, info_get", () => {
  it("a bound partition's SET reaches GET with the low word in w2 and the high in w3, once; SRI and INFO_GET tell", () => {
    const w = ready();
    expectOk(bind(w, SP1, VM_A, 0x1, 0x8000_0000));
    expect(notify(w, VM_A, VM_A, 0x1, 0x8000_0000)).toBe(0);
    expect(w.scheduled).toEqual([VM_A]);
    const info = w.call(N.FFA_NOTIFICATION_INFO_GET.smc64);
    expect(info[0]).toBe(BigInt(N.FFA_SUCCESS.smc64));
    expect([info[2], info[3]]).toEqual([1n << 7n, BigInt(VM_A)]);
    expectError(w.call(N.FFA_NOTIFICATION_INFO_GET.smc64), FFA_RET.NO_DATA);
    const g = w.call(N.FFA_NOTIFICATION_GET.smc32, (1 << 16) | VM_A, 1);
    expect([W(g[2]!), W(g[3]!), W(g[4]!), W(g[5]!)]).toEqual([1, 0x8000_0000, 0, 0]);
    const again = w.call(N.FFA_NOTIFICATION_GET.smc32, VM_A, 1);
    expect([W(again[2]!), W(again[3]!)]).toEqual([0, 0]);
    expect(w.spmc.counters(VM_A)).toMatchObject({ bindings: 2, pendingNotifications: 0 });
  });

  it("GET without the SP flag leaves the bits; bad vCPU, MBZ flags or no bitmap are INVALID_PARAMETERS", () => {
    const w = ready();
    bind(w, SP1, VM_A, 0x6, 0);
    notify(w, VM_A, VM_A, 0x2, 0);
    const g = w.call(N.FFA_NOTIFICATION_GET.smc32, VM_A, 2);
    expect(W(g[2]!)).toBe(0);
    expectError(w.call(N.FFA_NOTIFICATION_GET.smc32, (2 << 16) | VM_A, 1), FFA_RET.INVALID_PARAMETERS);
    expectError(w.call(N.FFA_NOTIFICATION_GET.smc32, VM_A, 0x10), FFA_RET.INVALID_PARAMETERS);
    expectError(w.call(N.FFA_NOTIFICATION_GET.smc32, VM_B, 1), FFA_RET.INVALID_PARAMETERS);
    expect(w.spmc.counters(VM_A).pendingNotifications).toBe(1);
  });

  it.each([
    ["a VM without a bitmap", SP1, VM_B, 1, 0, 0, FFA_RET.INVALID_PARAMETERS],
    ["no such partition", 0x8009, VM_A, 1, 0, 0, FFA_RET.INVALID_PARAMETERS],
    ["per-vCPU notifications", SP1, VM_A, 1, 0, 1, FFA_RET.INVALID_PARAMETERS],
    ["flags [31:1] set", SP1, VM_A, 1, 0, 2, FFA_RET.INVALID_PARAMETERS],
    ["no bits", SP1, VM_A, 0, 0, 0, FFA_RET.INVALID_PARAMETERS],
  ])("BIND for %s: refused, nothing bound", (_what, sp, vm, lo, hi, flags, code) => {
    const w = ready();
    expectError(bind(w, sp, vm, lo, hi, flags), code);
    expect(w.spmc.counters(VM_A).bindings).toBe(0);
  });

  it("BIND of bits another partition holds is DENIED; so is a partition the VM may not use", () => {
    const w = ready();
    expectOk(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, VM_B, 1));
    expectError(bind(w, SP2, VM_B, 1, 0), FFA_RET.DENIED);
    expectOk(bind(w, SP1, VM_A, 0x3, 0));
    expectError(bind(w, SP4, VM_A, 0x2, 0), FFA_RET.DENIED);
    expectOk(bind(w, SP1, VM_A, 0x3, 0));
    expect(w.spmc.counters(VM_A).bindings).toBe(2);
  });

  it("SET of unbound bits, of another partition's bits, or for a VM without a bitmap is refused", () => {
    const w = ready();
    expectOk(bind(w, SP4, VM_A, 0x1, 0));
    expect(notify(w, VM_A, VM_A, 0x1, 0)).toBe(FFA_RET.DENIED);
    expect(notify(w, VM_A, VM_A, 0, 0x1)).toBe(FFA_RET.DENIED);
    expect(notify(w, VM_A, VM_B, 0x1, 0)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(notify(w, VM_A, VM_A, 0, 0)).toBe(FFA_RET.INVALID_PARAMETERS);
    expect(w.spmc.counters(VM_A).pendingNotifications).toBe(0);
    expect(w.scheduled).toEqual([]);
  });

  it("UNBIND: only bits bound to that partition (DENIED otherwise), w2 MBZ; pending bits go with the binding", () => {
    const w = ready();
    bind(w, SP1, VM_A, 0x3, 0);
    notify(w, VM_A, VM_A, 0x3, 0);
    const unbind = (sp: number, flags: number, lo: number) => w.call(N.FFA_NOTIFICATION_UNBIND.smc32, (sp << 16) | VM_A, flags, lo, 0);
    expectError(unbind(SP4, 0, 0x1), FFA_RET.DENIED);
    expectError(unbind(SP1, 0, 0x4), FFA_RET.DENIED);
    expectError(unbind(SP1, 1, 0x1), FFA_RET.INVALID_PARAMETERS);
    expectOk(unbind(SP1, 0, 0x1));
    expect(w.spmc.counters(VM_A)).toMatchObject({ bindings: 1, pendingNotifications: 1 });
  });

  it("BITMAP_DESTROY is DENIED while notifications are pending, then frees everything of the VM's bitmap", () => {
    const w = ready();
    bind(w, SP1, VM_A, 0x1, 0);
    notify(w, VM_A, VM_A, 0x1, 0);
    expectError(w.call(N.FFA_NOTIFICATION_BITMAP_DESTROY.smc32, VM_A), FFA_RET.DENIED);
    w.call(N.FFA_NOTIFICATION_GET.smc32, VM_A, 1);
    expectOk(w.call(N.FFA_NOTIFICATION_BITMAP_DESTROY.smc32, VM_A));
    expect(w.spmc.counters(VM_A)).toMatchObject({ bitmaps: 0, bindings: 0, pendingNotifications: 0, known: true });
  });

  it("INFO_GET lists at most 20 VMs and says when more are pending", () => {
    const w = world({ sp1Vms: Array.from({ length: 22 }, (_, i) => i + 1) });
    for (let vm = 1; vm <= 22; vm++) {
      w.create(vm);
      expectOk(w.call(N.FFA_NOTIFICATION_BITMAP_CREATE.smc32, vm, 1));
      expectOk(bind(w, SP1, vm, 1, 0));
    }
    for (let vm = 1; vm <= 22; vm++) expect(notify(w, 1, vm, 1, 0)).toBe(0);
    const first = w.call(N.FFA_NOTIFICATION_INFO_GET.smc64);
    expect(first[2]).toBe(1n | (20n << 7n));
    expect(first[3]).toBe(1n | (2n << 16n) | (3n << 32n) | (4n << 48n));
    const second = w.call(N.FFA_NOTIFICATION_INFO_GET.smc64);
    expect(second[2]).toBe(2n << 7n);
    expect(second[3]).toBe(21n | (22n << 16n));
  });
});
