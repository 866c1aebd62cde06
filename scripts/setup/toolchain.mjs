// The toolchain check: builds a tiny program with each cross compiler and the exact flags of the build it
// stands for (shim/Makefile, guests/baremetal/Makefile for AArch64 and AArch32, the TEE client of
// guests/linux/tee-client.ts), in a temporary directory, and turns a failure into one line that names the
// Debian package to install. Not a step module (scripts/setup.mjs loads only NN-name.mjs); 20-qemu.mjs
// runs it after installing the toolchain. Also runnable alone: `node scripts/setup/toolchain.mjs`.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const AARCH64 = { arch: "AArch64", triple: "aarch64-linux-gnu", debArch: "arm64" };
const AARCH32 = { arch: "AArch32", triple: "arm-linux-gnueabihf", debArch: "armhf" };

// The bare-metal programs: an assembly entry (the real builds' start.S are preprocessed assembly too)
// calling a C function, linked by the real linker script. Nothing in them needs a libgcc helper: the real
// guests need none, and Debian's armhf libgcc.a is hard-float, so it could not link into the soft-float
// AArch32 guest anyway.
const BARE_C = `volatile unsigned int probe_value;
void probe_entry(void) { probe_value = probe_value * 3u + 1u; }
`;
const BARE_S64 = `	.section .text.boot, "ax"
	.global _start
_start:
	bl	probe_entry
1:	b	1b
	.section .note.GNU-stack, "", %progbits
`;
const BARE_S32 = `	.arch armv7-a
	.arm
	.syntax unified
	.section .text.boot, "ax"
	.global _start
_start:
	bl	probe_entry
1:	b	1b
	.section .note.GNU-stack, "", %progbits
`;
// The TEE client's dependencies on the C library: its headers (features.h -> bits/wordsize.h is where a
// missing libc6-dev-arm64-cross shows first), crt files, libc and libpthread.
const TEE_C = `#include <pthread.h>
#include <stdio.h>

static int value = 1;
static void *run(void *arg) { return arg; }

int main(void) {
  pthread_t t;
  void *r = NULL;
  if (pthread_create(&t, NULL, run, &value) != 0 || pthread_join(t, &r) != 0) return 1;
  printf("%d\\n", *(int *)r);
  return 0;
}
`;

/**
 * What to build. A probe with `makefile` reads its compiler and flags from that Makefile's variables, so
 * it builds with exactly what `make` would; `libs` are what the Makefile's recipe adds after the sources.
 * The TEE client's flags live in guests/linux/tee-client.ts (test/setup-toolchain.test.ts keeps the two
 * in step).
 */
export const PROBES = [
  {
    what: "the EL2 shim",
    ...AARCH64,
    makefile: { dir: "shim", cc: "CC", cflags: "CFLAGS", ldflags: "LDFLAGS" },
    libs: [],
    sources: { "probe.S": BARE_S64, "probe.c": BARE_C },
  },
  {
    what: "the AArch64 bare-metal guest",
    ...AARCH64,
    makefile: { dir: "guests/baremetal", cc: "CC", cflags: "CFLAGS", ldflags: "LDFLAGS" },
    libs: [],
    sources: { "probe.S": BARE_S64, "probe.c": BARE_C },
  },
  {
    what: "the AArch32 bare-metal guest",
    ...AARCH32,
    makefile: { dir: "guests/baremetal", cc: "CC32", cflags: "CFLAGS32", ldflags: "LDFLAGS" },
    libs: ["-lgcc"],
    sources: { "probe32.S": BARE_S32, "probe.c": BARE_C },
  },
  {
    what: "the TEE client",
    ...AARCH64,
    cc: "aarch64-linux-gnu-gcc",
    cflags: ["-O2", "-Wall", "-Werror"],
    ldflags: [],
    libs: ["-lpthread"],
    sources: { "probe.c": TEE_C },
  },
];

function exec(cmd, argv, opts) {
  return new Promise((done) => {
    execFile(cmd, argv, { encoding: "utf8", timeout: 30_000, ...opts }, (error, stdout, stderr) => done({ error, stdout, stderr }));
  });
}

const install = (pkg) => `install ${pkg} (apt-get install ${pkg})`;

/** A Makefile's variables as make sees them (`make --eval`), each split into words. */
async function makeVariables(root, dir, names) {
  const rule = `__smcvisor_vars: ; @:$(foreach v,${names.join(" ")},$(info $(v)=$($(v))))`;
  const r = await exec("make", ["-s", "--no-print-directory", "-C", join(root, dir), "--eval", rule, "__smcvisor_vars"]);
  if (r.error?.code === "ENOENT") return { message: `make is missing: ${install("make")}` };
  if (r.error) return { message: `make cannot read ${dir}/Makefile: ${firstError(r.stderr) ?? r.error.message}` };
  const vars = {};
  for (const line of r.stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1).split(/\s+/).filter(Boolean);
  }
  return { vars };
}

function firstError(stderr) {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /error/i.test(l)) ?? lines[0];
}

/** GCC's major version, for the names of its versioned packages (gcc-12-..., libgcc-12-dev-...). */
async function gccMajor(cc) {
  const r = await exec(cc, ["-dumpversion"]);
  const m = /^(\d+)/.exec(r.stdout ?? "");
  return m ? m[1] : "<version>";
}

/** The one line that says what is missing, from how the compiler failed (`r`: exec's result). */
async function diagnose(probe, cc, r, source) {
  const { arch, triple, debArch } = probe;
  if (r.error?.code === "ENOENT") return `the ${arch} cross compiler (${cc}) is missing: ${install(`gcc-${triple}`)}`;
  const err = `${r.stderr ?? ""}`;
  const program = /cannot execute '([^']+)'|cannot find '([^']+)'/.exec(err);
  if (program) {
    const name = program[1] ?? program[2];
    if (/^(as|ld)$/.test(name)) return `the ${arch} assembler and linker (binutils) are missing: ${install(`binutils-${triple}`)}`;
    return `the ${arch} C compiler's ${name} is missing: ${install(`gcc-${await gccMajor(cc)}-${triple}`)}`;
  }
  const header = /fatal error: ([^:\s]+): No such file or directory/.exec(err);
  if (header) return `the ${arch} C library headers are missing (${header[1]} not found): ${install(`libc6-dev-${debArch}-cross`)}`;
  if (/cannot find (-lgcc\b|-lgcc_s\b|crtbegin|crtend)/.test(err)) return `the ${arch} libgcc is missing: ${install(`libgcc-${await gccMajor(cc)}-dev-${debArch}-cross`)}`;
  if (/cannot find (-lc\b|-lpthread\b|crt1\.o|crti\.o|crtn\.o|Scrt1\.o|\S*libc\.so)/.test(err)) {
    return `the ${arch} C library for linking is missing: ${install(`libc6-dev-${debArch}-cross`)}`;
  }
  const why = firstError(err) ?? (r.error?.killed ? "timed out" : r.error?.message);
  return `the ${arch} toolchain cannot build a test program with the flags of ${source} (${why}); reinstall gcc-${triple} (apt-get install --reinstall gcc-${triple})`;
}

/**
 * The compiler, the flags before `-o` and the directory one probe builds with (a Makefile's probe: as
 * make runs its recipe, so -T <script> resolves), or `{ message }` when make cannot say.
 */
export async function probeCommand(root, probe) {
  if (!probe.makefile) return { cc: probe.cc, flags: [...probe.cflags, ...probe.ldflags], cwd: root };
  const m = probe.makefile;
  const { vars, message } = await makeVariables(root, m.dir, [m.cc, m.cflags, m.ldflags]);
  if (message) return { message };
  if (!vars[m.cc]?.length) return { message: `${m.dir}/Makefile defines no ${m.cc}; the toolchain check cannot tell what it builds with` };
  return { cc: probe.cc ?? vars[m.cc][0], flags: [...(vars[m.cflags] ?? []), ...(vars[m.ldflags] ?? [])], cwd: join(root, m.dir) };
}

/**
 * Builds one probe in a new directory under `work`. Returns null when it builds, else the one line.
 * `probe.cc` (when given) overrides the compiler, `probe.sources` the program: that is how the tests
 * simulate a missing compiler or header.
 */
export async function runProbe(root, probe, work) {
  const command = await probeCommand(root, probe);
  if (command.message) return command.message;
  const dir = mkdtempSync(join(work, "probe-"));
  const files = Object.entries(probe.sources).map(([name, text]) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  });
  const r = await exec(command.cc, [...command.flags, "-o", join(dir, "probe.elf"), ...files, ...probe.libs], { cwd: command.cwd });
  if (!r.error) return null;
  return diagnose(probe, command.cc, r, probe.makefile ? `${probe.makefile.dir}/Makefile` : "guests/linux/tee-client.ts");
}

/** Runs every probe (in parallel; a few hundred ms) and returns the distinct failure lines, in order. */
export async function checkToolchains(root, probes = PROBES) {
  const work = mkdtempSync(join(tmpdir(), "smcvisor-toolchain-"));
  try {
    const lines = await Promise.all(probes.map((p) => runProbe(root, p, work)));
    return [...new Set(lines.filter((l) => l !== null))];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The setup step's body: throws an error whose message is the whole line (setup.mjs prints it as is). */
export async function assertToolchains(root, probes = PROBES) {
  const problems = await checkToolchains(root, probes);
  if (problems.length === 0) return;
  throw Object.assign(new Error(problems.join("; ")), { standalone: true });
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const root = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");
  const problems = await checkToolchains(root);
  if (problems.length > 0) process.stderr.write(`setup: ${problems.join("; ")}\n`);
  process.exit(problems.length === 0 ? 0 : 1);
}
