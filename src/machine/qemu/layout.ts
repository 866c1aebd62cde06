/**
 * Where everything goes in a QEMU VM (docs/qemu-channel.md, "Memory"). QEMU's `virt` machine has its RAM at
 * physical address 0x40000000. The first 2 MiB of that RAM are the shim's region: its code, stacks, the host
 * page, the mailboxes and the stage-2 tables. No stage-2 table maps the region, so the guest never sees it.
 * The guest's RAM follows: its intermediate physical address (IPA) range starts at the VM's base
 * (0x40000000) and is backed by machine RAM 2 MiB higher.
 *
 * In the guest's RAM, from its base upward, as QEMU lays out a firmware boot (hw/arm/boot.c): the device
 * tree at the base, the kernel 2 MiB-aligned after it (Linux's arm64 boot protocol,
 * Documentation/arch/arm64/booting.rst), then the initrd.
 */
export const MACHINE_RAM_BASE = 0x4000_0000n;
export const SHIM_SIZE = 0x20_0000n;
/** A handover VM's RAM base (docs/handover.md): its IPAs are machine PAs, above the shim's region. */
export const HANDOVER_RAM_BASE = MACHINE_RAM_BASE + SHIM_SIZE;
/** The shim's exception vectors (shim/protocol.h HANDOVER_VECTORS): the VBAR_EL2 a handover VM's kernel hands over to. */
export const HANDOVER_VECTORS = MACHINE_RAM_BASE + 0x1800n;

/** Where a guest RAM IPA is in the machine: the guest's RAM is always backed by machine RAM from the end of the shim's region. */
export function machinePa(ramBase: bigint, ipa: bigint): bigint {
  return ipa - ramBase + MACHINE_RAM_BASE + SHIM_SIZE;
}
/** The shim region's parts, as offsets from MACHINE_RAM_BASE (= offsets in the RAM file); shim/protocol.h. */
export const SHIM_REGION = {
  /** The shim's ELF (code, data, BSS) ends below this. */
  elfEnd: 0x10_0000,
  hostPage: 0x10_0000,
  mailboxes: 0x10_1000,
  mailboxStride: 0x1000,
  hostState: 0x10_f000,
  stage2: 0x18_0000,
  stage2Size: 0x8_0000,
} as const;

const MiB = 1n << 20n;

/** The guest RAM's place in the machine: machine PA = IPA + SHIM_SIZE; RAM-file offset = IPA - base + SHIM_SIZE. */
export function ramFileOffset(ramBase: bigint, ipa: bigint): bigint {
  return ipa - ramBase + SHIM_SIZE;
}

export interface Layout {
  readonly dtb: bigint;
  readonly kernel: bigint;
  readonly initrd: bigint | null;
  readonly initrdEnd: bigint | null;
}

export type LayoutResult = { ok: true; layout: Layout } | { ok: false; reason: string };

/** The kernel's footprint: the arm64 Image header's image_size (offset 16) when it has one, else the file size. */
export function kernelFootprint(image: Uint8Array, fileSize = image.length): bigint {
  if (image.length >= 64) {
    const v = new DataView(image.buffer, image.byteOffset, 64);
    // "ARM\x64" at offset 56 marks an arm64 Image header.
    if (v.getUint32(56, true) === 0x644d_5241) {
      const size = v.getBigUint64(16, true);
      if (size > 0n) return size;
    }
  }
  return BigInt(fileSize);
}

const align = (v: bigint, a: bigint) => (v + a - 1n) & ~(a - 1n);

/** The largest device tree the layout leaves room for before the kernel (Linux's limit too: booting.rst). */
export const DTB_MAX = 2n * MiB;

/** Places device tree, kernel and initrd in guest RAM (IPAs), or says why they do not fit. */
export function layoutFor(ramBase: bigint, ramSize: bigint, kernelBytes: bigint, dtbBytes: bigint, initrdBytes: bigint | null): LayoutResult {
  if (ramBase !== MACHINE_RAM_BASE && ramBase !== HANDOVER_RAM_BASE) return { ok: false, reason: `QEMU's virt machine has RAM at 0x${MACHINE_RAM_BASE.toString(16)} (0x${HANDOVER_RAM_BASE.toString(16)} for a handover VM); memory.base is 0x${ramBase.toString(16)}` };
  if (ramSize % (2n * MiB) !== 0n) return { ok: false, reason: `memory.size must be a multiple of 2 MiB under QEMU (stage 2 maps guest RAM in 2 MiB blocks); it is ${ramSize} bytes` };
  if (dtbBytes > DTB_MAX) return { ok: false, reason: `the device tree is ${dtbBytes} bytes; at most ${DTB_MAX} fit before the kernel` };
  const dtb = ramBase;
  const kernel = ramBase + DTB_MAX;
  // Leave the kernel room to grow past its image (BSS, early page tables) before the initrd.
  const initrd = initrdBytes === null ? null : align(kernel + kernelBytes + 2n * MiB, 2n * MiB);
  const end = initrd === null ? kernel + kernelBytes : initrd + initrdBytes!;
  if (end > ramBase + ramSize) {
    return { ok: false, reason: `device tree, kernel and initrd need ${(end - ramBase + MiB - 1n) / MiB} MiB; the VM has ${ramSize / MiB} MiB` };
  }
  return { ok: true, layout: { dtb, kernel, initrd, initrdEnd: initrd === null ? null : initrd + initrdBytes! } };
}
