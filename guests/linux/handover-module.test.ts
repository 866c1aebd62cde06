// The handover module for Debian's kernel and the guest that carries it, from Debian's packages in the
// cache (setup builds it; a cold build here takes under a minute), as the QEMU tests use it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { readCpio } from "./cpio.js";
import { fetchPackage } from "./debian.js";
import { ensureLinuxGuest, guestKernel } from "./guest.js";
import { ensureHandoverModule, HANDOVER_MODULE } from "./handover-module.js";
import { modinfo } from "./modinfo.js";

describe("smcv_handover.ko for Debian's kernel", () => {
  let ko: string;
  let kernelVersion: string;
  beforeAll(() => {
    kernelVersion = guestKernel().kernelVersion;
    ko = ensureHandoverModule(kernelVersion);
  }, 300_000);

  it("carries the kernel's vermagic, its parameters, and no build path", () => {
    const image = fetchPackage(`linux-image-${kernelVersion}`);
    const debian = modinfo(readFileSync(join(image.root, "lib", "modules", kernelVersion, "kernel", "drivers", "tee", "tee.ko")));
    const info = modinfo(readFileSync(ko));
    expect(info.get("vermagic")).toEqual(debian.get("vermagic"));
    expect(info.get("name")).toEqual([HANDOVER_MODULE]);
    expect(info.get("license")).toEqual(["GPL"]);
    expect((info.get("parm") ?? []).map((p) => p.split(":")[0]).sort()).toEqual(["hvc", "only_this_cpu", "smc", "soft_restart"]);
    expect(readFileSync(ko).includes(Buffer.from("/root/.cache"))).toBe(false);
  });

  it("is cached: a second call returns the same file", () => {
    expect(ensureHandoverModule(kernelVersion)).toBe(ko);
  });

  it("goes into a handover guest's initramfs, and is not loaded at boot (the scenario loads it)", () => {
    const files = (g: ReturnType<typeof ensureLinuxGuest>) => new Map(readCpio(gunzipSync(readFileSync(g.initrd))).map((e) => [e.path, e.data]));
    const with_ = files(ensureLinuxGuest({ handover: true }));
    expect(Buffer.compare(with_.get(`lib/modules/${HANDOVER_MODULE}.ko`)!, readFileSync(ko))).toBe(0);
    expect(new TextDecoder().decode(with_.get("etc/smcvisor/modules")).split("\n")).not.toContain(HANDOVER_MODULE);
  }, 300_000);
});
