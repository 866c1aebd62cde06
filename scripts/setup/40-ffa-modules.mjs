// FF-A modules for the Linux guest: Debian's 6.1 kernel has no CONFIG_ARM_FFA_TRANSPORT, so
// drivers/firmware/arm_ffa (ffa-module.ko) and an optee.ko with the FF-A ABI are built out of tree from
// Debian's linux-source, linux-headers and linux-kbuild packages of exactly the kernel's version
// (guests/linux/ffa-modules.ts), into the cache. A cold build takes about a minute (progress lines on a
// terminal); a cached run a few seconds (mostly apt-cache and tsx starting). Needs 30-linux-guest.mjs first (Debian's arm64 architecture).
import { execFileSync } from "node:child_process";

export const steps = [
  {
    name: "FF-A modules for the Linux guest",
    for: ["tests", "start"],
    run(ctx) {
      // The compiler of Debian's bookworm kernel (its headers: CC = $(CROSS_COMPILE)gcc-12); ffa-modules.ts
      // names the package again if a later kernel moves to another gcc. tar needs xz for linux-source's tarball.
      ctx.aptInstall(["make", "xz-utils", "gcc-12-aarch64-linux-gnu", "binutils-aarch64-linux-gnu"]);
      try {
        execFileSync("node", ["bin/run-ts.mjs", "guests/linux/guest.ts", "--ffa-modules"], { cwd: ctx.root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
      } catch (e) {
        // guest.ts prints {"error": "..."} on stdout when it knows why; anything else is a crash, shown as is.
        let why;
        try {
          why = JSON.parse(e.stdout ?? "").error;
        } catch {
          throw e;
        }
        throw Object.assign(new Error(`the FF-A modules for the Linux guest cannot be built: ${why}`), { standalone: true });
      }
    },
  },
];
