/**
 * The device tree a QEMU VM's guest sees: QEMU's own for the machine (dumped with `dumpdtb=`), cut down to
 * exactly the guest map (guest-map.ts) and with smcvisor's decisions merged on top in device-tree source,
 * compiled by dtc:
 *
 *   - only the nodes of what the guest is given are kept (an allowlist: a device a newer QEMU adds stays
 *     hidden until it is given); the GIC node keeps only the distributor and the CPU interface (GICv2) or
 *     redistributors (GICv3), without its MSI frame, ITS or maintenance interrupt;
 *   - /memory: the VM's RAM (QEMU's node covers the shim's region too);
 *   - /psci: `compatible` follows the PSCI version the policy sets (Linux's binding,
 *     Documentation/devicetree/bindings/arm/psci.yaml), `method` the VM's conduit, the PSCI 0.1 function
 *     IDs when the VM has them; no node when the VM has no PSCI;
 *   - /chosen: bootargs and initrd; /firmware/optee (`linaro,optee-tz`) when the VM has a TEE.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { promisify } from "node:util";
import type { Region } from "./guest-map.js";

const run = promisify(execFile);

export interface DtPsci {
  /** "0.2", "1.0", "1.1" or "1.3". */
  readonly version: string;
  /** PSCI 0.1 function IDs the VM answers (DT properties cpu_suspend, cpu_off, cpu_on, migrate), if any. */
  readonly v0_1?: { readonly cpu_suspend: number; readonly cpu_off: number; readonly cpu_on: number; readonly migrate: number };
  /** Idle states for /cpus/idle-states, shallowest first; `param` is the CPU_SUSPEND power_state. */
  readonly idleStates?: readonly DtIdleState[];
}

export interface DtIdleState {
  readonly name: string;
  readonly param: number;
  readonly entryLatencyUs: number;
  readonly exitLatencyUs: number;
  readonly minResidencyUs: number;
}

export interface DtOverrides {
  readonly conduit: "smc" | "hvc";
  readonly bootargs: string;
  readonly initrd: { start: bigint; end: bigint } | null;
  readonly optee: boolean;
  /** The guest map: RAM and the devices the guest is given. */
  readonly map: readonly Region[];
  /** null: the VM has no PSCI (no node). */
  readonly psci: DtPsci | null;
  /** A handover VM: where the shim's vectors are, for the kernel's handover module (/smcvisor, docs/handover.md). */
  readonly handoverVectors?: bigint;
  /** Emulated virtio-mmio transports (the device window, docs/devices.md): a "virtio,mmio" node each. */
  readonly virtio?: readonly { readonly base: bigint; readonly size: bigint; readonly spi: number }[];
}

/** Root nodes kept besides the devices of the map: CPUs, timer, the UART's clock, /chosen, /psci and /memory. */
const ALWAYS_KEPT = new Set(["cpus", "timer", "apb-pclk", "chosen", "psci", "pmu"]);

const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const cells = (v: bigint) => `${hex(v >> 32n)} ${hex(v & 0xffff_ffffn)}`;

function quote(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The names of the root's child nodes in dtc's source output (one tab of indentation). */
export function rootNodes(dts: string): string[] {
  return [...dts.matchAll(/^\t([A-Za-z0-9,._+-]+(?:@[0-9a-fA-F,]+)?) \{$/gm)].map((m) => m[1]!);
}

/** The child nodes of the root node `node`. */
function childNodes(dts: string, node: string): string[] {
  const start = dts.indexOf(`\n\t${node} {\n`);
  if (start < 0) return [];
  const end = dts.indexOf("\n\t};\n", start);
  return [...dts.slice(start, end).matchAll(/^\t\t([A-Za-z0-9,._+-]+(?:@[0-9a-fA-F,]+)?) \{$/gm)].map((m) => m[1]!);
}

function psciNode(p: DtPsci, conduit: "smc" | "hvc"): string[] {
  const compatible = p.version === "0.2" ? ["arm,psci-0.2"] : ["arm,psci-1.0", "arm,psci-0.2"];
  const props = [`compatible = ${[...compatible, ...(p.v0_1 ? ["arm,psci"] : [])].map(quote).join(", ")};`, `method = ${quote(conduit)};`];
  for (const name of ["cpu_suspend", "cpu_off", "cpu_on", "migrate"] as const) {
    props.push(p.v0_1 ? `${name} = <${hex(p.v0_1[name] >>> 0)}>;` : `/delete-property/ ${name};`);
  }
  return [`\tpsci { ${props.join(" ")} };`];
}

/**
 * /cpus/idle-states and each CPU's `cpu-idle-states` (Linux's bindings: cpu/idle-states.yaml, arm/psci.yaml):
 * what Linux's cpuidle-psci driver enters through CPU_SUSPEND with `arm,psci-suspend-param`.
 */
function idleNodes(states: readonly DtIdleState[], cpus: readonly string[]): string[] {
  if (states.length === 0) return [];
  const label = (i: number) => `smcv_idle_${i}`;
  const nodes = states.map(
    (st, i) =>
      `${label(i)}: ${st.name} { compatible = "arm,idle-state"; arm,psci-suspend-param = <${hex(st.param >>> 0)}>; entry-latency-us = <${st.entryLatencyUs}>; exit-latency-us = <${st.exitLatencyUs}>; min-residency-us = <${st.minResidencyUs}>; };`,
  );
  const refs = states.map((_, i) => `&${label(i)}`).join(" ");
  return [`	cpus { idle-states { entry-method = "psci"; ${nodes.join(" ")} }; ${cpus.map((c) => `${c} { cpu-idle-states = <${refs}>; };`).join(" ")} };`];
}

/** QEMU's device-tree source cut to the guest map, with smcvisor's nodes merged in (dtc merges a later `/ { }` into the first). */
export function mergeDts(base: string, o: DtOverrides): string {
  const header = "/dts-v1/;";
  if (!base.startsWith(header)) throw new Error("device-tree source does not start with /dts-v1/;");
  const ram = o.map.filter((r) => r.kind === "ram");
  if (ram.length !== 1) throw new Error("the guest map needs exactly one RAM region");
  const given = new Set(o.map.flatMap((r) => (r.node ? [r.node] : [])));
  const memoryNode = `memory@${ram[0]!.ipa.toString(16)}`;
  const deleted = rootNodes(base).filter((n) => !given.has(n) && !ALWAYS_KEPT.has(n) && n !== memoryNode && !(n === "psci" && o.psci));
  if (!o.psci && rootNodes(base).includes("psci")) deleted.push("psci");
  const gic = o.map.filter((r) => r.node?.startsWith("intc@"));
  const chosen = [`bootargs = ${quote(o.bootargs)};`];
  if (o.initrd) chosen.push(`linux,initrd-start = /bits/ 64 <${hex(o.initrd.start)}>;`, `linux,initrd-end = /bits/ 64 <${hex(o.initrd.end)}>;`);
  const lines = [
    "",
    "/ {",
    ...[...new Set(deleted)].map((n) => `\t/delete-node/ ${n};`),
    // device_type as the Devicetree Specification (v0.4, 3.4) requires: QEMU's own node has it, and a node of
    // ours at another address (a handover VM's RAM) replaces that one.
    `\t${memoryNode} { device_type = "memory"; reg = <${cells(ram[0]!.ipa)} ${cells(ram[0]!.size)}>; };`,
    ...(gic.length > 0
      ? [
          `\t${gic[0]!.node} { reg = <${gic.map((r) => `${cells(r.ipa)} ${cells(r.size)}`).join(" ")}>; /delete-property/ interrupts; ${childNodes(base, gic[0]!.node!)
            .map((c) => `/delete-node/ ${c};`)
            .join(" ")} };`,
        ]
      : []),
    ...(o.psci ? psciNode(o.psci, o.conduit) : []),
    ...(o.psci?.idleStates ? idleNodes(o.psci.idleStates, childNodes(base, "cpus").filter((n) => /^cpu@[0-9a-f]+$/.test(n))) : []),
    `\tchosen { ${chosen.join(" ")} };`,
    // Linux's optee driver calls through the method the node names: the VM's conduit (mediation is the same for both).
    ...(o.handoverVectors !== undefined ? [`\tsmcvisor { compatible = "smcvisor,handover"; handover-vectors = /bits/ 64 <${hex(o.handoverVectors)}>; };`] : []),
    // Edge-triggered SPIs (GIC binding: <0 spi 1>), DMA-coherent as QEMU's own virtio-mmio nodes are.
    ...(o.virtio ?? []).map((d) => `\tvirtio_mmio@${d.base.toString(16)} { compatible = "virtio,mmio"; reg = <${cells(d.base)} ${cells(d.size)}>; interrupts = <0x0 ${hex(d.spi)} 0x1>; dma-coherent; };`),
    ...(o.optee ? [`\tfirmware { optee { compatible = "linaro,optee-tz"; method = ${quote(o.conduit)}; }; };`] : []),
    "};",
    "",
  ];
  return `${header}${base.slice(header.length)}${lines.join("\n")}`;
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

/** Compiled guest trees by their source: a VM booted again (tests, benchmarks) skips dtc. */
const compiled = new Map<string, Promise<Uint8Array>>();

/** Dumps QEMU's device tree for `machineArgs` (once per shape), writes the guest's to `out` and returns it. */
export async function buildDtb(qemu: string, machineArgs: readonly string[], dir: string, out: string, o: DtOverrides): Promise<Uint8Array> {
  const key = [qemu, ...machineArgs].join(" ");
  let dts = dumped.get(key);
  if (!dts) {
    dts = qemuDts(qemu, machineArgs, dir);
    dumped.set(key, dts);
    dts.catch(() => dumped.delete(key));
  }
  const source = mergeDts(await dts, o);
  let blob = compiled.get(source);
  if (!blob) {
    blob = (async () => {
      await writeFile(`${dir}/guest.dts`, source);
      await run("dtc", ["-q", "-I", "dts", "-O", "dtb", "-o", `${dir}/guest.dtb.tmp`, `${dir}/guest.dts`]);
      return new Uint8Array(await readFile(`${dir}/guest.dtb.tmp`));
    })();
    compiled.set(source, blob);
    blob.catch(() => compiled.delete(source));
  }
  const dtb = await blob;
  await writeFile(out, dtb);
  return dtb;
}
