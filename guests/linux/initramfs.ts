/**
 * The test guest's initramfs: Debian's static busybox, the kernel's firmware-interface modules (loaded in
 * dependency order read from their own .modinfo), the /init script and any files a scenario adds.
 * Returned gzip-compressed (the kernel has RD_GZIP).
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { writeCpio, type CpioEntry } from "./cpio.js";
import { moduleDepends } from "./modinfo.js";

export interface InitramfsSpec {
  /** Path of Debian's busybox (busybox-static: /bin/busybox). */
  readonly busybox: string;
  /** Modules to load, by name, with the paths of every module they may depend on. */
  readonly modules: readonly string[];
  readonly modulePaths: ReadonlyMap<string, string>;
  /** Text of /init. */
  readonly init: string;
  /** Extra files, e.g. /etc/smcvisor/run.sh or a TEE client and its libraries. */
  readonly files?: readonly { readonly path: string; readonly data: Uint8Array; readonly mode?: number }[];
}

/** Modules in an order where each comes after what it depends on. */
export function loadOrder(wanted: readonly string[], paths: ReadonlyMap<string, string>): string[] {
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (m: string) => {
    if (order.includes(m)) return;
    if (visiting.has(m)) throw new Error(`module dependency cycle at ${m}`);
    const path = paths.get(m) ?? paths.get(m.replace(/_/g, "-"));
    if (!path) throw new Error(`module ${m} is not in the kernel package`);
    visiting.add(m);
    for (const d of moduleDepends(readFileSync(path))) visit(d);
    visiting.delete(m);
    order.push(m);
  };
  for (const m of wanted) visit(m);
  return order;
}

export function buildInitramfs(spec: InitramfsSpec): Uint8Array {
  const order = loadOrder(spec.modules, spec.modulePaths);
  const dirs = ["bin", "sbin", "dev", "proc", "sys", "tmp", "etc", "etc/smcvisor", "lib", "lib/modules", "usr", "usr/bin", "usr/sbin", "usr/lib", "root", "run", "var"];
  const entries: CpioEntry[] = dirs.map((path) => ({ kind: "dir", path }));
  // The kernel opens /dev/console before /init runs; devtmpfs is not mounted yet then.
  entries.push({ kind: "chardev", path: "dev/console", major: 5, minor: 1 });
  entries.push({ kind: "file", path: "bin/busybox", data: readFileSync(spec.busybox), mode: 0o755 });
  entries.push({ kind: "symlink", path: "bin/sh", target: "busybox" });
  entries.push({ kind: "file", path: "init", data: new TextEncoder().encode(spec.init), mode: 0o755 });
  for (const m of order) {
    const path = spec.modulePaths.get(m) ?? spec.modulePaths.get(m.replace(/_/g, "-"))!;
    entries.push({ kind: "file", path: `lib/modules/${m}.ko`, data: readFileSync(path) });
  }
  entries.push({ kind: "file", path: "etc/smcvisor/modules", data: new TextEncoder().encode(order.join("\n") + "\n") });
  const made = new Set(dirs);
  for (const f of spec.files ?? []) {
    const parts = f.path.replace(/^\/+/, "").split("/");
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!made.has(d)) {
        made.add(d);
        entries.push({ kind: "dir", path: d });
      }
    }
    entries.push({ kind: "file", path: parts.join("/"), data: f.data, mode: f.mode ?? 0o644 });
  }
  return gzipSync(writeCpio(entries), { level: 6 });
}
