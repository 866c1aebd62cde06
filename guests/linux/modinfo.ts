/**
 * Reads a kernel module's .modinfo section (NUL-separated "key=value" strings, Linux
 * include/linux/moduleparam.h MODULE_INFO) from its ELF64 file, so module dependencies come from the
 * modules themselves (`depends=`), with no depmod on the host.
 */
export function modinfo(elf: Uint8Array): Map<string, string[]> {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (dv.getUint32(0, false) !== 0x7f45_4c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error("not a little-endian ELF64 file");
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true), shnum = dv.getUint16(0x3c, true), shstrndx = dv.getUint16(0x3e, true);
  const section = (i: number) => {
    const b = shoff + i * shentsize;
    return { name: dv.getUint32(b, true), offset: Number(dv.getBigUint64(b + 0x18, true)), size: Number(dv.getBigUint64(b + 0x20, true)) };
  };
  const strtab = section(shstrndx);
  const dec = new TextDecoder();
  const nameAt = (off: number) => {
    let end = strtab.offset + off;
    while (elf[end] !== 0) end++;
    return dec.decode(elf.subarray(strtab.offset + off, end));
  };
  const out = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameAt(s.name) !== ".modinfo") continue;
    for (const entry of dec.decode(elf.subarray(s.offset, s.offset + s.size)).split("\0")) {
      const eq = entry.indexOf("=");
      if (eq <= 0) continue;
      const k = entry.slice(0, eq);
      out.set(k, [...(out.get(k) ?? []), entry.slice(eq + 1)]);
    }
  }
  return out;
}

/** The modules a module needs loaded first, by name ("tee" for tee.ko). */
export function moduleDepends(elf: Uint8Array): string[] {
  return (modinfo(elf).get("depends") ?? []).flatMap((d) => d.split(",")).filter((d) => d.length > 0);
}
