/**
 * A delegate handler loaded in-process: a TypeScript or JavaScript module named in the config, exporting
 * `handle(request, context)` (or a default object with it). A handler that throws, rejects or takes longer
 * than its timeout gives the guest -1; the hypervisor goes on.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { SmcCall, SmcResult } from "../../router/call.js";
import type { CallOrigin, CallTarget, GuestMemory } from "../../router/ports.js";
import { applyReply, requestOf, type DelegateContext, type DelegateModule } from "./protocol.js";
import { withTimeout } from "./timeout.js";

export class ModuleDelegate implements CallTarget {
  constructor(
    readonly name: string,
    private readonly module: DelegateModule,
    private readonly timeoutMs: number,
    private readonly memoryOf: (vm: string) => GuestMemory | undefined,
  ) {}

  static async load(name: string, file: string, cwd: string, timeoutMs: number, memoryOf: (vm: string) => GuestMemory | undefined): Promise<ModuleDelegate> {
    const url = pathToFileURL(resolve(cwd, file)).href;
    let mod: Record<string, unknown>;
    try {
      mod = (await import(url)) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`delegate "${name}": cannot load ${file}: ${(e as Error).message}`);
    }
    const candidate = (typeof mod.handle === "function" ? mod : (mod.default as Record<string, unknown> | undefined)) ?? {};
    if (typeof (candidate as { handle?: unknown }).handle !== "function") throw new Error(`delegate "${name}": ${file} exports no handle(request, context) function`);
    return new ModuleDelegate(name, candidate as unknown as DelegateModule, timeoutMs, memoryOf);
  }

  handle(call: SmcCall, res: SmcResult, origin: CallOrigin): Promise<void> {
    const req = requestOf(call, origin);
    const memory = this.memoryOf(origin.vmName);
    const ctx: DelegateContext = {
      // The calling VM's RAM only: a VM's RAM never overlaps secure memory or another VM's (config checks).
      readGuest: (ipa, length) => memory?.read(ipa, length) ?? null,
      writeGuest: (ipa, data) => memory?.write(ipa, data) ?? false,
    };
    const answer = (async () => this.module.handle(req, ctx))();
    return withTimeout(answer, this.timeoutMs, `delegate "${this.name}"`).then((reply) => applyReply(reply, res));
  }
}
