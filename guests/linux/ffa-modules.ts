/**
 * FF-A for the Linux guest. Debian's 6.1 kernel leaves CONFIG_ARM_FFA_TRANSPORT unset, so it has neither
 * the FF-A driver (drivers/firmware/arm_ffa, built as ffa-module.ko) nor an optee.ko that can speak FF-A
 * (drivers/tee/optee/ffa_abi.c is compiled into Debian's optee.ko, but its registration is compiled out:
 * `IS_REACHABLE(CONFIG_ARM_FFA_TRANSPORT)` in ffa_abi.c). Both are built here as out-of-tree modules:
 *
 * - versions: every package is pinned to the version of the guest's kernel image package
 *   (linux-image-<abi>-arm64 = V): linux-headers-<abi>-arm64 = V (.config, Module.symvers, generated
 *   headers), the common headers and linux-kbuild-<major.minor> it depends on (= V; kbuild for the host's
 *   architecture: fixdep and modpost run on the host), linux-source-<major.minor> = V (the two driver
 *   directories only). All come from one Debian source upload, so Module.symvers' CRCs and the vermagic
 *   are those of the running kernel;
 * - the build: the headers' own Makefile (ARCH=arm64, KERNELRELEASE, `CC = $(CROSS_COMPILE)gcc-12`), M=
 *   each directory, with the two Kconfig symbols set as Kconfig would for `=m` (make variables for the
 *   Makefiles' obj-$(CONFIG_...) lines, -DCONFIG_..._MODULE for the C code's IS_REACHABLE); optee links
 *   against ffa-module's Module.symvers (KBUILD_EXTRA_SYMBOLS) and Debian's tee.ko through the headers'
 *   Module.symvers; then `strip --strip-debug`, as `make modules_install INSTALL_MOD_STRIP=1` does;
 * - not signed (Debian's key is not public): CONFIG_MODULE_SIG=y without MODULE_SIG_FORCE, and lockdown
 *   only under EFI Secure Boot (LOCK_DOWN_KERNEL_FORCE_NONE, LOCK_DOWN_IN_EFI_SECURE_BOOT), which a guest
 *   smcvisor boots without EFI never has: the kernel loads them and taints itself (E, and O for
 *   out-of-tree). `ensureFfaModules` reads the headers' .config and refuses to build if that changes.
 *
 * The rebuilt optee.ko still has the SMC ABI (smc_abi.c, platform driver for DT linaro,optee-tz), but it
 * needs ffa-module's symbols to load at all, so only FF-A guests carry it (guest.ts `ffa: true`); every
 * other guest keeps Debian's signed optee.ko.
 *
 * Cached under the smcvisor cache directory by kernel, package version and build recipe; a cached call
 * costs one `apt-cache policy` and two stat calls.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheDir, fetchPackage } from "./debian.js";
import { modinfo } from "./modinfo.js";

/** Paths of the two modules. `arm_ffa` is drivers/firmware/arm_ffa's module, which Kbuild names ffa-module.ko. */
export interface FfaModules {
  readonly arm_ffa: string;
  readonly optee: string;
}

/** The module name of drivers/firmware/arm_ffa (its Makefile: `obj-$(CONFIG_ARM_FFA_TRANSPORT) = ffa-module.o`). */
export const FFA_MODULE = "ffa-module";

/** One Kbuild file per directory: the Kconfig answers this build needs, then the directory's own Makefile. */
const KBUILD = {
  arm_ffa: ["CONFIG_ARM_FFA_TRANSPORT := m", "CONFIG_ARM_FFA_SMCCC := y"],
  optee: ["CONFIG_OPTEE := m", "CONFIG_ARM_FFA_TRANSPORT := m"],
} as const;
const KCONFIG_DEFINES = "ccflags-y += -DCONFIG_ARM_FFA_TRANSPORT_MODULE=1 -DCONFIG_ARM_FFA_SMCCC=1";
const SOURCE_DIRS = { arm_ffa: "drivers/firmware/arm_ffa", optee: "drivers/tee/optee" } as const;
const STRIP = ["--strip-debug"];
/**
 * No build path in the modules, so every build gives the same bytes: __FILE__ relative to the source
 * tree as in Debian's own modules (Kbuild maps $(srctree)/ away, but an M= directory is outside it), and
 * the debug info the GNU build ID is computed over (stripped afterwards) relative to the work directory.
 */
const PREFIX_MAP = (tree: string, work: string) => `KCFLAGS=-fmacro-prefix-map=${tree}/= -fdebug-prefix-map=${work}/=`;

/** The kernel's .config answers that decide whether unsigned modules load (see the file comment). */
const MUST_NOT_BE_SET = ["CONFIG_MODULE_SIG_FORCE", "CONFIG_LOCK_DOWN_KERNEL_FORCE_INTEGRITY", "CONFIG_LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY"];

const RECIPE = createHash("sha256")
  .update(JSON.stringify({ KBUILD, KCONFIG_DEFINES, SOURCE_DIRS, STRIP, PREFIX_MAP: PREFIX_MAP("", "") }))
  .digest("hex")
  .slice(0, 12);

type Progress = (line: string) => void;

/** Progress lines on a terminal only: a cold build takes a while, a cached call says nothing. */
const ttyProgress: Progress = (line) => {
  if (process.stderr.isTTY) process.stderr.write(`ffa-modules: ${line}\n`);
};

function sh(cmd: string, args: string[], opts: { cwd?: string; what?: string } = {}): string {
  try {
    return execFileSync(cmd, args, { cwd: opts.cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; stdout?: string; message: string };
    if (err.code === "ENOENT") throw new Error(`${cmd} is missing (needed to ${opts.what ?? "build the FF-A modules"})`);
    const lines = `${err.stderr ?? ""}\n${err.stdout ?? ""}`.split("\n").map((l) => l.trim()).filter(Boolean);
    const why = lines.find((l) => /^E: |error|No such file|not found/i.test(l)) ?? lines[0] ?? err.message;
    throw new Error(`${opts.what ?? `${cmd} ${args.join(" ")}`} failed: ${why}`);
  }
}

/** A package's control field, read from its .deb. */
function control(deb: string, field: string): string {
  return sh("dpkg-deb", ["-f", deb, field]).trim();
}

/**
 * Downloads (once) `name` at exactly `version` into the shared .deb cache. `arch` is left out for
 * Architecture: all packages (apt picks the one .deb there is).
 */
export function fetchExact(name: string, version: string, arch?: string): string {
  const debs = join(cacheDir(), "debs");
  mkdirSync(debs, { recursive: true });
  const fileVersion = version.replace(/:/g, "%3a");
  const find = () => readdirSync(debs).find((f) => f.startsWith(`${name}_${fileVersion}_`) && f.endsWith(".deb") && (arch === undefined || f.endsWith(`_${arch}.deb`) || f.endsWith("_all.deb")));
  let deb = find();
  if (!deb) {
    const spec = `${name}${arch ? `:${arch}` : ""}=${version}`;
    try {
      sh("apt-get", ["download", "-q", spec], { cwd: debs, what: `apt-get download ${spec}` });
    } catch (e) {
      throw new Error(`Debian's archive offers no ${spec}, which must match the guest's kernel exactly (${(e as Error).message}); run apt-get update, or pin the guest's kernel to a version whose headers and source the archive still has`);
    }
    deb = find();
    if (!deb) throw new Error(`apt-get download ${spec} left no .deb in ${debs}`);
  }
  return join(debs, deb);
}

/** `name (= V)` or `name (>= V)` in a Depends field: the package name, for the one whose name starts with `prefix`. */
export function dependencyNamed(depends: string, prefix: string): string | undefined {
  for (const alternative of depends.split(/[,|]/)) {
    const name = alternative.trim().split(/[\s(:]/)[0];
    if (name?.startsWith(prefix)) return name;
  }
  return undefined;
}

/** `CONFIG_X=y`-style answers of a kernel .config (unset ones are absent). */
export function kernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/**
 * A module's __versions section: the CRC it was built against for each symbol it imports, as
 * CONFIG_MODVERSIONS writes it (Linux include/linux/module.h struct modversion_info: a 64-bit CRC, then
 * a 56-byte NUL-padded name, 64 bytes per entry on 64-bit kernels).
 */
export function modversions(elf: Uint8Array): Map<string, number> {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (dv.getUint32(0, false) !== 0x7f45_4c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error("not a little-endian ELF64 file");
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true), shnum = dv.getUint16(0x3c, true), shstrndx = dv.getUint16(0x3e, true);
  const header = (i: number) => shoff + i * shentsize;
  const strtab = Number(dv.getBigUint64(header(shstrndx) + 0x18, true));
  const dec = new TextDecoder();
  const cstring = (from: number, max: number) => {
    let end = from;
    while (end < from + max && elf[end] !== 0) end++;
    return dec.decode(elf.subarray(from, end));
  };
  const out = new Map<string, number>();
  for (let i = 0; i < shnum; i++) {
    if (cstring(strtab + dv.getUint32(header(i), true), 64) !== "__versions") continue;
    const offset = Number(dv.getBigUint64(header(i) + 0x18, true)), size = Number(dv.getBigUint64(header(i) + 0x20, true));
    for (let e = offset; e + 64 <= offset + size; e += 64) out.set(cstring(e + 8, 56), Number(dv.getBigUint64(e, true) & 0xffff_ffffn));
  }
  return out;
}

/** The module's vermagic (`modinfo -F vermagic`). */
export function vermagic(ko: string): string | undefined {
  return modinfo(readFileSync(ko)).get("vermagic")?.[0];
}

interface Inputs {
  readonly kernelVersion: string;
  readonly version: string;
  /** Debian's own optee.ko for this kernel, whose vermagic the built modules must carry. */
  readonly debianOptee: string;
}

/** The kernel image package the guest boots, its version and its own optee.ko. */
function inputs(kernelVersion: string): Inputs {
  const image = fetchPackage(`linux-image-${kernelVersion}`);
  const version = control(image.deb, "Version");
  const debianOptee = join(image.root, "lib", "modules", kernelVersion, "kernel", SOURCE_DIRS.optee, "optee.ko");
  if (!existsSync(debianOptee)) throw new Error(`${image.name} ${version} has no ${SOURCE_DIRS.optee}/optee.ko`);
  return { kernelVersion, version, debianOptee };
}

/** Where a build of these inputs lives (the package version and the recipe name it). */
function outputDir(i: Inputs): string {
  return join(cacheDir(), "ffa-modules", i.kernelVersion, `${i.version.replace(/:/g, "%3a")}-${RECIPE}`);
}

/**
 * ffa-module.ko and an optee.ko with the FF-A ABI for Debian's kernel `kernelVersion` (6.1.0-57-arm64),
 * built once (about half a minute; see the file comment) and cached.
 */
export function ensureFfaModules(kernelVersion: string, progress: Progress = ttyProgress): FfaModules {
  const i = inputs(kernelVersion);
  const dir = outputDir(i);
  const result = { arm_ffa: join(dir, `${FFA_MODULE}.ko`), optee: join(dir, "optee.ko") };
  if (existsSync(result.arm_ffa) && existsSync(result.optee)) return result;
  const work = `${dir}.build-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const started = Date.now();
    build(i, work, progress);
    // Renamed as a whole, so a crash never leaves half a result behind; a concurrent build that finished
    // first wins (the builds are reproducible: its files are these bytes).
    try {
      renameSync(join(work, "out"), dir);
    } catch (e) {
      if (!existsSync(result.arm_ffa) || !existsSync(result.optee)) throw e;
    }
    progress(`built ${FFA_MODULE}.ko and optee.ko for ${kernelVersion} (${i.version}) in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return result;
}

function build(i: Inputs, work: string, progress: Progress): void {
  const hostArch = sh("dpkg", ["--print-architecture"]).trim();
  const mm = /^(\d+\.\d+)/.exec(i.version)?.[1];
  if (!mm) throw new Error(`cannot read the kernel series from version ${i.version}`);
  progress(`fetching linux-headers-${i.kernelVersion}, its common headers, linux-kbuild-${mm} and linux-source-${mm}, all ${i.version}`);
  const packages = buildPackages(i, mm, hostArch);
  const tree = kernelTree(i, packages.headers, join(work, "root"), hostArch);
  progress(`extracting ${SOURCE_DIRS.arm_ffa} and ${SOURCE_DIRS.optee} from linux-source-${mm}`);
  const srcTree = driverSources(packages.source, mm, join(work, "src"));
  const make = (name: keyof typeof SOURCE_DIRS, extra: string[]) => {
    const m = join(srcTree, SOURCE_DIRS[name]);
    writeFileSync(join(m, "Kbuild"), [...KBUILD[name], KCONFIG_DEFINES, "include $(src)/Makefile", ""].join("\n"));
    progress(`building ${SOURCE_DIRS[name]}`);
    const args = ["-C", tree.kdir, `M=${m}`, "ARCH=arm64", `CROSS_COMPILE=${tree.cross}`, PREFIX_MAP(srcTree, work), "-j2", ...extra, "modules"];
    sh("make", args, { what: `building ${SOURCE_DIRS[name]} (make, ${tree.cc})` });
    return m;
  };
  const ffaDir = make("arm_ffa", []);
  const opteeDir = make("optee", [`KBUILD_EXTRA_SYMBOLS=${join(ffaDir, "Module.symvers")}`]);
  const out = join(work, "out");
  mkdirSync(out);
  for (const [from, name] of [[join(ffaDir, `${FFA_MODULE}.ko`), `${FFA_MODULE}.ko`], [join(opteeDir, "optee.ko"), "optee.ko"]] as const) {
    sh(`${tree.cross}strip`, [...STRIP, "-o", join(out, name), from], { what: `stripping ${name} (binutils-aarch64-linux-gnu)` });
    const want = vermagic(i.debianOptee), got = vermagic(join(out, name));
    if (got !== want) throw new Error(`${name} was built with vermagic "${got}", Debian's optee.ko has "${want}"`);
  }
  const differ = crcMismatches(readFileSync(i.debianOptee), readFileSync(join(out, "optee.ko")));
  if (differ.length > 0) throw new Error(`optee.ko was built against other symbol versions than Debian's optee.ko (${differ.join(", ")}): the headers do not match the kernel`);
}

/** The .debs of the build, every one at the kernel image's version. */
function buildPackages(i: Inputs, mm: string, hostArch: string): { headers: readonly string[]; source: string } {
  const headersName = `linux-headers-${i.kernelVersion}`;
  const headers = fetchExact(headersName, i.version, "arm64");
  const depends = control(headers, "Depends");
  const common = dependencyNamed(depends, "linux-headers-");
  const kbuild = dependencyNamed(depends, "linux-kbuild-");
  if (!common || !kbuild) throw new Error(`${headersName} ${i.version} depends on no common headers or kbuild package (Depends: ${depends})`);
  // kbuild for the host: fixdep and modpost run here.
  return { headers: [headers, fetchExact(common, i.version), fetchExact(kbuild, i.version, hostArch)], source: fetchExact(`linux-source-${mm}`, i.version) };
}

/**
 * The headers of the kernel image package `kernelVersion` at its exact version, unpacked under `root` and
 * checked as for the FF-A modules: what another out-of-tree module (the handover module) builds against.
 */
export function headersTree(kernelVersion: string, root: string): { kdir: string; cross: string; cc: string; version: string; debianOptee: string } {
  const i = inputs(kernelVersion);
  const hostArch = sh("dpkg", ["--print-architecture"]).trim();
  const mm = /^(\d+\.\d+)/.exec(i.version)?.[1];
  if (!mm) throw new Error(`cannot read the kernel series from version ${i.version}`);
  return { ...kernelTree(i, buildPackages(i, mm, hostArch).headers, root, hostArch), version: i.version, debianOptee: i.debianOptee };
}

/**
 * The headers and kbuild unpacked into one tree under `root` (so their relative symlinks, scripts ->
 * ../../lib/linux-kbuild-6.1/scripts, resolve), checked, and the cross prefix of its compiler.
 */
function kernelTree(i: Inputs, debs: readonly string[], root: string, hostArch: string): { kdir: string; cross: string; cc: string } {
  for (const deb of debs) sh("dpkg-deb", ["-x", deb, root], { what: `unpacking ${deb}` });
  const kdir = join(root, "usr", "src", `linux-headers-${i.kernelVersion}`);
  const config = kernelConfig(readFileSync(join(kdir, ".config"), "utf8"));
  const forced = MUST_NOT_BE_SET.filter((k) => config.get(k) === "y");
  if (forced.length > 0) throw new Error(`linux-headers-${i.kernelVersion} ${i.version} has ${forced.join(", ")}: the kernel would refuse unsigned modules, so FF-A modules built here cannot load`);
  const ffa = config.get("CONFIG_ARM_FFA_TRANSPORT");
  if (ffa) throw new Error(`linux-headers-${i.kernelVersion} ${i.version} already has CONFIG_ARM_FFA_TRANSPORT=${ffa}: use the kernel's own modules`);
  // The arm64 headers' Makefile includes the common headers' by absolute path (/usr/src/...): point it into this tree.
  const makefile = join(kdir, "Makefile");
  const text = readFileSync(makefile, "utf8");
  if (!/^include \/usr\/src\//m.test(text)) throw new Error(`${makefile} does not include the common headers' Makefile from /usr/src as expected`);
  writeFileSync(makefile, text.replace(/^include \/usr\/src\//m, `include ${root}/usr/src/`));
  // The kernel's compiler, as the headers name it (CC = $(CROSS_COMPILE)gcc-12).
  const cross = hostArch === "arm64" ? "" : "aarch64-linux-gnu-";
  const gcc = /\$\(CROSS_COMPILE\)(gcc(?:-\d+)?)/.exec(readFileSync(join(kdir, ".kernelvariables"), "utf8"))?.[1] ?? "gcc";
  try {
    execFileSync("sh", ["-c", `command -v ${cross}${gcc}`], { stdio: "ignore" });
  } catch {
    const pkg = cross ? `${gcc}-aarch64-linux-gnu` : gcc;
    throw new Error(`${cross}${gcc}, the compiler Debian's kernel was built with, is missing: install ${pkg} (apt-get install ${pkg})`);
  }
  return { kdir, cross, cc: `${cross}${gcc}` };
}

/** Only the two driver directories, out of linux-source's tarball; returns the source tree's top. */
function driverSources(deb: string, mm: string, dir: string): string {
  sh("dpkg-deb", ["-x", deb, dir], { what: `unpacking linux-source-${mm}` });
  const tarball = join(dir, "usr", "src", `linux-source-${mm}.tar.xz`);
  const top = `linux-source-${mm}`;
  sh("tar", ["-xJf", tarball, "-C", dir, `${top}/${SOURCE_DIRS.arm_ffa}`, `${top}/${SOURCE_DIRS.optee}`], { what: `extracting the drivers from ${tarball} (tar with xz-utils)` });
  return join(dir, top);
}

/**
 * Symbols both modules import (Debian's tee.ko's and the kernel's) whose CRCs differ: none when the
 * rebuilt optee.ko binds to Debian's tee.ko and kernel exactly as Debian's own optee.ko does.
 */
export function crcMismatches(debian: Uint8Array, rebuilt: Uint8Array): string[] {
  const theirs = modversions(debian);
  return [...modversions(rebuilt)].filter(([sym, crc]) => theirs.has(sym) && theirs.get(sym) !== crc).map(([sym]) => sym);
}
