/**
 * Test support for the SPMC and its users: a fake SpmcMemory that knows which endpoint owns each page,
 * and a harness that makes FF-A SMCs from the hypervisor (registers in, registers out).
 */
import { CALL_SMC, CALL_SMC64, SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget } from "../../router/ports.js";
import { FFA_PAGE_SIZE } from "../../smccc/ffa/abi.js";
import type { SpmcMemory } from "./spmc.js";

const PAGE = BigInt(FFA_PAGE_SIZE);

/** Normal-world memory by page: each page has one owner (0 the hypervisor, else a VM's endpoint ID). */
export class FakeSpmcMemory implements SpmcMemory {
  /** Page frame → owner and contents (made on first access, so tests may give many pages). */
  private readonly pages = new Map<bigint, { owner: number; bytes?: Uint8Array }>();
  /** Every access, for tests that check what the SPMC touched. */
  readonly log: { op: "read" | "write"; pa: bigint; length: number; owner: number }[] = [];

  /** Gives `count` pages from `pa` to `owner` (zero-filled). */
  give(pa: bigint, count: number, owner: number): void {
    for (let i = 0; i < count; i++) this.pages.set(pa / PAGE + BigInt(i), { owner });
  }

  owns(pa: bigint, length: number, owner: number): boolean {
    if (length <= 0) return length === 0;
    for (let p = pa / PAGE; p * PAGE < pa + BigInt(length); p++) if (this.pages.get(p)?.owner !== owner) return false;
    return true;
  }

  read(pa: bigint, length: number, owner: number): Uint8Array | null {
    this.log.push({ op: "read", pa, length, owner });
    if (!this.owns(pa, length, owner)) return null;
    const out = new Uint8Array(length);
    this.each(pa, length, (page, off, at, n) => out.set(page.subarray(off, off + n), at));
    return out;
  }

  write(pa: bigint, data: Uint8Array, owner: number): boolean {
    this.log.push({ op: "write", pa, length: data.length, owner });
    if (!this.owns(pa, data.length, owner)) return false;
    this.each(pa, data.length, (page, off, at, n) => page.set(data.subarray(at, at + n), off));
    return true;
  }

  /** [pa, pa + length) in place when it lies in one page (a backend's view of contiguous memory). */
  view(pa: bigint, length: number, owner: number): Uint8Array | null {
    if (!this.owns(pa, length, owner) || Number(pa % PAGE) + length > FFA_PAGE_SIZE) return null;
    const off = Number(pa % PAGE);
    return this.bytesOf(pa / PAGE).subarray(off, off + length);
  }

  /** Test access without an owner check. */
  poke(pa: bigint, data: Uint8Array): void {
    this.each(pa, data.length, (page, off, at, n) => page.set(data.subarray(at, at + n), off));
  }

  peek(pa: bigint, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.each(pa, length, (page, off, at, n) => out.set(page.subarray(off, off + n), at));
    return out;
  }

  private bytesOf(frame: bigint): Uint8Array {
    const page = this.pages.get(frame)!;
    page.bytes ??= new Uint8Array(FFA_PAGE_SIZE);
    return page.bytes;
  }

  private each(pa: bigint, length: number, f: (page: Uint8Array, off: number, at: number, n: number) => void): void {
    let at = 0;
    while (at < length) {
      const addr = pa + BigInt(at);
      const off = Number(addr % PAGE);
      const n = Math.min(FFA_PAGE_SIZE - off, length - at);
      f(this.bytesOf(addr / PAGE), off, at, n);
      at += n;
    }
  }
}

export const HYPERVISOR_ORIGIN: CallOrigin = { vmId: 0, vmName: "hypervisor", vcpu: 0 };

/** One SMC to `target`: x0 = fid, x1.. = args (numbers are taken as u64, negative ones two's complement). */
export function smc(target: CallTarget, fid: number, args: readonly (number | bigint)[], origin: CallOrigin = HYPERVISOR_ORIGIN): bigint[] {
  const words = new Uint32Array(36);
  const put = (n: number, v: bigint) => {
    const u = BigInt.asUintN(64, v);
    words[2 * n] = Number(u & 0xffff_ffffn);
    words[2 * n + 1] = Number(u >> 32n);
  };
  put(0, BigInt(fid >>> 0));
  args.forEach((v, i) => put(i + 1, BigInt(v)));
  const call = new SmcCall();
  const smc64 = (fid & 0x4000_0000) !== 0;
  call.load(words, fid >>> 0, fid >>> 0, origin.vcpu, 17, CALL_SMC | (smc64 ? CALL_SMC64 : 0));
  const res = new SmcResult();
  void target.handle(call, res, origin);
  const out: bigint[] = [];
  for (let n = 0; n < 18; n++) out.push(res.get(n));
  return out;
}
