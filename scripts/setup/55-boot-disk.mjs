// The boot disk of examples/uefi-linux.yaml: an EFI system partition (MBR + FAT16) made in TypeScript
// (guests/firmware/boot-disk.ts) with the Linux guest's kernel and initramfs (step 30; with the disk's own
// modules and the example's `run:`, read from the YAML) and a startup.nsh, written into the cache (~40 MB). No host tools: no mkfs, no mtools, no loop mounts. A few seconds
// cold, instant cached. test/qemu/uefi-linux.test.ts boots it under UEFI (step 50).
import { execFileSync } from "node:child_process";

export const steps = [
  {
    name: "UEFI boot disk with the Linux guest (EFI system partition)",
    for: ["tests"],
    run(ctx) {
      execFileSync("node", ["bin/run-ts.mjs", "guests/firmware/debian-disk.ts"], { cwd: ctx.root, stdio: ["ignore", "ignore", "inherit"] });
    },
  },
];
