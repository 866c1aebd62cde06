import { Hypervisor } from "../src/hypervisor/hypervisor.js";
import { parseConfigText } from "../src/policy/load.js";
const r = parseConfigText("vms:\n  vm0: {}\n");
if (!r.ok) throw 1;
const h = Hypervisor.fromConfig(r.value); if (!h.ok) throw 2;
const d = [...h.hypervisor.domains.values()][0]!; d.start();
const mode = process.argv[2] ?? "";
const router: any = h.hypervisor.router; const vm: any = d.routed;
if (mode.includes("noservice")) { const s = vm.services.get("arch"); s.handle = (c: any, res: any) => { res.ret(0x10002); }; }
if (mode.includes("notrace")) router.trace.record = () => {};
if (mode.includes("nocomplete")) router.complete = () => 0;
function loop(n: number) {
  const regs = new Uint32Array(36);
  let acc = 0;
  for (let i = 0; i < n; i++) { regs[0] = 0x80000000; regs[1] = 0; router.handleTrap(vm, 0, regs, 0x5a000000, 0x3c5); acc += regs[0]!; }
  return acc;
}
loop(1e6);
const v8 = await import("node:v8");
const before = v8.getHeapStatistics();
globalThis.gc?.();
let best = Infinity;
for (let k = 0; k < 30; k++) { const t0 = performance.now(); loop(3e5); best = Math.min(best, (performance.now() - t0) * 1e6 / 3e5); }
console.log(mode, best.toFixed(1), "ns (min of 30)");
