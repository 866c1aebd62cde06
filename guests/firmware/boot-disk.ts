/**
 * A boot disk for a UEFI guest, made here rather than with host tools: an MBR with one EFI system partition
 * (type 0xEF, UEFI 2.10 §5.2.1) formatted FAT16 (Microsoft's "FAT: General Overview of On-Disk Format",
 * v1.03: BPB, FAT, root directory, 8.3 directory entries), holding the files given, each contiguous. UEFI's
 * FAT driver mounts it and its shell runs `startup.nsh` from it. Pure: bytes in, bytes out.
 */

export interface DiskFile {
  /** An absolute-free path of 8.3 names, "/"-separated: "EFI/BOOT/BOOTAA64.EFI". */
  readonly path: string;
  readonly data: Uint8Array;
}

export const SECTOR = 512;
/** Where the partition starts (1 MiB, as partitioning tools align it). */
export const PARTITION_LBA = 2048;
const SECTORS_PER_CLUSTER = 8;
const CLUSTER = SECTOR * SECTORS_PER_CLUSTER;
const RESERVED_SECTORS = 4;
const ROOT_ENTRIES = 512;
const ROOT_SECTORS = (ROOT_ENTRIES * 32) / SECTOR;
/** FAT16 has between 4085 and 65524 clusters (the count alone decides the FAT type). */
const FAT16_MIN_CLUSTERS = 4085;
const FAT16_MAX_CLUSTERS = 65524;
const ATTR_DIRECTORY = 0x10;
const ATTR_ARCHIVE = 0x20;
const ATTR_VOLUME_ID = 0x08;
/** Every entry's date: 2024-01-01 (a fixed one keeps the image the same for the same files). */
const DATE = ((2024 - 1980) << 9) | (1 << 5) | 1;

/** An 8.3 name as the directory stores it (11 bytes, space-padded), or an error naming the problem. */
export function shortName(name: string): Uint8Array {
  const m = /^([A-Z0-9_~!#$%&'(){}^@`-]{1,8})(?:\.([A-Z0-9_~!#$%&'(){}^@`-]{1,3}))?$/.exec(name);
  if (!m) throw new Error(`"${name}" is not an upper-case 8.3 name`);
  const out = new Uint8Array(11).fill(0x20);
  for (let i = 0; i < m[1]!.length; i++) out[i] = m[1]!.charCodeAt(i);
  for (let i = 0; i < (m[2] ?? "").length; i++) out[8 + i] = m[2]!.charCodeAt(i);
  return out;
}

interface Dir {
  readonly name: string;
  readonly dirs: Map<string, Dir>;
  readonly files: Map<string, Uint8Array>;
  cluster: number;
  clusters: number;
}

const newDir = (name: string): Dir => ({ name, dirs: new Map(), files: new Map(), cluster: 0, clusters: 0 });
const clustersFor = (bytes: number) => Math.ceil(bytes / CLUSTER);

/** The whole disk image: MBR, then the FAT16 EFI system partition with `files`. */
export function buildBootDisk(files: readonly DiskFile[], label = "SMCVISOR"): Uint8Array {
  const root = newDir("");
  for (const f of files) {
    const parts = f.path.split("/");
    if (parts.some((p) => p === "")) throw new Error(`"${f.path}": empty path component`);
    let d = root;
    for (const p of parts.slice(0, -1)) {
      shortName(p);
      if (d.files.has(p)) throw new Error(`"${f.path}": ${p} is a file`);
      d = d.dirs.get(p) ?? (d.dirs.set(p, newDir(p)), d.dirs.get(p)!);
    }
    const leaf = parts[parts.length - 1]!;
    shortName(leaf);
    if (d.files.has(leaf) || d.dirs.has(leaf)) throw new Error(`"${f.path}" is given twice`);
    d.files.set(leaf, f.data);
  }
  if (root.dirs.size + root.files.size + 1 > ROOT_ENTRIES) throw new Error(`at most ${ROOT_ENTRIES - 1} entries in the root directory`);

  // Clusters: directories (other than the root) first, then files, each contiguous from cluster 2.
  let next = 2;
  const dirs: Dir[] = [];
  const walk = (d: Dir) => {
    for (const c of d.dirs.values()) {
      c.clusters = Math.max(1, clustersFor(32 * (2 + c.dirs.size + c.files.size)));
      c.cluster = next;
      next += c.clusters;
      dirs.push(c);
      walk(c);
    }
  };
  walk(root);
  const fileStart = new Map<Uint8Array, number>();
  const placeFiles = (d: Dir) => {
    for (const data of d.files.values()) {
      fileStart.set(data, data.length === 0 ? 0 : next);
      next += clustersFor(data.length);
    }
    for (const c of d.dirs.values()) placeFiles(c);
  };
  placeFiles(root);
  // Room to spare (256 clusters), and at least FAT16's minimum.
  const clusters = Math.max(FAT16_MIN_CLUSTERS + 16, next - 2 + 256);
  if (clusters > FAT16_MAX_CLUSTERS) throw new Error(`the files need ${next - 2} clusters of ${CLUSTER} bytes; FAT16 holds at most ${FAT16_MAX_CLUSTERS}`);
  const fatSectors = Math.ceil(((clusters + 2) * 2) / SECTOR);
  const dataStart = RESERVED_SECTORS + 2 * fatSectors + ROOT_SECTORS;
  const partSectors = dataStart + clusters * SECTORS_PER_CLUSTER;
  const disk = new Uint8Array((PARTITION_LBA + partSectors) * SECTOR);
  const dv = new DataView(disk.buffer);

  // MBR (UEFI 2.10 §5.2.1): one partition of type 0xEF over the rest of the disk; CHS fields unused (0xFFFFFE).
  const pe = 446;
  disk.set([0x00, 0xfe, 0xff, 0xff, 0xef, 0xfe, 0xff, 0xff], pe);
  dv.setUint32(pe + 8, PARTITION_LBA, true);
  dv.setUint32(pe + 12, partSectors, true);
  dv.setUint16(510, 0xaa55, true);

  // The partition's boot sector: BPB and the FAT16 extended BPB.
  const p = PARTITION_LBA * SECTOR;
  disk.set([0xeb, 0x3c, 0x90], p);
  disk.set(new TextEncoder().encode("SMCVISOR"), p + 3);
  dv.setUint16(p + 11, SECTOR, true);
  disk[p + 13] = SECTORS_PER_CLUSTER;
  dv.setUint16(p + 14, RESERVED_SECTORS, true);
  disk[p + 16] = 2; // FATs
  dv.setUint16(p + 17, ROOT_ENTRIES, true);
  if (partSectors < 0x1_0000) dv.setUint16(p + 19, partSectors, true);
  else dv.setUint32(p + 32, partSectors, true);
  disk[p + 21] = 0xf8; // fixed medium
  dv.setUint16(p + 22, fatSectors, true);
  dv.setUint16(p + 24, 63, true);
  dv.setUint16(p + 26, 255, true);
  dv.setUint32(p + 28, PARTITION_LBA, true); // hidden sectors
  disk[p + 36] = 0x80;
  disk[p + 38] = 0x29;
  dv.setUint32(p + 39, 0x534d_4356, true); // volume serial
  disk.set(shortName(label), p + 43);
  disk.set(new TextEncoder().encode("FAT16   "), p + 54);
  dv.setUint16(p + 510, 0xaa55, true);

  // The FATs: media and end-of-chain in entries 0 and 1, then each chain.
  const fat = new Uint16Array(fatSectors * (SECTOR / 2));
  fat[0] = 0xfff8;
  fat[1] = 0xffff;
  const chain = (first: number, n: number) => {
    for (let i = 0; i < n; i++) fat[first + i] = i === n - 1 ? 0xffff : first + i + 1;
  };
  for (const d of dirs) chain(d.cluster, d.clusters);
  for (const [data, first] of fileStart) if (first !== 0) chain(first, clustersFor(data.length));
  for (let f = 0; f < 2; f++) {
    const at = p + (RESERVED_SECTORS + f * fatSectors) * SECTOR;
    for (let i = 0; i < fat.length; i++) dv.setUint16(at + 2 * i, fat[i]!, true);
  }

  const clusterAt = (c: number) => p + (dataStart + (c - 2) * SECTORS_PER_CLUSTER) * SECTOR;
  const entry = (at: number, name: Uint8Array, attr: number, cluster: number, size: number) => {
    disk.set(name, at);
    disk[at + 11] = attr;
    dv.setUint16(at + 16, DATE, true); // created
    dv.setUint16(at + 18, DATE, true); // accessed
    dv.setUint16(at + 24, DATE, true); // written
    dv.setUint16(at + 26, cluster, true);
    dv.setUint32(at + 28, size, true);
  };
  const fill = (d: Dir, at: number, parent: number | null) => {
    let i = 0;
    if (parent === null) entry(at + 32 * i++, shortName(label), ATTR_VOLUME_ID, 0, 0);
    else {
      entry(at + 32 * i++, Uint8Array.from(".          ", (c) => c.charCodeAt(0)), ATTR_DIRECTORY, d.cluster, 0);
      entry(at + 32 * i++, Uint8Array.from("..         ", (c) => c.charCodeAt(0)), ATTR_DIRECTORY, parent, 0);
    }
    for (const c of d.dirs.values()) entry(at + 32 * i++, shortName(c.name), ATTR_DIRECTORY, c.cluster, 0);
    for (const [name, data] of d.files) entry(at + 32 * i++, shortName(name), ATTR_ARCHIVE, fileStart.get(data)!, data.length);
    for (const c of d.dirs.values()) fill(c, clusterAt(c.cluster), parent === null ? 0 : d.cluster);
  };
  fill(root, p + (RESERVED_SECTORS + 2 * fatSectors) * SECTOR, null);
  for (const [data, first] of fileStart) if (first !== 0) disk.set(data, clusterAt(first));
  return disk;
}
