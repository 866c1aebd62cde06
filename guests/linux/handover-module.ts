/**
 * The handover module (guests/linux/handover/smcv_handover.c, docs/handover.md): built out of tree against
 * Debian's linux-headers for exactly the guest's kernel, as the FF-A modules are (ffa-modules.ts: the same
 * packages, the same checks, not signed), then `strip --strip-debug`. Cached under the smcvisor cache
 * directory by kernel, package version and a hash of the module's source; a cached call costs what
 * fetching the (cached) kernel package costs and a stat.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { cacheDir, fetchPackage } from "./debian.js";
import { headersTree, vermagic } from "./ffa-modules.js";

export const HANDOVER_MODULE = "smcv_handover";

const SOURCE_DIR = join(dirname(fileURLToPath(import.meta.url)), "handover");
const SOURCES = ["Kbuild", `${HANDOVER_MODULE}.c`];

function run(cmd: string, args: string[], what: string, cwd?: string): void {
  try {
    execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; stdout?: string; message: string };
    if (err.code === "ENOENT") throw new Error(`${cmd} is missing (needed for ${what})`);
    const lines = `${err.stderr ?? ""}\n${err.stdout ?? ""}`.split("\n").map((l) => l.trim()).filter(Boolean);
    throw new Error(`${what} failed: ${lines.find((l) => /error/i.test(l)) ?? lines[0] ?? err.message}`);
  }
}

/** smcv_handover.ko for Debian's kernel `kernelVersion` (6.1.0-57-arm64), built once (a few seconds) and cached. */
export function ensureHandoverModule(kernelVersion: string): string {
  const h = createHash("sha256");
  for (const f of SOURCES) h.update(f).update(readFileSync(join(SOURCE_DIR, f)));
  const recipe = h.digest("hex").slice(0, 12);
  const image = fetchPackage(`linux-image-${kernelVersion}`);
  const version = execFileSync("dpkg-deb", ["-f", image.deb, "Version"], { encoding: "utf8" }).trim();
  const dir = join(cacheDir(), "handover-module", kernelVersion, `${version.replace(/:/g, "%3a")}-${recipe}`);
  const ko = join(dir, `${HANDOVER_MODULE}.ko`);
  if (existsSync(ko)) return ko;
  const work = `${dir}.build-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const tree = headersTree(kernelVersion, join(work, "root"));
    if (tree.version !== version) throw new Error(`linux-headers-${kernelVersion} is ${tree.version}, the kernel ${version}`);
    const src = join(work, "src");
    mkdirSync(src);
    for (const f of SOURCES) copyFileSync(join(SOURCE_DIR, f), join(src, f));
    run("make", ["-C", tree.kdir, `M=${src}`, "ARCH=arm64", `CROSS_COMPILE=${tree.cross}`, `KCFLAGS=-fmacro-prefix-map=${src}/= -fdebug-prefix-map=${work}/=`, "modules"], `building ${HANDOVER_MODULE}.ko (make, ${tree.cc})`);
    const out = join(work, "out");
    mkdirSync(out);
    run(`${tree.cross}strip`, ["--strip-debug", "-o", join(out, `${HANDOVER_MODULE}.ko`), join(src, `${HANDOVER_MODULE}.ko`)], `stripping ${HANDOVER_MODULE}.ko`);
    const want = vermagic(tree.debianOptee), got = vermagic(join(out, `${HANDOVER_MODULE}.ko`));
    if (got !== want) throw new Error(`${HANDOVER_MODULE}.ko was built with vermagic "${got}", the kernel's modules have "${want}"`);
    try {
      renameSync(out, dir);
    } catch (e) {
      if (!existsSync(ko)) throw e;
    }
    return ko;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
