// The EFI system partition builder: a reader written from the FAT specification walks the image back
// (MBR, BPB, FAT chains, 8.3 directories); UEFI itself reads it in test/qemu/uefi-linux.test.ts.
import { describe, expect, it } from "vitest";
import { buildBootDisk, PARTITION_LBA, SECTOR, shortName } from "./boot-disk.js";
import { startupScript } from "./debian-disk.js";

/** Reads a file back by path, following the FAT16 chain; also returns the cluster count. */
function readBack(disk: Uint8Array, path: string): { data: Uint8Array; clusters: number } {
  const v = new DataView(disk.buffer, disk.byteOffset);
  const p = v.getUint32(446 + 8, true) * SECTOR;
  const spc = disk[p + 13]!, reserved = v.getUint16(p + 14, true), fats = disk[p + 16]!, rootEntries = v.getUint16(p + 17, true);
  const total = v.getUint16(p + 19, true) || v.getUint32(p + 32, true);
  const fatSectors = v.getUint16(p + 22, true);
  const rootAt = p + (reserved + fats * fatSectors) * SECTOR;
  const dataAt = rootAt + rootEntries * 32;
  const clusters = Math.floor((total - (reserved + fats * fatSectors + (rootEntries * 32) / SECTOR)) / spc);
  const fat = (c: number) => v.getUint16(p + reserved * SECTOR + 2 * c, true);
  const chain = (first: number, size: number) => {
    const out = new Uint8Array(size);
    let at = 0;
    for (let c = first; c < 0xfff8; c = fat(c)) {
      const n = Math.min(spc * SECTOR, size - at);
      out.set(disk.subarray(dataAt + (c - 2) * spc * SECTOR, dataAt + (c - 2) * spc * SECTOR + n), at);
      at += n;
      if (at >= size) break;
    }
    return out;
  };
  let dir = disk.subarray(rootAt, rootAt + rootEntries * 32);
  const parts = path.split("/");
  for (let i = 0; i < parts.length; i++) {
    const name = new TextDecoder().decode(shortName(parts[i]!));
    let found = -1;
    for (let e = 0; e < dir.length; e += 32) if (new TextDecoder().decode(dir.subarray(e, e + 11)) === name) found = e;
    if (found < 0) throw new Error(`${parts[i]} not found`);
    const ev = new DataView(dir.buffer, dir.byteOffset + found);
    const cluster = ev.getUint16(26, true), size = ev.getUint32(28, true);
    if (i === parts.length - 1) return { data: chain(cluster, size), clusters };
    expect(dir[found + 11]! & 0x10).toBe(0x10);
    dir = chain(cluster, spc * SECTOR);
  }
  throw new Error("unreachable");
}

describe("boot disk (MBR + FAT16 EFI system partition)", () => {
  const kernel = Uint8Array.from({ length: 300_001 }, (_, i) => (i * 31) & 0xff);
  const files = [
    { path: "EFI/DEBIAN/LINUX.EFI", data: kernel },
    { path: "INITRD", data: new Uint8Array(70_000).fill(9) },
    { path: "STARTUP.NSH", data: new TextEncoder().encode(startupScript("console=ttyAMA0")) },
    { path: "EMPTY", data: new Uint8Array(0) },
  ];
  const disk = buildBootDisk(files);

  it("has an MBR with one EFI system partition (type 0xEF) at 1 MiB covering the disk", () => {
    const v = new DataView(disk.buffer);
    expect(v.getUint16(510, true)).toBe(0xaa55);
    expect(disk[446 + 4]).toBe(0xef);
    expect(v.getUint32(446 + 8, true)).toBe(PARTITION_LBA);
    expect((PARTITION_LBA + v.getUint32(446 + 12, true)) * SECTOR).toBe(disk.length);
    expect(disk.length % SECTOR).toBe(0);
  });

  it("is FAT16 by its cluster count, with a valid boot sector", () => {
    const p = PARTITION_LBA * SECTOR;
    expect(new TextDecoder().decode(disk.subarray(p + 54, p + 62))).toBe("FAT16   ");
    expect(new DataView(disk.buffer).getUint16(p + 510, true)).toBe(0xaa55);
    const { clusters } = readBack(disk, "INITRD");
    expect(clusters).toBeGreaterThanOrEqual(4085);
    expect(clusters).toBeLessThanOrEqual(65524);
  });

  it("every file reads back byte for byte through its directory path and FAT chain", () => {
    for (const f of files) expect(Buffer.compare(readBack(disk, f.path).data, f.data), f.path).toBe(0);
    // And the content is not trivially equal: a changed byte is seen.
    const other = readBack(disk, "INITRD").data;
    other[0] = 1;
    expect(Buffer.compare(other, files[1]!.data)).not.toBe(0);
  });

  it("the same files give the same image", () => {
    // Compared as buffers: an element-wise deep equality of 17 MB takes minutes.
    expect(Buffer.compare(buildBootDisk(files), disk)).toBe(0);
  });

  it("refuses names that are not 8.3, duplicates and a file used as a directory", () => {
    expect(() => buildBootDisk([{ path: "efi/boot.efi", data: kernel }])).toThrow(/not an upper-case 8.3 name/);
    expect(() => buildBootDisk([{ path: "TOOLONGNAME.EFI", data: kernel }])).toThrow(/8.3/);
    expect(() => buildBootDisk([{ path: "A", data: kernel }, { path: "A", data: kernel }])).toThrow(/given twice/);
    expect(() => buildBootDisk([{ path: "A", data: kernel }, { path: "A/B", data: kernel }])).toThrow(/is a file/);
    expect(() => buildBootDisk([{ path: "A//B", data: kernel }])).toThrow(/empty path/);
  });

  it("startup.nsh: the kernel with initrd= and the command line; a line break or the shell's escape is refused", () => {
    expect(startupScript("console=ttyAMA0 quiet")).toBe("fs0:\r\n\\EFI\\DEBIAN\\LINUX.EFI initrd=\\INITRD console=ttyAMA0 quiet\r\n");
    expect(() => startupScript("a\r\nreset")).toThrow(/one line/);
    expect(() => startupScript("a ^ b")).toThrow(/escape/);
  });
});
