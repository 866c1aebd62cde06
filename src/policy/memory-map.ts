/**
 * The platform's physical address space as smcvisor models it: secure RAM regions no normal-world VM may
 * reach, the hypervisor's own pages, and where each VM's RAM lives (its IPA range mapped to a platform PA
 * range). Everything that turns an address a VM gave into memory it touches asks this map first:
 * forwarding, delegates, mediators. Config validation checks that no two of these overlap.
 */
export interface SecureRegion {
  readonly name: string;
  readonly base: bigint;
  readonly size: bigint;
}

export interface VmMemory {
  readonly vm: string;
  /** Guest physical (IPA) base of the VM's RAM. */
  readonly ipa: bigint;
  readonly size: bigint;
  /** Where that RAM is in the platform's physical address space. */
  readonly pa: bigint;
  /** True when the config placed it (`memory.pa`), false when placeVms did. */
  readonly explicit?: boolean;
}

export interface PhysicalRange {
  readonly base: bigint;
  readonly size: bigint;
}

/**
 * The hypervisor's own pages (src/hypervisor/heap.ts): shadow copies of the messages a mediator gives the
 * secure world, and translated page lists. 16384 pages of 4 KiB at 32 GiB. No VM's RAM and no secure
 * region may overlap them: the secure world is given these addresses, and must never find a VM's RAM there.
 */
export const HYPERVISOR_HEAP: PhysicalRange = { base: 0x8_0000_0000n, size: 16384n * 4096n };

/**
 * The largest physical address space an Arm A-profile PE has: 52 bits (FEAT_LPA, ID_AA64MMFR0_EL1.PARange
 * 0b0110; DDI 0487 D8.1). No RAM or secure region of the platform lies above it.
 */
export const PA_LIMIT = 1n << 52n;

export type PaClass =
  | { readonly kind: "vm"; readonly vm: string; readonly ipa: bigint }
  | { readonly kind: "secure"; readonly region: string }
  | { readonly kind: "hypervisor" }
  | { readonly kind: "unmapped" };

const overlaps = (a: bigint, alen: bigint, b: bigint, blen: bigint) => a < b + blen && b < a + alen;
const hex = (v: bigint) => `0x${v.toString(16)}`;

export class MemoryMap {
  constructor(
    readonly secure: readonly SecureRegion[],
    readonly vms: readonly VmMemory[],
    readonly heap: PhysicalRange = HYPERVISOR_HEAP,
  ) {}

  /**
   * What a platform physical range is: inside one VM's RAM, touching secure memory or the hypervisor's
   * pages, or neither. A range that touches secure memory or the hypervisor's pages is that, whatever else
   * it touches; a range is a VM's only when all of it is that VM's RAM.
   */
  classify(pa: bigint, length: bigint): PaClass {
    if (length <= 0n || pa < 0n || pa + length > 1n << 64n) return { kind: "unmapped" };
    for (const s of this.secure) if (overlaps(pa, length, s.base, s.size)) return { kind: "secure", region: s.name };
    if (overlaps(pa, length, this.heap.base, this.heap.size)) return { kind: "hypervisor" };
    for (const v of this.vms) if (pa >= v.pa && pa + length <= v.pa + v.size) return { kind: "vm", vm: v.vm, ipa: v.ipa + (pa - v.pa) };
    return { kind: "unmapped" };
  }

  /** A VM's IPA range as platform PA, or null when it is not all inside the VM's RAM. */
  ipaToPa(vm: string, ipa: bigint, length: bigint): bigint | null {
    const v = this.vms.find((m) => m.vm === vm);
    if (!v || length <= 0n || ipa < v.ipa || ipa + length > v.ipa + v.size) return null;
    return v.pa + (ipa - v.ipa);
  }

  /** Why a VM may not have the monitor touch a platform range, or null when it may (its own RAM only). */
  refusal(vm: string, pa: bigint, length: bigint): string | null {
    const c = this.classify(pa, length);
    if (c.kind === "secure") return `0x${pa.toString(16)}+0x${length.toString(16)} touches secure memory "${c.region}"`;
    if (c.kind === "hypervisor") return `0x${pa.toString(16)}+0x${length.toString(16)} touches the hypervisor's memory`;
    if (c.kind === "unmapped") return `0x${pa.toString(16)}+0x${length.toString(16)} is not RAM of ${vm}`;
    if (c.vm !== vm) return `0x${pa.toString(16)}+0x${length.toString(16)} is RAM of another VM`;
    return null;
  }
}

/** Where default placement starts: 4 GiB, above the 32-bit devices and RAM of typical boards. */
export const DEFAULT_PLACEMENT_BASE = 0x1_0000_0000n;
const PLACEMENT_ALIGN = 0x20_0000n;
const alignUp = (v: bigint) => (v + PLACEMENT_ALIGN - 1n) & ~(PLACEMENT_ALIGN - 1n);

/**
 * Default placement of VM RAM in the platform's physical space: from 4 GiB up, each VM 2 MiB-aligned after
 * the previous one, unless its config says where (`memory.pa`). A VM placed by default never overlaps the
 * hypervisor's pages, a secure region or a VM the config placed: it goes past them.
 */
export function placeVms(
  vms: readonly { name: string; base: bigint; size: bigint; pa?: bigint | undefined }[],
  reserved: readonly PhysicalRange[] = [HYPERVISOR_HEAP],
): VmMemory[] {
  // The fixed ranges, sorted and merged, so that one pass in address order skips them all.
  const fixed = [...reserved, ...vms.filter((v) => v.pa !== undefined).map((v) => ({ base: v.pa!, size: v.size }))]
    .filter((r) => r.size > 0n)
    .map((r) => [r.base, r.base + r.size] as [bigint, bigint])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged: [bigint, bigint][] = [];
  for (const r of fixed) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = r[1] > last[1] ? r[1] : last[1];
    else merged.push([r[0], r[1]]);
  }
  let next = DEFAULT_PLACEMENT_BASE;
  let k = 0;
  return vms.map((v) => {
    if (v.pa !== undefined) return { vm: v.name, ipa: v.base, size: v.size, pa: v.pa, explicit: true };
    let pa = next;
    for (;;) {
      while (k < merged.length && merged[k]![1] <= pa) k++;
      const r = merged[k];
      if (r === undefined || r[0] >= pa + v.size) break;
      pa = alignUp(r[1]);
    }
    next = alignUp(pa + v.size);
    return { vm: v.name, ipa: v.base, size: v.size, pa, explicit: false };
  });
}

export interface MemoryMapProblem {
  /** The VM whose RAM is at fault, or null for a secure region. */
  readonly vm: string | null;
  /** The secure region's index in platform.secureMemory, when it is at fault. */
  readonly region?: number;
  /** The field to name: "pa" when the config placed the VM, "size" when its size took it somewhere it may not be. */
  readonly field?: "pa" | "size";
  readonly message: string;
}

/** Overlaps and impossible addresses in the map; each names the range at fault. In O(n log n) for n ranges. */
export function memoryMapProblems(map: MemoryMap): MemoryMapProblem[] {
  const out: MemoryMapProblem[] = [];
  const heap = map.heap;
  const heapText = `the hypervisor's own pages (${hex(heap.base)}-${hex(heap.base + heap.size - 1n)})`;
  const vmField = (v: VmMemory): "pa" | "size" => (v.explicit === false ? "size" : "pa");
  map.secure.forEach((s, i) => {
    if (s.base + s.size > PA_LIMIT) out.push({ vm: null, region: i, message: `secure region "${s.name}" ends above the 52-bit physical address space` });
    if (overlaps(s.base, s.size, heap.base, heap.size)) out.push({ vm: null, region: i, message: `secure region "${s.name}" overlaps ${heapText}` });
  });
  for (const v of map.vms) {
    const where = `its RAM (PA ${hex(v.pa)}-${hex(v.pa + v.size - 1n)})`;
    if ((v.pa & 0xfffn) !== 0n) out.push({ vm: v.vm, field: "pa", message: "memory.pa must be a multiple of 4 KiB" });
    if (v.pa + v.size > PA_LIMIT) out.push({ vm: v.vm, field: vmField(v), message: `${where} ends above the 52-bit physical address space` });
    if (overlaps(v.pa, v.size, heap.base, heap.size)) out.push({ vm: v.vm, field: vmField(v), message: `${where} overlaps ${heapText}` });
    for (const s of map.secure) if (overlaps(v.pa, v.size, s.base, s.size)) out.push({ vm: v.vm, field: vmField(v), message: `${where} overlaps secure memory "${s.name}"` });
  }
  // VM against VM: in address order, each range against those still open, so the cost stays near n log n.
  const byPa = map.vms.map((v, i) => ({ v, i })).sort((a, b) => (a.v.pa < b.v.pa ? -1 : a.v.pa > b.v.pa ? 1 : a.i - b.i));
  let open: { v: VmMemory; i: number }[] = [];
  const pairs: [number, number][] = [];
  for (const cur of byPa) {
    open = open.filter((o) => o.v.pa + o.v.size > cur.v.pa);
    for (const o of open) pairs.push(o.i < cur.i ? [o.i, cur.i] : [cur.i, o.i]);
    open.push(cur);
  }
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [i, j] of pairs) {
    const a = map.vms[i]!, b = map.vms[j]!;
    out.push({ vm: b.vm, field: vmField(b), message: `its RAM (PA ${hex(b.pa)}-${hex(b.pa + b.size - 1n)}) overlaps ${a.vm}'s` });
  }
  return out;
}
