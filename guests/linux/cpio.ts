/**
 * The cpio "newc" format (the SVR4 "070701" variant) that Linux unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst). Written here because the host has no
 * cpio: a 110-byte ASCII header of thirteen 8-digit hex fields, the NUL-terminated name, padding to 4
 * bytes, the data, padding to 4 bytes; the archive ends with an entry named TRAILER!!!.
 */
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export type CpioEntry =
  | { readonly kind: "dir"; readonly path: string; readonly mode?: number }
  | { readonly kind: "file"; readonly path: string; readonly data: Uint8Array; readonly mode?: number }
  | { readonly kind: "symlink"; readonly path: string; readonly target: string }
  | { readonly kind: "chardev"; readonly path: string; readonly major: number; readonly minor: number; readonly mode?: number };

const enc = new TextEncoder();

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

export function writeCpio(entries: readonly CpioEntry[], mtime = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  let ino = 1;
  const push = (path: string, mode: number, data: Uint8Array, rdevMajor = 0, rdevMinor = 0, nlink = 1) => {
    const name = enc.encode(path.replace(/^\/+/, "") + "\0");
    const header =
      "070701" +
      [ino++, mode, 0, 0, nlink, mtime, data.length, 0, 0, rdevMajor, rdevMinor, name.length, 0].map(hex8).join("");
    parts.push(enc.encode(header), name, new Uint8Array(pad4(110 + name.length)), data, new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) {
    switch (e.kind) {
      case "dir":
        push(e.path, S_IFDIR | (e.mode ?? 0o755), new Uint8Array(0), 0, 0, 2);
        break;
      case "file":
        push(e.path, S_IFREG | (e.mode ?? 0o644), e.data);
        break;
      case "symlink":
        push(e.path, S_IFLNK | 0o777, enc.encode(e.target));
        break;
      case "chardev":
        push(e.path, S_IFCHR | (e.mode ?? 0o600), new Uint8Array(0), e.major, e.minor);
        break;
    }
  }
  ino = 0;
  push("TRAILER!!!", 0, new Uint8Array(0), 0, 0, 1);
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Reads a newc archive back (for tests and for checking what a build produced). */
export function readCpio(data: Uint8Array): { path: string; mode: number; data: Uint8Array; rdev: [number, number] }[] {
  const dec = new TextDecoder();
  const out: { path: string; mode: number; data: Uint8Array; rdev: [number, number] }[] = [];
  let off = 0;
  for (;;) {
    const h = dec.decode(data.subarray(off, off + 110));
    if (!h.startsWith("070701")) throw new Error(`bad cpio magic at ${off}`);
    const field = (i: number) => parseInt(h.slice(6 + 8 * i, 14 + 8 * i), 16);
    const mode = field(1), size = field(6), nameSize = field(11);
    const name = dec.decode(data.subarray(off + 110, off + 110 + nameSize - 1));
    off += 110 + nameSize;
    off += pad4(110 + nameSize);
    if (name === "TRAILER!!!") return out;
    out.push({ path: name, mode, data: data.subarray(off, off + size), rdev: [field(9), field(10)] });
    off += size + pad4(size);
  }
}
