// The hyp-stub handover module for the Linux guest (docs/handover.md): smcv_handover.ko, built out of tree
// from guests/linux/handover against Debian's linux-headers of exactly the guest's kernel
// (guests/linux/handover-module.ts), into the cache. The same packages and compiler as the FF-A modules
// (40-ffa-modules.mjs installs them); a cold build takes under a minute, a cached run a few seconds.
import { execFileSync } from "node:child_process";

export const steps = [
  {
    name: "hyp-stub handover module for the Linux guest",
    for: ["tests", "start"],
    run(ctx) {
      ctx.aptInstall(["make", "xz-utils", "gcc-12-aarch64-linux-gnu", "binutils-aarch64-linux-gnu"]);
      try {
        execFileSync("node", ["bin/run-ts.mjs", "guests/linux/guest.ts", "--handover-module"], { cwd: ctx.root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
      } catch (e) {
        // guest.ts prints {"error": "..."} on stdout when it knows why; anything else is a crash, shown as is.
        let why;
        try {
          why = JSON.parse(e.stdout ?? "").error;
        } catch {
          throw e;
        }
        throw Object.assign(new Error(`the handover module for the Linux guest cannot be built: ${why}`), { standalone: true });
      }
    },
  },
];
