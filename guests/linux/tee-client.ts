/**
 * The OP-TEE userspace for the Linux guest, from Debian's packages only: teec-client (tee-client/, built
 * here with the AArch64 cross compiler against optee-client-dev's headers and libteec1), libteec1, Debian's
 * arm64 C library and tee-supplicant. Returned as initramfs files; the binary is cached by a hash of its
 * inputs.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheDir, fetchPackage } from "./debian.js";

export interface GuestFile {
  readonly path: string;
  readonly data: Uint8Array;
  readonly mode?: number;
}

const MULTIARCH = "aarch64-linux-gnu";

export function teeClientFiles(): GuestFile[] {
  const dev = fetchPackage("optee-client-dev");
  const lib = fetchPackage("libteec1");
  const libc = fetchPackage("libc6");
  const supplicant = fetchPackage("tee-supplicant");
  const source = join(dirname(fileURLToPath(import.meta.url)), "tee-client", "teec-client.c");
  const libdir = join(lib.root, "usr", "lib", MULTIARCH);
  const h = createHash("sha256").update(readFileSync(source)).update(dev.deb).update(lib.deb).digest("hex").slice(0, 16);
  const out = join(cacheDir(), "tee-client", h, "teec-client");
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    execFileSync(`${MULTIARCH}-gcc`, ["-O2", "-Wall", "-Werror", "-I", join(dev.root, "usr", "include"), "-o", `${out}.tmp`, source, "-L", libdir, "-l:libteec.so.1", "-lpthread"], { stdio: ["ignore", "inherit", "inherit"] });
    renameSync(`${out}.tmp`, out);
  }
  const file = (path: string, from: string, mode = 0o755): GuestFile => ({ path, data: readFileSync(from), mode });
  const ld = join(libc.root, "lib", MULTIARCH, "ld-linux-aarch64.so.1");
  return [
    file("usr/bin/teec-client", out),
    file("usr/sbin/tee-supplicant", join(supplicant.root, "usr", "sbin", "tee-supplicant")),
    file(`lib/${MULTIARCH}/libteec.so.1`, join(libdir, "libteec.so.1.0.0"), 0o644),
    file(`lib/${MULTIARCH}/libc.so.6`, join(libc.root, "lib", MULTIARCH, "libc.so.6"), 0o644),
    // The program interpreter is looked up by its absolute path.
    file("lib/ld-linux-aarch64.so.1", ld),
    file(`lib/${MULTIARCH}/ld-linux-aarch64.so.1`, ld),
  ];
}
