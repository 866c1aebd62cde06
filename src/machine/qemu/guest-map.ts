/**
 * What a QEMU VM's guest can reach: its RAM and the devices it is given, and nothing else. One description
 * feeds both the stage-2 tables (stage2.ts) and the device tree the guest gets (dtb.ts), so the two always
 * agree. Addresses are QEMU virt's (hw/arm/virt.c, base_memmap, QEMU 7.2); devices are mapped at the same
 * IPA as their physical address.
 *
 * Given: the PL011 console, the GIC distributor and the CPU interface (GICv2) or the redistributors of the
 * VM's vCPUs (GICv3); to a firmware guest (U-Boot, UEFI) also virt's two flash banks, its own: the firmware
 * runs from bank 0 and keeps its variables in bank 1 (QEMU's pflash devices, with no host file behind them).
 * Not given, so absent from both: flash to any other guest, fw_cfg (its DMA interface writes any physical
 * address), the RTC and GPIO, the virtio-mmio transports (the shim's doorbells live there), PCIe, the GICv2
 * hypervisor and virtual CPU interfaces, GICv2m and the GICv3 ITS (which reads and writes tables at
 * addresses software gives it).
 */
import { HANDOVER_RAM_BASE, MACHINE_RAM_BASE, SHIM_SIZE } from "./layout.js";

export interface Region {
  readonly name: string;
  /** Where the guest sees it (IPA). */
  readonly ipa: bigint;
  /** Where it is in the machine (PA). */
  readonly pa: bigint;
  readonly size: bigint;
  /** "flash": virt's CFI flash, executable (firmware runs from it before it relocates) and mapped in 2 MiB blocks. */
  readonly kind: "ram" | "device" | "flash";
  /** The device-tree node that describes it (QEMU's name), for devices. */
  readonly node?: string;
}

export const VIRT = {
  gicDist: 0x0800_0000n,
  gicCpu: 0x0801_0000n,
  gicRedist: 0x080a_0000n,
  /** Each GICv3 redistributor: RD_base and SGI_base frames of 64 KiB. */
  gicRedistStride: 0x2_0000n,
  uart: 0x0900_0000n,
  /** Two CFI flash banks of 64 MiB (VIRT_FLASH): bank 0 at 0, where a CPU starts at reset; bank 1 after it. */
  flash: 0x0n,
  flashBank: 0x400_0000n,
  virtioMmio: 0x0a00_0000n,
  virtioMmioStride: 0x200n,
  /** SPI of virtio-mmio transport 0 (virt's a15irqmap: VIRT_MMIO = 16); INTID = SPI + 32. */
  virtioMmioIntid: 32 + 16,
} as const;

/** The GICv2 CPU interface is 8 KiB (GICC_DIR at 0x1000, IHI 0048B 4.1.3); QEMU's 64 KiB window holds nothing else. */
const GICC_SIZE = 0x2000n;

export interface GuestMapOptions {
  /** A firmware guest: it is given the flash banks (its image is in bank 0). */
  readonly flash?: boolean;
}

export function guestMap(ramBase: bigint, ramSize: bigint, vcpus: number, gicVersion: 2 | 3, opts: GuestMapOptions = {}): Region[] {
  if (ramBase !== MACHINE_RAM_BASE && ramBase !== HANDOVER_RAM_BASE) throw new Error(`QEMU's virt machine has RAM at 0x${MACHINE_RAM_BASE.toString(16)}`);
  const gic: Region[] =
    gicVersion === 2
      ? [
          { name: "gic-distributor", ipa: VIRT.gicDist, pa: VIRT.gicDist, size: 0x1_0000n, kind: "device", node: "intc@8000000" },
          { name: "gic-cpu-interface", ipa: VIRT.gicCpu, pa: VIRT.gicCpu, size: GICC_SIZE, kind: "device", node: "intc@8000000" },
        ]
      : [
          { name: "gic-distributor", ipa: VIRT.gicDist, pa: VIRT.gicDist, size: 0x1_0000n, kind: "device", node: "intc@8000000" },
          { name: "gic-redistributors", ipa: VIRT.gicRedist, pa: VIRT.gicRedist, size: VIRT.gicRedistStride * BigInt(vcpus), kind: "device", node: "intc@8000000" },
        ];
  return [
    // QEMU's flash node covers both banks (one reg entry each): both are given, or neither.
    ...(opts.flash ? [0, 1].map((b): Region => ({ name: `flash${b}`, ipa: VIRT.flash + BigInt(b) * VIRT.flashBank, pa: VIRT.flash + BigInt(b) * VIRT.flashBank, size: VIRT.flashBank, kind: "flash", node: "flash@0" })) : []),
    { name: "ram", ipa: ramBase, pa: MACHINE_RAM_BASE + SHIM_SIZE, size: ramSize, kind: "ram" },
    ...gic,
    { name: "uart", ipa: VIRT.uart, pa: VIRT.uart, size: 0x1000n, kind: "device", node: "pl011@9000000" },
  ];
}
