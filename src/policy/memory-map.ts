/**
 * The platform's physical address space as smcvisor models it: secure RAM regions no normal-world VM may
 * reach, and where each VM's RAM lives (its IPA range mapped to a platform PA range). Everything that turns
 * an address a VM gave into memory it touches asks this map first: forwarding, delegates, mediators.
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
}

export type PaClass =
  | { readonly kind: "vm"; readonly vm: string; readonly ipa: bigint }
  | { readonly kind: "secure"; readonly region: string }
  | { readonly kind: "unmapped" };

const overlaps = (a: bigint, alen: bigint, b: bigint, blen: bigint) => a < b + blen && b < a + alen;

export class MemoryMap {
  constructor(readonly secure: readonly SecureRegion[], readonly vms: readonly VmMemory[]) {}

  /** What a platform physical range is: inside one VM's RAM, touching secure memory, or neither. */
  classify(pa: bigint, length: bigint): PaClass {
    if (length <= 0n || pa < 0n || pa + length > 1n << 64n) return { kind: "unmapped" };
    for (const s of this.secure) if (overlaps(pa, length, s.base, s.size)) return { kind: "secure", region: s.name };
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
    if (c.kind === "unmapped") return `0x${pa.toString(16)}+0x${length.toString(16)} is not RAM of ${vm}`;
    if (c.vm !== vm) return `0x${pa.toString(16)}+0x${length.toString(16)} is RAM of another VM`;
    return null;
  }
}

/**
 * Default placement of VM RAM in the platform's physical space: from 4 GiB up, each VM 2 MiB-aligned after
 * the previous one, unless its config says where (`memory.pa`).
 */
export function placeVms(vms: readonly { name: string; base: bigint; size: bigint; pa?: bigint | undefined }[]): VmMemory[] {
  let next = 0x1_0000_0000n;
  return vms.map((v) => {
    const pa = v.pa ?? next;
    if (v.pa === undefined) next = (pa + v.size + 0x1f_ffffn) & ~0x1f_ffffn;
    return { vm: v.name, ipa: v.base, size: v.size, pa };
  });
}

export function memoryMapProblems(map: MemoryMap): { vm: string | null; message: string }[] {
  const out: { vm: string | null; message: string }[] = [];
  map.vms.forEach((a, i) => {
    for (const s of map.secure) if (overlaps(a.pa, a.size, s.base, s.size)) out.push({ vm: a.vm, message: `its RAM (PA 0x${a.pa.toString(16)}) overlaps secure memory "${s.name}"` });
    for (const b of map.vms.slice(i + 1)) if (overlaps(a.pa, a.size, b.pa, b.size)) out.push({ vm: b.vm, message: `its RAM (PA 0x${b.pa.toString(16)}) overlaps ${a.vm}'s` });
  });
  return out;
}
