#!/usr/bin/env node
// Arm's FF-A Architecture Compliance Suite (ARM-software/ff-a-acs) for smcvisor: fetches the suite at a
// pinned commit into smcvisor's download cache (never into the repository), lays smcvisor's platform port
// over it (scripts/ffa-acs/platform/, our own files) and builds the one endpoint image smcvisor boots, vm1,
// with Debian's cross compiler. Idempotent: a second run with nothing changed does nothing.
// docs/ffa-acs.md says what runs and why.
//
//   node scripts/ffa-acs/fetch-and-build.mjs           fetch (if needed) and build (if needed)
//   node scripts/ffa-acs/fetch-and-build.mjs --force   rebuild even if the image is up to date
//
// Offline: SMCVISOR_FFA_ACS_GIT and SMCVISOR_FFA_ACS_COMMON_VAL_GIT name another clone (a URL or a local
// git directory) holding the pinned commits. SMCVISOR_CACHE moves the cache (default ~/.cache/smcvisor).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/**
 * What is built: the suite's main branch as of 2026-05-07 (release v1.2, "EAC") and the commit of its
 * val_common submodule that this commit pins (`git ls-tree <commit> val_common`). The linux-acs
 * submodule is only for the Linux user-space build (TARGET_LINUX=1) and is not fetched.
 */
export const ACS = {
  url: "https://github.com/ARM-software/ff-a-acs.git",
  commit: "7dcc13b21f38021484b15e7bdec0248c569e3fdf",
  commonValUrl: "https://github.com/ARM-software/psa-acs-common-val.git",
  commonValCommit: "36ad62ef04ec5cccc65e541547c85e7a621bb364",
};

/** The platform port (ours), copied to platform/pal_baremetal/<TARGET> in the suite's tree. */
export const TARGET = "tgt_smcvisor_qemu";

/**
 * The suite's CMake options (its README, "Build steps"; CMakeLists.txt checks each):
 * - CROSS_COMPILE: Debian's gcc-aarch64-linux-gnu. Arm's own Xen scripts build the bare-metal vm1 with a
 *   Linux-targeting GCC too (tools/build-scripts-fvp/scripts/acs.sh: aarch64-none-linux-gnu-).
 * - PLATFORM_NS_HYPERVISOR_PRESENT=1: vm1 is a guest at EL1 under a hypervisor and takes its endpoint ID
 *   from FFA_ID_GET (val/src/val_main.c); with 0 it would run at EL2 as the whole normal world.
 * - PLATFORM_SP_EL=1, PLATFORM_SPMC_EL=2: the reference configuration. The endpoint table still lists
 *   SP1-SP4 (tools/python/ffa_endpoints.py); vm1 marks each present or absent from its own
 *   FFA_PARTITION_INFO_GET at boot (val_ep_info_relayer_sync), so tests that need them skip when absent.
 * - VERBOSE=1: the INFO lines that say why a test setup was skipped; the test parses them.
 */
export const CMAKE_OPTIONS = [
  "-DCROSS_COMPILE=aarch64-linux-gnu-",
  `-DTARGET=${TARGET}`,
  "-DPLATFORM_NS_HYPERVISOR_PRESENT=1",
  "-DPLATFORM_SPMC_EL=2",
  "-DPLATFORM_SP_EL=1",
  "-DPLATFORM_FFA_V_ALL=1",
  "-DSUITE=all",
  "-DVERBOSE=1",
  "-DCMAKE_BUILD_TYPE=Release",
];

/** Where everything lives in the cache. */
export function acsPaths(cacheDir = process.env.SMCVISOR_CACHE ?? join(homedir(), ".cache", "smcvisor")) {
  const dir = join(cacheDir, "ffa-acs");
  return { dir, src: join(dir, "src"), build: join(dir, "build"), image: join(dir, "vm1.bin"), stamp: join(dir, "vm1.json"), log: join(dir, "build.log") };
}

/** The tools the build runs, each with the Debian package that provides it. */
const TOOLS = [
  ["git", "git"],
  ["cmake", "cmake"],
  ["make", "make"],
  ["python3", "python3"],
  ["aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"],
  ["aarch64-linux-gnu-ld", "binutils-aarch64-linux-gnu"],
  ["aarch64-linux-gnu-ar", "binutils-aarch64-linux-gnu"],
  ["aarch64-linux-gnu-objcopy", "binutils-aarch64-linux-gnu"],
  ["aarch64-linux-gnu-objdump", "binutils-aarch64-linux-gnu"],
];

const have = (cmd) => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

/** One line per missing tool: what is missing and the package to install. */
export function missingTools() {
  return TOOLS.filter(([cmd]) => !have(cmd)).map(([cmd, pkg]) => `ffa-acs: ${cmd} is missing: install ${pkg} (apt-get install ${pkg})`);
}

const git = (dir, argv, opts = {}) => execFileSync("git", ["-C", dir, ...argv], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts }).trim();

function headOf(dir) {
  try {
    return git(dir, ["rev-parse", "HEAD"]);
  } catch {
    return null;
  }
}

/**
 * A work tree of `url` at `commit` in `dir`, fetched only if it is not there already. GitHub serves a
 * single commit by its ID (a shallow fetch); a source that does not gets a full fetch.
 */
function checkout(dir, url, commit, say) {
  if (headOf(dir) === commit) return false;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  git(dir, ["init", "-q"]);
  say(`fetching ${url} at ${commit.slice(0, 12)}`);
  try {
    git(dir, ["fetch", "-q", "--depth", "1", url, commit]);
  } catch {
    git(dir, ["fetch", "-q", url, "+refs/heads/*:refs/remotes/source/*"]);
  }
  git(dir, ["-c", "advice.detachedHead=false", "checkout", "-q", commit]);
  if (headOf(dir) !== commit) throw new Error(`${url}: could not check out ${commit}`);
  return true;
}

/** A digest of the platform port's files, so a change to them rebuilds. */
function portDigest() {
  const root = join(here, "platform", TARGET);
  const h = createHash("sha256");
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(relative(root, p)).update("\0").update(readFileSync(p)).update("\0");
    }
  };
  walk(root);
  return h.digest("hex").slice(0, 16);
}

/** What the stamp records; the image is up to date when the stamp says the same. */
function wanted() {
  let gcc = "unknown";
  try {
    gcc = execFileSync("aarch64-linux-gnu-gcc", ["-dumpfullversion"], { encoding: "utf8" }).trim();
  } catch {
    // missingTools() reports it.
  }
  return { commit: ACS.commit, commonValCommit: ACS.commonValCommit, target: TARGET, port: portDigest(), options: CMAKE_OPTIONS, gcc };
}

/** True when vm1.bin is there and was built from exactly what would be built now. */
export function upToDate(paths = acsPaths()) {
  if (!existsSync(paths.image) || !existsSync(paths.stamp)) return false;
  try {
    const stamp = JSON.parse(readFileSync(paths.stamp, "utf8"));
    return JSON.stringify(stamp.built) === JSON.stringify(wanted());
  } catch {
    return false;
  }
}

/**
 * Fetches and builds vm1 if it is not up to date. Returns { image, built: boolean, seconds }. Throws an
 * error whose message is the whole line (`standalone`, as scripts/setup.mjs prints it) on a missing tool.
 */
export function fetchAndBuild({ cacheDir, force = false, say = (m) => process.stderr.write(`ffa-acs: ${m}\n`), jobs = 2 } = {}) {
  const paths = acsPaths(cacheDir);
  if (!force && upToDate(paths)) return { image: paths.image, built: false, seconds: 0 };
  const missing = missingTools();
  if (missing.length > 0) throw Object.assign(new Error(missing.join("\n")), { standalone: true });
  const started = Date.now();
  mkdirSync(paths.dir, { recursive: true });
  // A build that fails half-way leaves no stamp, so the next run builds again.
  rmSync(paths.stamp, { force: true });
  checkout(paths.src, process.env.SMCVISOR_FFA_ACS_GIT ?? ACS.url, ACS.commit, say);
  // The submodule's directory is an empty gitlink in the suite's tree: its own repository goes there.
  checkout(join(paths.src, "val_common"), process.env.SMCVISOR_FFA_ACS_COMMON_VAL_GIT ?? ACS.commonValUrl, ACS.commonValCommit, say);
  const port = join(paths.src, "platform", "pal_baremetal", TARGET);
  rmSync(port, { recursive: true, force: true });
  cpSync(join(here, "platform", TARGET), port, { recursive: true });

  rmSync(paths.build, { recursive: true, force: true });
  mkdirSync(paths.build, { recursive: true });
  say(`building vm1 (${TARGET}); log: ${paths.log}`);
  const log = [];
  const step = (cmd, argv) => {
    try {
      log.push(execFileSync(cmd, argv, { cwd: paths.build, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 }));
    } catch (e) {
      log.push(`${e.stdout ?? ""}${e.stderr ?? ""}`);
      writeFileSync(paths.log, log.join(""));
      const first = `${e.stderr ?? ""}`.split("\n").find((l) => /error/i.test(l)) ?? e.message;
      throw Object.assign(new Error(`ffa-acs: ${cmd} failed: ${first.trim()} (whole log: ${paths.log})`), { standalone: true });
    }
  };
  step("cmake", [paths.src, "-G", "Unix Makefiles", ...CMAKE_OPTIONS]);
  // Only vm1: the SP images (sp1-sp4.bin) run under an SPMC that loads real partition images, which
  // smcvisor's modelled SPMC does not (docs/ffa-acs.md).
  step("make", [`-j${jobs}`, "vm1_copy_bin_file"]);
  writeFileSync(paths.log, log.join(""));
  cpSync(join(paths.build, "output", "vm1.bin"), paths.image);
  const seconds = Math.round((Date.now() - started) / 1000);
  writeFileSync(paths.stamp, JSON.stringify({ built: wanted(), at: new Date().toISOString(), seconds }, null, 2) + "\n");
  return { image: paths.image, built: true, seconds };
}

/**
 * A setup step (scripts/setup.mjs's shape), not yet in scripts/setup/: a file there that re-exports it
 * (`export { steps } from "../ffa-acs/fetch-and-build.mjs";`) would make `npm test` build vm1.
 */
export const steps = [
  {
    name: "FF-A ACS vm1 image",
    for: ["tests"],
    run(ctx) {
      const r = fetchAndBuild({ cacheDir: ctx.cacheDir, say: ctx.say });
      if (r.built) ctx.say(`FF-A ACS vm1 built in ${r.seconds} s: ${r.image}`);
    },
  },
];

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    const r = fetchAndBuild({ force: process.argv.includes("--force") });
    process.stderr.write(r.built ? `ffa-acs: vm1 built in ${r.seconds} s: ${r.image}\n` : `ffa-acs: vm1 is up to date: ${r.image}\n`);
  } catch (e) {
    process.stderr.write(e.standalone ? `${e.message}\n` : `ffa-acs: ${e.message}\n`);
    process.exit(1);
  }
}
