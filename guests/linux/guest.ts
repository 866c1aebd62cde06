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
import { cacheDir, fetchPackage, resolveDepends, type FetchedPackage } from "./debian.js";
import { ensureFfaModules, FFA_MODULE, type FfaModules } from "./ffa-modules.js";
import { teeClientFiles } from "./tee-client.js";
import { ensureHandoverModule, HANDOVER_MODULE } from "./handover-module.js";

export const DEFAULT_MODULES = ["tee", "optee", "arm_smccc_trng", "optee-rng"] as const;
/** An FF-A guest's: the FF-A driver, then (its depends= says so) the rebuilt optee.ko. */
export const FFA_MODULES = ["tee", FFA_MODULE, "optee", "arm_smccc_trng", "optee-rng"] as const;

export interface LinuxGuest {
  readonly kernel: string;
  readonly initrd: string;
  readonly kernelVersion: string;
  readonly modules: readonly string[];
  /** The FF-A modules in this guest's initramfs (only with `ffa: true`). */
  readonly ffa?: FfaModules;
}

export interface LinuxGuestOptions {
  /** Debian kernel package; default: what linux-image-arm64 depends on. */
  readonly kernelPackage?: string;
  readonly modules?: readonly string[];
  readonly files?: readonly { readonly path: string; readonly data: Uint8Array; readonly mode?: number }[];
  /** Include the OP-TEE client userspace (teec-client, libteec, libc, tee-supplicant); default true. */
  readonly teeClient?: boolean;
  /**
   * FF-A: the initramfs carries ffa-module.ko and the optee.ko rebuilt with the FF-A ABI (ffa-modules.ts)
   * instead of Debian's optee.ko, and loads ffa-module first. Default false: other guests are unchanged.
   */
  readonly ffa?: boolean;
  /**
   * The hyp-stub handover (docs/handover.md): the initramfs carries smcv_handover.ko at
   * /lib/modules/smcv_handover.ko, built for the kernel (handover-module.ts), for the scenario to insmod.
   */
  readonly handover?: boolean;
}

function walk(dir: string, out: Map<string, string>): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.name.endsWith(".ko")) out.set(e.name.slice(0, -3), p);
  }
}

/** The kernel package (default: what linux-image-arm64 depends on), fetched, and its release (6.1.0-57-arm64). */
export function guestKernel(kernelPackage?: string): { readonly pkg: FetchedPackage; readonly vmlinuz: string; readonly kernelVersion: string } {
  const pkg = fetchPackage(kernelPackage ?? resolveDepends("linux-image-arm64"));
  const vmlinuz = readdirSync(join(pkg.root, "boot")).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) throw new Error(`${pkg.name} has no /boot/vmlinuz-*`);
  return { pkg, vmlinuz, kernelVersion: vmlinuz.slice("vmlinuz-".length) };
}

export function ensureLinuxGuest(opts: LinuxGuestOptions = {}): LinuxGuest {
  const { pkg: kernelPkg, vmlinuz, kernelVersion } = guestKernel(opts.kernelPackage);
  const busybox = fetchPackage("busybox-static");
  const bootDir = join(kernelPkg.root, "boot");
  const modulePaths = new Map<string, string>();
  walk(join(kernelPkg.root, "lib", "modules", kernelVersion), modulePaths);
  const init = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "init.sh"), "utf8");
  const ffa = opts.ffa === true ? ensureFfaModules(kernelVersion) : undefined;
  if (ffa) {
    modulePaths.set(FFA_MODULE, ffa.arm_ffa);
    modulePaths.set("optee", ffa.optee);
  }
  const modules = opts.modules ?? (ffa ? FFA_MODULES : DEFAULT_MODULES);
  const handover = opts.handover === true ? [{ path: `lib/modules/${HANDOVER_MODULE}.ko`, data: new Uint8Array(readFileSync(ensureHandoverModule(kernelVersion))), mode: 0o644 }] : [];
  const files = [...(opts.teeClient === false ? [] : teeClientFiles()), ...(opts.files ?? []), ...handover];
  // The initramfs is named after a hash of everything that goes into it.
  const h = createHash("sha256").update(kernelVersion).update(init).update(modules.join(",")).update(busybox.deb);
  for (const f of files) h.update(f.path).update(f.data);
  // Only FF-A guests hash more, so every other guest's initramfs keeps its name.
  if (ffa) h.update("ffa").update(readFileSync(ffa.arm_ffa)).update(readFileSync(ffa.optee));
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
  return { kernel: image, initrd, kernelVersion, modules, ...(ffa ? { ffa } : {}) };
}

// `node bin/run-ts.mjs guests/linux/guest.ts` builds the default guest and prints where it is;
// `... guest.ts --ffa` the FF-A guest; `... guest.ts --ffa-modules` only the FF-A modules for the default
// kernel (setup's step: a few seconds when cached), a failure there as one line on stdout,
// {"error": "..."}, for setup to print.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes("--ffa-modules")) {
    try {
      console.log(JSON.stringify(ensureFfaModules(guestKernel().kernelVersion), null, 2));
    } catch (e) {
      console.log(JSON.stringify({ error: (e as Error).message }));
      process.exitCode = 1;
    }
  } else if (process.argv.includes("--handover-module")) {
    // The handover module only (setup's 45-handover-module step), a failure as {"error": "..."} as above.
    try {
      console.log(JSON.stringify({ module: ensureHandoverModule(guestKernel().kernelVersion) }, null, 2));
    } catch (e) {
      console.log(JSON.stringify({ error: (e as Error).message }));
      process.exitCode = 1;
    }
  } else {
    console.log(JSON.stringify(ensureLinuxGuest({ ffa: process.argv.includes("--ffa") }), null, 2));
  }
}
