// The setup's toolchain check (scripts/setup/toolchain.mjs): a missing compiler, header, library or
// binutils becomes one line naming the Debian package; the probes build with the same flags as the real
// builds (the Makefiles' recipes, guests/linux/tee-client.ts); and on this machine, after setup, they pass.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");

interface Probe {
  readonly what: string;
  readonly arch: string;
  readonly triple: string;
  readonly debArch: string;
  readonly makefile?: { readonly dir: string; readonly cc: string; readonly cflags: string; readonly ldflags: string };
  readonly cc?: string;
  readonly cflags?: readonly string[];
  readonly ldflags?: readonly string[];
  readonly libs: readonly string[];
  readonly sources: Readonly<Record<string, string>>;
}
interface Toolchain {
  PROBES: readonly Probe[];
  checkToolchains(root: string, probes?: readonly Probe[]): Promise<string[]>;
  probeCommand(root: string, probe: Probe): Promise<{ cc: string; flags: string[]; cwd: string; message?: string }>;
}

// Plain Node module (setup runs before npm ci); loaded by URL so the type check does not need its types.
const url = pathToFileURL(join(ROOT, "scripts", "setup", "toolchain.mjs")).href;
const tc = (await import(url)) as Toolchain;
const probe = (what: string): Probe => {
  const p = tc.PROBES.find((x) => x.what === what);
  if (!p) throw new Error(`no probe for ${what}`);
  return p;
};
const TEE = probe("the TEE client");
const GUEST32 = probe("the AArch32 bare-metal guest");

let fakes: string;
/** A compiler that fails the way GCC does when a part of the toolchain is missing. */
function fakeCompiler(name: string, stderr: string): string {
  const path = join(fakes, name);
  writeFileSync(path, `#!/bin/sh\nif [ "$1" = -dumpversion ]; then echo 12; exit 0; fi\ncat >&2 <<'EOF'\n${stderr}\nEOF\nexit 1\n`);
  chmodSync(path, 0o755);
  return path;
}

beforeAll(() => {
  fakes = mkdtempSync(join(tmpdir(), "smcvisor-fake-cc-"));
});
afterAll(() => rmSync(fakes, { recursive: true, force: true }));

describe("setup toolchain check: what is missing", () => {
  it("names the cross compiler's package when the compiler does not exist", async () => {
    const lines = await tc.checkToolchains(ROOT, [{ ...TEE, cc: "aarch64-linux-gnu-gcc-smcvisor-no-such-compiler" }]);
    expect(lines).toEqual([
      "the AArch64 cross compiler (aarch64-linux-gnu-gcc-smcvisor-no-such-compiler) is missing: install gcc-aarch64-linux-gnu (apt-get install gcc-aarch64-linux-gnu)",
    ]);
  });

  it("names libc6-dev-arm64-cross when the compiler cannot find a C library header (issue 10)", async () => {
    const cc = fakeCompiler(
      "no-headers-gcc",
      "/usr/include/features-time64.h:20:10: fatal error: bits/wordsize.h: No such file or directory\ncompilation terminated.",
    );
    const lines = await tc.checkToolchains(ROOT, [{ ...TEE, cc }]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^the AArch64 C library headers are missing \(bits\/wordsize\.h not found\): install libc6-dev-arm64-cross \(apt-get install libc6-dev-arm64-cross\)$/);
  });

  it("with the real compiler, a header that does not exist names the C library headers' package", async () => {
    const sources = { "probe.c": "#include <smcvisor-no-such-header.h>\nint main(void) { return 0; }\n" };
    const lines = await tc.checkToolchains(ROOT, [{ ...TEE, sources }]);
    expect(lines).toEqual([
      "the AArch64 C library headers are missing (smcvisor-no-such-header.h not found): install libc6-dev-arm64-cross (apt-get install libc6-dev-arm64-cross)",
    ]);
  });

  it("names libc6-dev-arm64-cross when the linker cannot find libpthread or the crt files", async () => {
    for (const missing of ["cannot find -lpthread: No such file or directory", "cannot find crt1.o: No such file or directory"]) {
      const cc = fakeCompiler("no-libc-gcc", `/usr/bin/aarch64-linux-gnu-ld: ${missing}\ncollect2: error: ld returned 1 exit status`);
      expect(await tc.checkToolchains(ROOT, [{ ...TEE, cc }])).toEqual([
        "the AArch64 C library for linking is missing: install libc6-dev-arm64-cross (apt-get install libc6-dev-arm64-cross)",
      ]);
    }
  });

  it("names the versioned armhf libgcc package when -lgcc is missing (the AArch32 guest links with -lgcc)", async () => {
    const cc = fakeCompiler("no-libgcc-gcc", "/usr/bin/arm-linux-gnueabihf-ld: cannot find -lgcc: No such file or directory\ncollect2: error: ld returned 1 exit status");
    expect(await tc.checkToolchains(ROOT, [{ ...GUEST32, cc }])).toEqual([
      "the AArch32 libgcc is missing: install libgcc-12-dev-armhf-cross (apt-get install libgcc-12-dev-armhf-cross)",
    ]);
  });

  it("names binutils when the compiler cannot run the assembler", async () => {
    const cc = fakeCompiler("no-as-gcc", "arm-linux-gnueabihf-gcc: fatal error: cannot execute 'as': execvp: No such file or directory\ncompilation terminated.");
    expect(await tc.checkToolchains(ROOT, [{ ...GUEST32, cc }])).toEqual([
      "the AArch32 assembler and linker (binutils) are missing: install binutils-arm-linux-gnueabihf (apt-get install binutils-arm-linux-gnueabihf)",
    ]);
  });

  it("reports each distinct problem once, on one line", async () => {
    const lines = await tc.checkToolchains(ROOT, [
      { ...TEE, cc: "smcvisor-no-such-compiler" },
      { ...TEE, cc: "smcvisor-no-such-compiler" },
    ]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("\n");
  });
});

describe("setup toolchain check: the probes", () => {
  it("build on this machine with every toolchain the build uses", async () => {
    expect(await tc.checkToolchains(ROOT)).toEqual([]);
  }, 30_000);

  it("use the compiler and flags of the Makefiles' recipes", async () => {
    const out = mkdtempSync(join(tmpdir(), "smcvisor-make-n-"));
    try {
      for (const p of tc.PROBES.filter((x) => x.makefile)) {
        const cmd = await tc.probeCommand(ROOT, p);
        expect(cmd.message).toBeUndefined();
        // What make would run to build every target (-n: print only; -B: as if all were out of date).
        const recipes = execFileSync("make", ["-n", "-B", "--no-print-directory", "-C", join(ROOT, p.makefile!.dir), `OUT=${out}`], { encoding: "utf8" })
          .split("\n")
          .filter((l) => l.startsWith(`${cmd.cc} `));
        const expected = (l: string): boolean => {
          const words = l.split(/\s+/).filter(Boolean);
          const o = words.indexOf("-o");
          // compiler, flags, -o <elf>, sources (.S/.c), then libraries
          const libs = words.slice(o + 2).filter((w) => !/\.(S|c)$/.test(w));
          return words[0] === cmd.cc && words.slice(1, o).join(" ") === cmd.flags.join(" ") && libs.join(" ") === p.libs.join(" ");
        };
        expect(recipes.filter(expected), `${p.what}: ${cmd.cc} ${cmd.flags.join(" ")} ... ${p.libs.join(" ")}\nrecipes:\n${recipes.join("\n")}`).toHaveLength(1);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("the TEE client's probe uses guests/linux/tee-client.ts's compiler, flags and libraries", () => {
    const src = readFileSync(join(ROOT, "guests", "linux", "tee-client.ts"), "utf8");
    const call = /execFileSync\(`\$\{MULTIARCH\}-gcc`, \[([^\]]*)\]/.exec(src);
    expect(call, "tee-client.ts no longer runs ${MULTIARCH}-gcc with an argument list").not.toBeNull();
    expect(src).toContain('const MULTIARCH = "aarch64-linux-gnu"');
    expect(TEE.cc).toBe("aarch64-linux-gnu-gcc");
    // The literal options: the flags before -I and the libraries after the package's -L <dir>.
    const options = [...call![1]!.matchAll(/"(-[^"]*)"/g)].map((m) => m[1]!);
    const before = options.slice(0, options.indexOf("-I"));
    const after = options.slice(options.indexOf("-L") + 1).filter((o) => o !== "-l:libteec.so.1");
    expect(before).toEqual([...TEE.cflags!, ...TEE.ldflags!]);
    expect(after).toEqual(TEE.libs);
  });
});
