// Firmware guests (issue 13): Debian's U-Boot for QEMU's virt machine (u-boot-qemu, Architecture: all:
// qemu_arm64/u-boot.bin) and EDK2's UEFI for it (qemu-efi-aarch64, Architecture: all: QEMU_EFI.fd),
// fetched with apt's own client (`apt-get download`, as the Linux guest's packages: guests/linux/debian.ts)
// and unpacked into the cache; nothing is installed on the host. A few seconds
// cold, instant cached. examples/firmware.yaml and test/qemu/firmware.test.ts boot them.
import { execFileSync } from "node:child_process";

export const steps = [
  {
    name: "Debian firmware for firmware guests (u-boot-qemu, qemu-efi-aarch64)",
    for: ["tests"],
    run(ctx) {
      execFileSync("node", ["bin/run-ts.mjs", "guests/firmware/firmware.ts", "u-boot-qemu", "qemu-efi-aarch64"], { cwd: ctx.root, stdio: ["ignore", "ignore", "inherit"] });
    },
  },
];
