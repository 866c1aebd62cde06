/**
 * The boot disk of examples/uefi-linux.yaml: an EFI system partition (boot-disk.ts) holding the Linux
 * guest's kernel (Debian's arm64 Image: a PE/COFF image, the kernel's EFI stub, that UEFI runs as an
 * application) as \EFI\DEBIAN\LINUX.EFI, its initramfs as \INITRD, and a \STARTUP.NSH that UEFI's shell
 * runs: the kernel with `initrd=` and the command line. Built into the cache once per input.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheDir } from "../linux/debian.js";
import { ensureLinuxGuest } from "../linux/guest.js";
import { buildBootDisk } from "./boot-disk.js";

/** Bumped when boot-disk.ts lays a disk out differently, so cached images are rebuilt. */
const LAYOUT_VERSION = "fat16-mbr-2";
/**
 * Not the removable-media default \EFI\BOOT\BOOTAA64.EFI (UEFI 2.10 §3.5.1.1): UEFI's boot manager would
 * start a file there itself, with no load options, so the kernel would get neither `initrd=` nor its command
 * line. With nothing at the default path the boot manager falls through to the shell, which runs startup.nsh.
 */
export const KERNEL_PATH = "EFI/DEBIAN/LINUX.EFI";

/** The shell script: UEFI's shell maps the disk's file system as fs0 (the VM has no other). */
export function startupScript(cmdline: string): string {
  if (/[\r\n^]/.test(cmdline)) throw new Error("the kernel command line is one line without ^ (the UEFI shell's escape character)");
  return `fs0:\r\n\\${KERNEL_PATH.replace(/\//g, "\\")} initrd=\\INITRD ${cmdline}\r\n`;
}

/** The disk image for the Debian Linux guest booted by UEFI with `cmdline`: its path in the cache. */
export function ensureDebianBootDisk(cmdline: string): string {
  const linux = ensureLinuxGuest();
  const script = startupScript(cmdline);
  const h = createHash("sha256").update(basename(linux.initrd)).update(linux.kernelVersion).update(script).update(LAYOUT_VERSION);
  const dir = join(cacheDir(), "disks");
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `uefi-linux-${h.digest("hex").slice(0, 16)}.img`);
  if (!existsSync(out)) {
    const disk = buildBootDisk([
      { path: KERNEL_PATH, data: readFileSync(linux.kernel) },
      { path: "INITRD", data: readFileSync(linux.initrd) },
      { path: "STARTUP.NSH", data: new TextEncoder().encode(script) },
    ]);
    writeFileSync(`${out}.tmp`, disk);
    renameSync(`${out}.tmp`, out);
  }
  return out;
}

// `node bin/run-ts.mjs guests/firmware/debian-disk.ts [cmdline]`: builds it (scripts/setup).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(ensureDebianBootDisk(process.argv[2] ?? "console=ttyAMA0 rdinit=/init panic=-1"));
}
