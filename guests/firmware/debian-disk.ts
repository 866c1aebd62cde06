/**
 * The boot disk of examples/uefi-linux.yaml: an EFI system partition (boot-disk.ts) holding the Linux
 * guest's kernel (Debian's arm64 Image: a PE/COFF image, the kernel's EFI stub, that UEFI runs as an
 * application) as \EFI\DEBIAN\LINUX.EFI, its initramfs as \INITRD, and a \STARTUP.NSH that UEFI's shell
 * runs: the kernel with `initrd=` and the command line. Built into the cache once per input.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheDir } from "../linux/debian.js";
import { parse } from "yaml";
import { DEFAULT_MODULES, ensureLinuxGuest } from "../linux/guest.js";
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

/**
 * What the Linux on the disk loads besides the guest's usual modules: the disk's own driver (Debian builds
 * virtio-mmio and virtio-blk as modules) and the FAT file system with the code pages its mount asks for
 * (FAT_DEFAULT_CODEPAGE 437, FAT_DEFAULT_IOCHARSET ascii in Debian's config), so a scenario's `run:` can
 * read the disk it booted from.
 */
export const DISK_MODULES = ["virtio_mmio", "virtio_blk", "fat", "vfat", "nls_cp437", "nls_ascii"] as const;

/**
 * The disk image for the Debian Linux guest booted by UEFI with `cmdline`: its path in the cache. `run`:
 * shell commands its init runs before powering off (the initramfs's /etc/smcvisor/run.sh, as for a kernel guest).
 */
export function ensureDebianBootDisk(cmdline: string, run?: string): string {
  const files = run === undefined ? [] : [{ path: "etc/smcvisor/run.sh", data: new TextEncoder().encode(`#!/bin/sh\n${run}\n`), mode: 0o755 }];
  const linux = ensureLinuxGuest({ modules: [...DEFAULT_MODULES, ...DISK_MODULES], files });
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

/**
 * `node bin/run-ts.mjs guests/firmware/debian-disk.ts [scenario.yaml]`: builds the disk of every guest of the
 * scenario (default examples/uefi-linux.yaml) with `disk: debian`, with its command line and `run:` (scripts/setup).
 */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..", "..", "examples", "uefi-linux.yaml");
  const guests = (parse(readFileSync(file, "utf8")) as { guests?: Record<string, { disk?: string; cmdline?: string; run?: string }> }).guests ?? {};
  for (const g of Object.values(guests)) {
    if (g.disk === "debian") console.log(ensureDebianBootDisk(g.cmdline ?? "console=ttyAMA0 rdinit=/init panic=-1", g.run));
  }
}
