import { describe, expect, it } from "vitest";
import { readCpio, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, writeCpio } from "./cpio.js";

describe("cpio newc writer", () => {
  it("round-trips directories, files, symlinks and device nodes with 4-byte alignment", () => {
    const data = new Uint8Array([1, 2, 3, 4, 5]);
    const archive = writeCpio([
      { kind: "dir", path: "etc" },
      { kind: "file", path: "/etc/a", data, mode: 0o755 },
      { kind: "symlink", path: "bin/sh", target: "busybox" },
      { kind: "chardev", path: "dev/console", major: 5, minor: 1 },
    ]);
    expect(archive.length % 4).toBe(0);
    const back = readCpio(archive);
    expect(back.map((e) => e.path)).toEqual(["etc", "etc/a", "bin/sh", "dev/console"]);
    expect(back[0]!.mode & 0o170000).toBe(S_IFDIR);
    expect(back[1]!.mode).toBe(S_IFREG | 0o755);
    expect([...back[1]!.data]).toEqual([1, 2, 3, 4, 5]);
    expect(back[2]!.mode & 0o170000).toBe(S_IFLNK);
    expect(new TextDecoder().decode(back[2]!.data)).toBe("busybox");
    expect(back[3]!.mode & 0o170000).toBe(S_IFCHR);
    expect(back[3]!.rdev).toEqual([5, 1]);
  });

  it("writes the header the kernel expects", () => {
    const a = writeCpio([{ kind: "file", path: "x", data: new Uint8Array(0) }]);
    const h = new TextDecoder().decode(a.subarray(0, 110));
    expect(h.slice(0, 6)).toBe("070701");
    expect(h.slice(6 + 8 * 11, 6 + 8 * 12)).toBe("00000002"); // name size includes the NUL
    expect(new TextDecoder().decode(a).includes("TRAILER!!!")).toBe(true);
  });
});
