/**
 * Debian's arm64 packages, fetched with apt's own client for a foreign architecture and cached outside
 * the repository (nothing downloaded is committed): `dpkg --add-architecture arm64` (done by setup),
 * `apt-get download`, `dpkg-deb -x`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export function cacheDir(): string {
  const dir = process.env.SMCVISOR_CACHE ?? join(homedir(), ".cache", "smcvisor");
  mkdirSync(dir, { recursive: true });
  return dir;
}

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** The package a meta-package depends on: linux-image-arm64 → linux-image-6.1.0-NN-arm64. */
export function resolveDepends(meta: string, arch = "arm64"): string {
  const out = sh("apt-cache", ["depends", "--no-recommends", "--no-suggests", `${meta}:${arch}`]);
  const m = /Depends: (linux-image-[^\s:]+)/.exec(out);
  if (!m) throw new Error(`cannot resolve ${meta}:${arch} (apt-cache depends said:\n${out.trim()})\nIs arm64 added (dpkg --add-architecture arm64 && apt-get update)?`);
  return m[1]!;
}

export interface FetchedPackage {
  readonly name: string;
  readonly deb: string;
  /** Directory the package's files were extracted into. */
  readonly root: string;
}

/** Downloads (once) and extracts (once) a package for `arch`. */
export function fetchPackage(name: string, arch = "arm64"): FetchedPackage {
  const debs = join(cacheDir(), "debs");
  mkdirSync(debs, { recursive: true });
  const version = /Candidate: (\S+)/.exec(sh("apt-cache", ["policy", `${name}:${arch}`]))?.[1];
  if (!version || version === "(none)") throw new Error(`Debian has no ${name}:${arch} candidate; run apt-get update (and dpkg --add-architecture ${arch})`);
  const fileVersion = version.replace(/:/g, "%3a");
  let deb = readdirSync(debs).find((f) => f.startsWith(`${name}_${fileVersion}_`) && f.endsWith(`_${arch}.deb`));
  if (!deb) {
    sh("apt-get", ["download", "-q", `${name}:${arch}=${version}`], debs);
    deb = readdirSync(debs).find((f) => f.startsWith(`${name}_`) && f.includes(fileVersion) && f.endsWith(`_${arch}.deb`));
    if (!deb) throw new Error(`apt-get download ${name}:${arch}=${version} left no .deb in ${debs}`);
  }
  const root = join(cacheDir(), "pkgs", `${name}_${fileVersion}_${arch}`);
  if (!existsSync(join(root, ".extracted"))) {
    const tmp = `${root}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    sh("dpkg-deb", ["-x", join(debs, deb), tmp]);
    sh("touch", [join(tmp, ".extracted")]);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
  }
  return { name, deb: join(debs, deb), root };
}
