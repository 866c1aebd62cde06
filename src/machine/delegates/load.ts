/** Creates the delegate handlers a config names, for a hypervisor to register before its VMs exist. */
import type { Config } from "../../policy/load.js";
import type { CallTarget, GuestMemory } from "../../router/ports.js";
import { loadModuleDelegate, type ClosableTarget } from "./module-delegate.js";
import { ProcessDelegate } from "./process-delegate.js";

export interface Delegates {
  readonly targets: ReadonlyMap<string, CallTarget>;
  close(): void;
}

/**
 * Loads every module and starts every process the config names. Relative paths (a module, a process's
 * working directory) are the config file's (`config.baseDir`), or `cwd` for a config that came from no
 * file.
 */
export async function loadDelegates(config: Config, opts: { cwd: string; memoryOf: (vm: string) => GuestMemory | undefined; log?: (line: string) => void }): Promise<Delegates> {
  const baseDir = config.baseDir ?? opts.cwd;
  const targets = new Map<string, CallTarget>();
  const started: ClosableTarget[] = [];
  try {
    for (const [name, d] of Object.entries(config.delegates)) {
      let target: ClosableTarget;
      if ("module" in d) {
        target = await loadModuleDelegate({ name, file: d.module, baseDir, timeoutMs: d.timeoutMs, thread: d.thread, memoryOf: opts.memoryOf, ...(opts.log ? { log: opts.log } : {}) });
      } else {
        const p = new ProcessDelegate(name, d.command, d.timeoutMs, opts.log);
        p.start(baseDir);
        target = p;
      }
      started.push(target);
      targets.set(name, target);
    }
  } catch (e) {
    for (const t of started) t.close();
    throw e;
  }
  return { targets, close: () => started.forEach((t) => t.close()) };
}
