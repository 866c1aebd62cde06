/** Where the QEMU backend finds its parts: the QEMU binary and the shim that scripts/setup builds. */
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export function shimPath(): string {
  return process.env.SMCVISOR_SHIM ?? join(REPO_ROOT, "build", "shim", "shim.elf");
}

/** QEMU binaries already found to run: checked once per process, not once per VM or test case. */
const found = new Set<string>();

export function findQemu(): string {
  const q = process.env.SMCVISOR_QEMU ?? "qemu-system-aarch64";
  if (found.has(q)) return q;
  try {
    execFileSync(q, ["--version"], { stdio: "ignore" });
  } catch {
    throw new Error(`${q} not found: run \`node scripts/setup.mjs\` (Debian package qemu-system-arm)`);
  }
  found.add(q);
  return q;
}

let setpriv: boolean | null = null;

/**
 * The command that runs QEMU with `args`: through util-linux's `setpriv --pdeathsig KILL` where it exists
 * (Debian: always, util-linux is essential), so that QEMU dies with the hypervisor process whatever way
 * that ends. A VM must never outlive the hypervisor that contains it, running (and spinning) unserved.
 */
export function qemuCommand(qemu: string, args: readonly string[]): [string, string[]] {
  if (setpriv === null) {
    try {
      execFileSync("setpriv", ["--pdeathsig", "KILL", "true"], { stdio: "ignore" });
      setpriv = true;
    } catch {
      setpriv = false;
    }
  }
  return setpriv ? ["setpriv", ["--pdeathsig", "KILL", "--", qemu, ...args]] : [qemu, [...args]];
}

/** Whether this machine can run QEMU guests (tests skip with this reason otherwise). */
export function qemuUnavailable(): string | null {
  try {
    findQemu();
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}
