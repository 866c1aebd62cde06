/**
 * Where things go in a QEMU VM's RAM (virt: RAM at 0x40000000). The shim takes the first 2 MiB
 * (reserved from the guest in the device tree); the kernel is loaded 2 MiB-aligned after it as Linux's
 * arm64 boot protocol asks (Documentation/arch/arm64/booting.rst), then the device tree, then the initrd.
 */
export const SHIM_BASE = 0x4000_0000n;
export const SHIM_SIZE = 0x20_0000n;
const MiB = 1n << 20n;

export interface Layout {
  readonly kernel: bigint;
  readonly dtb: bigint;
  readonly initrd: bigint | null;
  readonly initrdEnd: bigint | null;
}

export type LayoutResult = { ok: true; layout: Layout } | { ok: false; reason: string };

/** The kernel's footprint: the arm64 Image header's image_size (offset 16) when it has one, else the file size. */
export function kernelFootprint(image: Uint8Array): bigint {
  if (image.length >= 64) {
    const v = new DataView(image.buffer, image.byteOffset, 64);
    // "ARM\x64" at offset 56 marks an arm64 Image header.
    if (v.getUint32(56, true) === 0x644d_5241) {
      const size = v.getBigUint64(16, true);
      if (size > 0n) return size;
    }
  }
  return BigInt(image.length);
}

const align = (v: bigint, a: bigint) => (v + a - 1n) & ~(a - 1n);

export function layoutFor(ramBase: bigint, ramSize: bigint, kernelBytes: bigint, dtbBytes: bigint, initrdBytes: bigint | null): LayoutResult {
  if (ramBase !== SHIM_BASE) return { ok: false, reason: `QEMU's virt machine has RAM at 0x${SHIM_BASE.toString(16)}; memory.base is 0x${ramBase.toString(16)}` };
  const kernel = ramBase + SHIM_SIZE;
  // Leave the kernel room to grow past its image (BSS, early page tables) before the device tree.
  const dtb = align(kernel + kernelBytes + 2n * MiB, 2n * MiB);
  const initrd = initrdBytes === null ? null : align(dtb + dtbBytes, 2n * MiB);
  const end = initrd === null ? dtb + dtbBytes : initrd + initrdBytes!;
  if (end > ramBase + ramSize) {
    return { ok: false, reason: `kernel, device tree and initrd need ${(end - ramBase) / MiB + 1n} MiB; the VM has ${ramSize / MiB} MiB` };
  }
  return { ok: true, layout: { kernel, dtb, initrd, initrdEnd: initrd === null ? null : initrd + initrdBytes! } };
}
