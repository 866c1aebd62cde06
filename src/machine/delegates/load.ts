/** Creates the delegate handlers a config names, for a hypervisor to register before its VMs exist. */
import type { Config } from "../../policy/load.js";
import type { CallTarget, GuestMemory } from "../../router/ports.js";
import { ModuleDelegate } from "./module-delegate.js";
import { ProcessDelegate } from "./process-delegate.js";

export interface Delegates {
  readonly targets: ReadonlyMap<string, CallTarget>;
  close(): void;
}

export async function loadDelegates(config: Config, opts: { cwd: string; memoryOf: (vm: string) => GuestMemory | undefined; log?: (line: string) => void }): Promise<Delegates> {
  const targets = new Map<string, CallTarget>();
  const processes: ProcessDelegate[] = [];
  try {
    for (const [name, d] of Object.entries(config.delegates)) {
      if ("module" in d) {
        targets.set(name, await ModuleDelegate.load(name, d.module, opts.cwd, d.timeoutMs, opts.memoryOf));
      } else {
        const p = new ProcessDelegate(name, d.command, d.timeoutMs, opts.log);
        p.start(opts.cwd);
        processes.push(p);
        targets.set(name, p);
      }
    }
  } catch (e) {
    for (const p of processes) p.close();
    throw e;
  }
  return { targets, close: () => processes.forEach((p) => p.close()) };
}
