// The Linux guest: Debian's arm64 kernel and busybox-static through apt (a foreign architecture,
// `apt-get download`), unpacked and turned into an Image and an initramfs in the cache.
import { execFileSync } from "node:child_process";

export const steps = [
  {
    name: "Debian arm64 packages for the Linux guest",
    for: ["tests", "start"],
    run(ctx) {
      const archs = execFileSync("dpkg", ["--print-foreign-architectures"], { encoding: "utf8" });
      if (!archs.split(/\s+/).includes("arm64")) {
        ctx.say("adding Debian's arm64 architecture (dpkg --add-architecture arm64; apt-get update)");
        ctx.run("dpkg", ["--add-architecture", "arm64"]);
        ctx.run("apt-get", ["update", "-qq"]);
      }
      ctx.run("node", ["bin/run-ts.mjs", "guests/linux/guest.ts"], { stdio: ["ignore", "ignore", "inherit"] });
    },
  },
];
