// Shared helpers for setup steps: running commands, Debian packages, the download cache.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export function context(root, { quiet = false, beforeSay = () => {} } = {}) {
  const say = (msg) => {
    if (quiet) return;
    beforeSay();
    process.stderr.write(`setup: ${msg}\n`);
  };
  const run = (cmd, argv, opts = {}) => execFileSync(cmd, argv, { cwd: root, stdio: ["ignore", "inherit", "inherit"], ...opts });
  const have = (cmd) => {
    try {
      execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  };
  // Downloads live outside the repository so nothing downloaded is ever committed.
  const cacheDir = process.env.SMCVISOR_CACHE ?? join(homedir(), ".cache", "smcvisor");
  mkdirSync(cacheDir, { recursive: true });
  let aptUpdated = false;
  /** Installs Debian packages that are missing (dpkg -s says so); needs root, as on the project's machines. */
  const aptInstall = (packages) => {
    const missing = packages.filter((p) => {
      try {
        execFileSync("dpkg", ["-s", p], { stdio: "ignore" });
        return false;
      } catch {
        return true;
      }
    });
    if (missing.length === 0) return;
    if (process.getuid && process.getuid() !== 0) {
      throw new Error(`Debian packages missing: ${missing.join(" ")}; install them as root (apt-get install ${missing.join(" ")})`);
    }
    if (!aptUpdated) {
      say("apt-get update");
      run("apt-get", ["update", "-qq"]);
      aptUpdated = true;
    }
    say(`installing Debian packages: ${missing.join(" ")}`);
    run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  };
  return { root, say, run, have, cacheDir, aptInstall, exists: existsSync };
}
