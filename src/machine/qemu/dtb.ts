/**
 * The device tree a QEMU VM's guest sees: QEMU's own for the machine (dumped with `dumpdtb=`), with the
 * nodes smcvisor decides merged on top in device-tree source: `/psci` method = the VM's conduit, `/chosen`
 * bootargs and initrd, `/firmware/optee` when the VM has a TEE (Linux binds drivers/tee/optee to
 * "linaro,optee-tz"), and a /memreserve/ for the shim. dtc compiles the result.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import { SHIM_BASE, SHIM_SIZE } from "./layout.js";

const run = promisify(execFile);

export interface DtOverrides {
  readonly conduit: "smc" | "hvc";
  readonly bootargs: string;
  readonly initrd: { start: bigint; end: bigint } | null;
  readonly optee: boolean;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** QEMU's device-tree source with smcvisor's nodes merged in (dtc merges a later `/ { }` into the first). */
export function mergeDts(base: string, o: DtOverrides): string {
  const header = "/dts-v1/;";
  if (!base.startsWith(header)) throw new Error("device-tree source does not start with /dts-v1/;");
  const chosen = [`bootargs = ${quote(o.bootargs)};`];
  if (o.initrd) chosen.push(`linux,initrd-start = /bits/ 64 <${hex(o.initrd.start)}>;`, `linux,initrd-end = /bits/ 64 <${hex(o.initrd.end)}>;`);
  const lines = [
    "",
    "/ {",
    `\tpsci { method = ${quote(o.conduit)}; };`,
    `\tchosen { ${chosen.join(" ")} };`,
    // Linux's optee driver calls through the method the node names: the VM's conduit (mediation is the same for both).
    ...(o.optee ? [`\tfirmware { optee { compatible = "linaro,optee-tz"; method = ${quote(o.conduit)}; }; };`] : []),
    "};",
    "",
  ];
  return `${header}\n/memreserve/ ${hex(SHIM_BASE)} ${hex(SHIM_SIZE)};${base.slice(header.length)}${lines.join("\n")}`;
}

/** QEMU's device tree per machine shape, as source: the same arguments always give the same tree. */
const dumped = new Map<string, Promise<string>>();

async function qemuDts(qemu: string, machineArgs: readonly string[], dir: string): Promise<string> {
  const base = `${dir}/qemu.dtb`;
  const args = machineArgs.map((a, i) => (machineArgs[i - 1] === "-M" ? `${a},dumpdtb=${base}` : a));
  await run(qemu, [...args, "-display", "none", "-nodefaults"], { cwd: dir });
  const { stdout } = await run("dtc", ["-q", "-I", "dtb", "-O", "dts", base]);
  return stdout;
}

/** Dumps QEMU's device tree for `machineArgs` (once per shape) and writes the merged one to `out`. */
export async function buildDtb(qemu: string, machineArgs: readonly string[], dir: string, out: string, o: DtOverrides): Promise<void> {
  const key = [qemu, ...machineArgs].join(" ");
  let dts = dumped.get(key);
  if (!dts) {
    dts = qemuDts(qemu, machineArgs, dir);
    dumped.set(key, dts);
    dts.catch(() => dumped.delete(key));
  }
  await writeFile(`${dir}/guest.dts`, mergeDts(await dts, o));
  await run("dtc", ["-q", "-I", "dts", "-O", "dtb", "-o", out, `${dir}/guest.dts`]);
  await readFile(out);
}
