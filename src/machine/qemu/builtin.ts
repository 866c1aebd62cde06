/**
 * QEMU with its own built-in PSCI: `-M virt` without virtualization, the guest at EL1, no shim and no
 * smcvisor. The peer smcvisor is compared against (`smcvisor conform`, `npm run bench`); same CPU model
 * as smcvisor's VMs.
 */
import { spawn } from "node:child_process";
import { findQemu, qemuCommand } from "./paths.js";

export interface BuiltinRun {
  /** The guest's console, line by line. */
  readonly lines: string[];
  /** Milliseconds from start to the line `stopWhen` accepted (or to QEMU's exit). */
  readonly ms: number;
  /** QEMU exited by itself, which it does only when the guest powered it off (PSCI SYSTEM_OFF). */
  readonly exitedOnItsOwn: boolean;
}

/** Runs QEMU with `args` after the machine ones; stops it at the first line `stopWhen` accepts, or after `timeoutMs`. */
export function runBuiltin(args: readonly string[], opts: { stopWhen: (line: string) => boolean; timeoutMs?: number }): Promise<BuiltinRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const [command, argv] = qemuCommand(findQemu(), ["-M", "virt", "-cpu", "cortex-a57,pmu=off", "-display", "none", "-monitor", "none", "-nodefaults", "-serial", "stdio", ...args]);
    const q = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
    const lines: string[] = [];
    let buf = "";
    let ms = 0;
    let stopped = false;
    const stop = () => {
      stopped = true;
      q.kill("SIGKILL");
    };
    // A guest that hangs (a call that never returns) is stopped when the time is up.
    const timer = opts.timeoutMs !== undefined ? setTimeout(stop, opts.timeoutMs) : null;
    q.stdout.setEncoding("utf8");
    q.stdout.on("data", (s: string) => {
      buf += s;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        lines.push(line);
        if (!stopped && opts.stopWhen(line)) {
          ms = performance.now() - t0;
          stop();
        }
      }
    });
    q.on("error", reject);
    q.on("close", () => {
      if (timer) clearTimeout(timer);
      resolve({ lines, ms: ms || performance.now() - t0, exitedOnItsOwn: !stopped });
    });
  });
}
