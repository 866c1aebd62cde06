// FF-A through the whole in-process hypervisor: a config with an SPMC and its test partition, VMs that
// speak FF-A through the mediator, the monitor handing the mediator's calls to the SPMC, and the SPMC's
// memory port deciding by owner.
import { describe, expect, it } from "vitest";
import { TEST_SP_CMD, TestPartition } from "../../src/firmware/spmc/partitions/test-sp.js";
import { ScriptedMachine } from "../../src/machine/scripted/machine.js";
import { TEST_PARTITION_UUID } from "../../src/policy/ffa.js";
import { FFA_MEM_ATTR_NORMAL_WB_IS, FFA_MEM_PERM, FFA_RET, ffaEndpoints, ffaHandle } from "../../src/smccc/ffa/abi.js";
import { encodeMemTransaction } from "../../src/smccc/ffa/descriptors.js";
import { decodePartitionInfo, ffaUuidWords } from "../../src/smccc/ffa/partition-info.js";
import { FFA_FUNCTIONS as F } from "../../src/smccc/functions/ffa.js";

const SP = 0x8002;
const IPA = 0x4000_0000n;
const TX = IPA + 0x10_0000n, RX = IPA + 0x10_1000n, SHARED = IPA + 0x20_0000n;
const SUCCESS = BigInt(F.FFA_SUCCESS.smc32);
const FFA_ERROR = BigInt(F.FFA_ERROR.smc32);

const CONFIG = `
platform:
  spmc:
    partitions:
      - { name: test, id: ${SP}, runs: test, vms: [a, b] }
vms:
  a: { id: 1, memory: { size: 16MiB }, tee: { mediator: ffa, peers: [b] } }
  b: { id: 2, memory: { size: 16MiB }, tee: ffa }
  c: { id: 3, memory: { size: 16MiB } }
`;

function setup() {
  const m = ScriptedMachine.fromText(CONFIG);
  const spmc = m.hypervisor.spmc!;
  const sp = (spmc as unknown as { partitions: { byId(id: number): { partition: TestPartition } | undefined } }).partitions;
  return { m, spmc, sp, a: m.vm("a"), b: m.vm("b"), c: m.vm("c") };
}

const regs = (r: { x(n: number): bigint }, n = 8) => Array.from({ length: n }, (_, i) => r.x(i));

describe("FF-A through the hypervisor", () => {
  it("probes the SPMC at start and tells the partition of each FF-A VM", () => {
    const { m, spmc } = setup();
    expect(m.hypervisor.mediators.get("ffa")!.counters("a")).toBeDefined();
    expect(spmc.counters(1)).toMatchObject({ known: true });
    expect(spmc.counters(2)).toMatchObject({ known: true });
    expect(spmc.counters(3)).toMatchObject({ known: false });
    // The hypervisor's own FF-A calls are in the trace, as the hypervisor's.
    expect(m.trace.events().some((e) => e.conduit === "hypervisor" && e.fid === F.FFA_VERSION.smc32)).toBe(true);
  });

  it("a guest discovers the partition, messages it, shares a page it checksums, and reclaims it; the SPMC holds nothing after", () => {
    const { a, spmc } = setup();
    const v = a.vcpu(0);
    expect(v.smc(F.FFA_VERSION.smc32, 0x1_0001).x0).toBe(0x1_0002n);
    expect(regs(v.smc(F.FFA_ID_GET.smc32), 3)).toEqual([SUCCESS, 0n, 1n]);
    expect(v.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1).x0).toBe(SUCCESS);
    const info = v.smc(F.FFA_PARTITION_INFO_GET.smc32, ...ffaUuidWords(TEST_PARTITION_UUID));
    expect(regs(info, 4)).toEqual([SUCCESS, 0n, 1n, 24n]);
    expect(decodePartitionInfo(a.memory.read(RX, 24)!, 1, 24)![0]).toMatchObject({ id: SP, uuid: TEST_PARTITION_UUID });
    expect(v.smc(F.FFA_RX_RELEASE.smc32).x0).toBe(SUCCESS);
    const echo = v.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(1, SP), 0, TEST_SP_CMD.ECHO, 7, 8);
    expect(regs(echo, 6)).toEqual([BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc32), BigInt(ffaEndpoints(SP, 1)), 0n, BigInt(TEST_SP_CMD.ECHO), 7n, 8n]);
    a.memory.write(SHARED, new Uint8Array(4096).fill(3));
    const d = encodeMemTransaction({ sender: 1, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED, pageCount: 1 }] }, "v1.1");
    a.memory.write(TX, d);
    const shared = v.smc(F.FFA_MEM_SHARE.smc32, d.length, d.length, 0, 0);
    expect(shared.x0, `FFA_ERROR ${BigInt.asIntN(32, shared.x(2))}`).toBe(SUCCESS);
    const handle = ffaHandle(Number(shared.x(2)), Number(shared.x(3)));
    expect(spmc.counters(1)).toMatchObject({ shares: 1, pages: 1 });
    const sum = v.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(1, SP), 0, TEST_SP_CMD.CHECKSUM, Number(handle & 0xffff_ffffn), Number(handle >> 32n));
    expect(sum.x(4)).toBe(3n * 4096n);
    expect(v.smc(F.FFA_MEM_RECLAIM.smc32, Number(handle & 0xffff_ffffn), Number(handle >> 32n), 0).x0).toBe(SUCCESS);
    expect(spmc.counters(1)).toMatchObject({ shares: 0, pages: 0, retrieved: 0 });
  });

  it("b cannot use a's handle, and a VM without FF-A reaches nothing", () => {
    const { a, b, c, spmc } = setup();
    const va = a.vcpu(0), vb = b.vcpu(0);
    for (const v of [va, vb]) expect(v.smc(F.FFA_VERSION.smc32, 0x1_0001).x0).toBe(0x1_0002n);
    expect(va.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1).x0).toBe(SUCCESS);
    const d = encodeMemTransaction({ sender: 1, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED, pageCount: 1 }] }, "v1.1");
    a.memory.write(TX, d);
    const shared = va.smc(F.FFA_MEM_SHARE.smc32, d.length, d.length, 0, 0);
    const [lo, hi] = [Number(shared.x(2)), Number(shared.x(3))];
    // b names a's handle: to reclaim it, and to have the partition read it.
    const reclaim = vb.smc(F.FFA_MEM_RECLAIM.smc32, lo, hi, 0);
    expect([reclaim.x0, BigInt.asIntN(32, reclaim.x(2))]).toEqual([FFA_ERROR, BigInt(FFA_RET.INVALID_PARAMETERS)]);
    const sum = vb.smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(2, SP), 0, TEST_SP_CMD.CHECKSUM, lo, hi);
    // The partition's retrieve for b fails (a's region is not b's): an error status in x3, no sum in x4.
    expect(BigInt.asIntN(32, sum.x(3))).toBeLessThan(0n);
    expect(sum.x(4)).toBe(0n);
    expect(spmc.counters(1)).toMatchObject({ shares: 1, retrieved: 0 });
    // c has no FF-A: its calls are denied by policy (SMCCC's -1), and the SPMC never hears of it.
    expect(c.vcpu(0).smc(F.FFA_VERSION.smc32, 0x1_0001).x0).toBe(0xffff_ffffn);
    expect(c.vcpu(0).smc(F.FFA_MSG_SEND_DIRECT_REQ.smc32, ffaEndpoints(3, SP), 0, TEST_SP_CMD.ECHO).x0).toBe(0xffff_ffffn);
  });

  it("destroying a VM reclaims what it shared and tells the partition; the other VM is untouched", () => {
    const { m, a, b, spmc } = setup();
    const va = a.vcpu(0);
    expect(va.smc(F.FFA_VERSION.smc32, 0x1_0001).x0).toBe(0x1_0002n);
    expect(va.smc(F.FFA_RXTX_MAP.smc64, TX, RX, 1).x0).toBe(SUCCESS);
    const d = encodeMemTransaction({ sender: 1, attributes: FFA_MEM_ATTR_NORMAL_WB_IS, flags: 0, handle: 0n, tag: 0n, receivers: [{ receiver: SP, permissions: FFA_MEM_PERM.DATA_RW, flags: 0 }], ranges: [{ address: SHARED, pageCount: 4 }] }, "v1.1");
    a.memory.write(TX, d);
    expect(va.smc(F.FFA_MEM_SHARE.smc32, d.length, d.length, 0, 0).x0).toBe(SUCCESS);
    expect(b.vcpu(0).smc(F.FFA_VERSION.smc32, 0x1_0001).x0).toBe(0x1_0002n);
    expect(m.hypervisor.destroyDomain("a")).toBe(true);
    expect(spmc.counters(1)).toMatchObject({ known: false, shares: 0, pages: 0 });
    expect(spmc.counters(2)).toMatchObject({ known: true });
    expect(m.hypervisor.mediators.get("ffa")!.counters("a")).toEqual(Object.fromEntries(Object.keys(m.hypervisor.mediators.get("ffa")!.counters("a")).map((k) => [k, 0])));
  });

  it("the SPMC's memory port decides by owner: a VM's endpoint reaches its own RAM only, the hypervisor's its own pages only", () => {
    const { m } = setup();
    const port = (m.hypervisor as unknown as { spmcMemory(): import("../../src/firmware/spmc/spmc.js").SpmcMemory }).spmcMemory();
    const pa = (vm: string) => m.config.vms.find((v) => v.name === vm)!.memory.pa;
    const hypPage = [...Array(64).keys()].map((i) => m.hypervisor.heap.base + BigInt(i) * 4096n).find((p) => m.hypervisor.heap.ownerOf(p, 4096) === "hypervisor")!;
    expect(hypPage).toBeDefined();
    expect(port.read(pa("a"), 16, 1)).not.toBeNull();
    expect(port.read(pa("b"), 16, 1)).toBeNull(); // b's RAM named as a's
    expect(port.read(pa("a") + (16n << 20n) - 8n, 16, 1)).toBeNull(); // past the end of a's RAM
    expect(port.read(pa("c"), 16, 3)).toBeNull(); // c does not speak FF-A
    expect(port.read(pa("a"), 16, 0)).toBeNull(); // the hypervisor's endpoint does not reach VM RAM
    expect(port.read(hypPage, 16, 0)).not.toBeNull();
    expect(port.read(hypPage, 16, 1)).toBeNull(); // nor a VM the hypervisor's pages
    expect(port.write(pa("b"), new Uint8Array(4), 1)).toBe(false);
    expect(port.owns!(pa("a"), 4096, 1)).toBe(true);
    expect(port.owns!(pa("a"), 4096, 2)).toBe(false);
  });

  it("a peer's DIRECT_REQ_64 reaches a vCPU waiting in the SMC32 FFA_MSG_WAIT with its X registers whole", async () => {
    const m = ScriptedMachine.fromText(`
platform:
  spmc: { partitions: [] }
vms:
  a: { id: 1, memory: { size: 16MiB }, tee: { mediator: ffa, peers: [b] } }
  b: { id: 2, memory: { size: 16MiB }, tee: { mediator: ffa, peers: [a] } }
`);
    const va = m.vm("a").vcpu(0), vb = m.vm("b").vcpu(0);
    for (const v of [va, vb]) expect(v.smc(F.FFA_VERSION.smc32, 0x1_0002).x0).toBe(0x1_0002n);
    const wait = vb.callAsync("smc", F.FFA_MSG_WAIT.smc32);
    const big = 0x1234_5678_9abc_def0n;
    const req = va.callAsync("smc", F.FFA_MSG_SEND_DIRECT_REQ.smc64, [ffaEndpoints(1, 2), 0, big, big + 1n]);
    const got = await wait;
    expect([got.x0, got.x(3), got.x(4)]).toEqual([BigInt(F.FFA_MSG_SEND_DIRECT_REQ.smc64), big, big + 1n]);
    // b answers; a's request completes with the response.
    const resp = vb.callAsync("smc", F.FFA_MSG_SEND_DIRECT_RESP.smc64, [ffaEndpoints(2, 1), 0, 7n]);
    expect((await req).x0).toBe(BigInt(F.FFA_MSG_SEND_DIRECT_RESP.smc64));
    void resp;
  });

  it("refuses a VM named hypervisor built past validation: its heap pages would pass for the hypervisor's own FF-A buffers", () => {
    const { m } = setup();
    const base = m.config.vms.find((v) => v.name === "c")!;
    for (const name of ["hypervisor", "HyperVisor"]) {
      expect(m.hypervisor.createDomain({ ...base, name, id: 40 })).toEqual({ ok: false, errors: [{ path: `vms.${name}`, message: `"${name}" is reserved for the hypervisor's own calls and pages` }] });
    }
  });
});
