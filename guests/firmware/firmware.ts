/**
 * Firmware guests from Debian's packages: fetched with the same apt client as the Linux guest
 * (guests/linux/debian.ts: `apt-get download`, `dpkg-deb -x`, into the cache; nothing downloaded is
 * committed). A firmware image is placed in the VM's flash and entered at its reset address
 * (docs/qemu-channel.md, "Firmware guests").
 *
 * - `u-boot-qemu` (Architecture: all): `usr/lib/u-boot/qemu_arm64/u-boot.bin`, U-Boot built for QEMU's
 *   virt machine (qemu_arm64_defconfig), run from flash at 0.
 * - `qemu-efi-aarch64` (Architecture: all): `usr/share/qemu-efi-aarch64/QEMU_EFI.fd`, EDK2's ArmVirtQemu
 *   UEFI (2 MiB, the whole of it fits flash bank 0); it formats its variable store in bank 1 (zeros here).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fetchPackage } from "../linux/debian.js";

/** Each packaged firmware: its Debian package (and architecture) and the image's path in it. */
const FIRMWARE = {
  "u-boot-qemu": { arch: "all", image: "usr/lib/u-boot/qemu_arm64/u-boot.bin" },
  "qemu-efi-aarch64": { arch: "all", image: "usr/share/qemu-efi-aarch64/QEMU_EFI.fd" },
} as const;

export type DebianFirmware = keyof typeof FIRMWARE;

/** The image of Debian's packaged firmware `name`, fetched (once) into the cache. */
export function ensureFirmware(name: DebianFirmware): string {
  const f = FIRMWARE[name];
  const pkg = fetchPackage(name, f.arch);
  const image = join(pkg.root, f.image);
  if (!existsSync(image)) throw new Error(`${pkg.name} (${pkg.deb}) has no ${f.image}`);
  return image;
}

// `node bin/run-ts.mjs guests/firmware/firmware.ts [name...]` fetches the firmware (setup's step) and prints where it is.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const names = process.argv.slice(2);
  const all = Object.keys(FIRMWARE) as DebianFirmware[];
  for (const n of names) if (!all.includes(n as DebianFirmware)) throw new Error(`unknown firmware ${n} (have: ${all.join(", ")})`);
  console.log(JSON.stringify(Object.fromEntries((names.length > 0 ? (names as DebianFirmware[]) : all).map((n) => [n, ensureFirmware(n)])), null, 2));
}
