/**
 * The Linux test guest: Debian's arm64 kernel Image and an initramfs built from Debian's packages,
 * cached under the smcvisor cache directory and rebuilt only when an input changes.
 */
import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildInitramfs } from "./initramfs.js";
import { cacheDir, fetchPackage, resolveDepends } from "./debian.js";
import { teeClientFiles } from "./tee-client.js";

export const DEFAULT_MODULES = ["tee", "optee", "arm_smccc_trng", "optee-rng"] as const;

export interface LinuxGuest {
  readonly kernel: string;
  readonly initrd: string;
  readonly kernelVersion: string;
  readonly modules: readonly string[];
}

export interface LinuxGuestOptions {
  /** Debian kernel package; default: what linux-image-arm64 depends on. */
  readonly kernelPackage?: string;
  readonly modules?: readonly string[];
  readonly files?: readonly { readonly path: string; readonly data: Uint8Array; readonly mode?: number }[];
  /** Include the OP-TEE client userspace (teec-client, libteec, libc, tee-supplicant); default true. */
  readonly teeClient?: boolean;
}

function walk(dir: string, out: Map<string, string>): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith(".ko")) out.set(e.name.slice(0, -3), p);
  }
}

export function ensureLinuxGuest(opts: LinuxGuestOptions = {}): LinuxGuest {
  const kernelPkg = fetchPackage(opts.kernelPackage ?? resolveDepends("linux-image-arm64"));
  const busybox = fetchPackage("busybox-static");
  const bootDir = join(kernelPkg.root, "boot");
  const vmlinuz = readdirSync(bootDir).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`${kernelPkg.name} has no /boot/vmlinuz-*`);
  const kernelVersion = vmlinuz.slice("vmlinuz-".length);
  const modulePaths = new Map<string, string>();
  walk(join(kernelPkg.root, "lib", "modules", kernelVersion), modulePaths);
  const init = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "init.sh"), "utf8");
  const modules = opts.modules ?? DEFAULT_MODULES;
  const files = [...(opts.teeClient === false ? [] : teeClientFiles()), ...(opts.files ?? [])];
  // The initramfs is named after a hash of everything that goes into it.
  const h = createHash("sha256").update(kernelVersion).update(init).update(modules.join(",")).update(busybox.deb);
  for (const f of files) h.update(f.path).update(f.data);
  const dir = join(cacheDir(), "linux", kernelVersion);
  mkdirSync(dir, { recursive: true });
  const initrd = join(dir, `initramfs-${h.digest("hex").slice(0, 16)}.cpio.gz`);
  if (!existsSync(initrd)) {
    const data = buildInitramfs({ busybox: join(busybox.root, "bin", "busybox"), modules, modulePaths, init, files });
    // Written under a temporary name and renamed, so a crash never leaves a half-written initramfs behind.
    writeFileSync(`${initrd}.tmp`, data);
    renameSync(`${initrd}.tmp`, initrd);
  }
  // Debian's arm64 vmlinuz is a gzip-compressed Image; smcvisor loads the Image itself (no boot loader).
  const image = join(dir, "Image");
  if (!existsSync(image)) {
    const raw = readFileSync(join(bootDir, vmlinuz));
    writeFileSync(`${image}.tmp`, raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw);
    renameSync(`${image}.tmp`, image);
  }
  return { kernel: image, initrd, kernelVersion, modules };
}

// `node bin/run-ts.mjs guests/linux/guest.ts` builds the default guest and prints where it is.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(JSON.stringify(ensureLinuxGuest(), null, 2));
}
