// The FF-A modules for Debian's kernel and the FF-A guest that carries them. The tests below the parsers
// use Debian's packages from the cache (setup fetches and builds them; a cold build here takes about a
// minute), as the QEMU tests do.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { readCpio } from "./cpio.js";
import { fetchPackage } from "./debian.js";
import { crcMismatches, dependencyNamed, ensureFfaModules, FFA_MODULE, fetchExact, kernelConfig, modversions, type FfaModules } from "./ffa-modules.js";
import { ensureLinuxGuest, type LinuxGuest } from "./guest.js";
import { modinfo } from "./modinfo.js";

describe("Debian control fields and kernel config", () => {
  it("finds the common headers and kbuild packages in linux-headers-<abi>-arm64's Depends", () => {
    const depends = "linux-headers-6.1.0-57-common (= 6.1.192-3), linux-kbuild-6.1 (>= 6.1.192-3), gcc-12";
    expect(dependencyNamed(depends, "linux-headers-")).toBe("linux-headers-6.1.0-57-common");
    expect(dependencyNamed(depends, "linux-kbuild-")).toBe("linux-kbuild-6.1");
    expect(dependencyNamed("gcc-12 | gcc-13, linux-kbuild-6.1:any", "linux-kbuild-")).toBe("linux-kbuild-6.1");
    expect(dependencyNamed(depends, "linux-source-")).toBeUndefined();
  });

  it("reads set options and leaves unset ones out", () => {
    const c = kernelConfig("CONFIG_MODULE_SIG=y\n# CONFIG_MODULE_SIG_FORCE is not set\nCONFIG_MODULE_SIG_HASH=\"sha256\"\n");
    expect(c.get("CONFIG_MODULE_SIG")).toBe("y");
    expect(c.get("CONFIG_MODULE_SIG_HASH")).toBe('"sha256"');
    expect(c.has("CONFIG_MODULE_SIG_FORCE")).toBe(false);
  });
});

describe("FF-A modules for Debian's kernel", () => {
  let guest: LinuxGuest;
  let ffa: FfaModules;
  let debianOptee: Uint8Array;
  beforeAll(() => {
    guest = ensureLinuxGuest({ ffa: true });
    ffa = ensureFfaModules(guest.kernelVersion);
    const image = fetchPackage(`linux-image-${guest.kernelVersion}`);
    debianOptee = readFileSync(join(image.root, "lib", "modules", guest.kernelVersion, "kernel", "drivers", "tee", "optee", "optee.ko"));
  }, 300_000);

  it("a package version the archive does not have is one line that names it and the kernel rule", () => {
    expect(() => fetchExact("linux-source-6.1", "6.1.0-0smcvisor0")).toThrow(/^Debian's archive offers no linux-source-6\.1=6\.1\.0-0smcvisor0, which must match the guest's kernel exactly \(.*\); run apt-get update/);
  });

  it("carry the vermagic of Debian's optee.ko", () => {
    const want = modinfo(debianOptee).get("vermagic");
    expect(want?.[0]).toMatch(new RegExp(`^${guest.kernelVersion} SMP .*modversions`));
    expect(modinfo(readFileSync(ffa.optee)).get("vermagic")).toEqual(want);
    expect(modinfo(readFileSync(ffa.arm_ffa)).get("vermagic")).toEqual(want);
  });

  it("optee.ko needs Debian's tee.ko and ffa-module, with Debian's symbol versions", () => {
    const optee = readFileSync(ffa.optee);
    expect(modinfo(optee).get("name")).toEqual(["optee"]);
    expect(modinfo(optee).get("depends")?.[0]?.split(",").sort()).toEqual([FFA_MODULE, "tee"]);
    expect(modinfo(readFileSync(ffa.arm_ffa)).get("name")).toEqual(["ffa_module"]);
    const versions = modversions(optee);
    // The FF-A ABI is reachable: the FF-A bus's driver registration is imported (Debian's optee.ko has none).
    expect(versions.has("ffa_driver_register")).toBe(true);
    expect(modversions(debianOptee).has("ffa_driver_register")).toBe(false);
    // Symbols of Debian's tee.ko, bound by the CRCs Debian's own optee.ko was built with.
    expect(versions.get("tee_device_register")).toBe(modversions(debianOptee).get("tee_device_register"));
    expect(crcMismatches(debianOptee, optee)).toEqual([]);
  });

  it("crcMismatches names a symbol whose CRC differs", () => {
    const optee = new Uint8Array(readFileSync(ffa.optee));
    const crc = modversions(optee).get("tee_device_register")!;
    // Find the entry (its name follows the 8-byte CRC) and change one CRC byte.
    const name = new TextEncoder().encode("tee_device_register\0");
    const at = Buffer.from(optee).indexOf(Buffer.from(name));
    expect(at).toBeGreaterThan(8);
    expect(new DataView(optee.buffer, optee.byteOffset).getUint32(at - 8, true)).toBe(crc);
    optee[at - 8] ^= 1;
    expect(crcMismatches(debianOptee, optee)).toEqual(["tee_device_register"]);
  });

  it("are built once: a second call returns the same files at once", () => {
    const started = performance.now();
    expect(ensureFfaModules(guest.kernelVersion)).toEqual(ffa);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it("go into the FF-A guest only, ffa-module loaded before optee", () => {
    const files = new Map(readCpio(gunzipSync(readFileSync(guest.initrd))).map((e) => [e.path, e.data]));
    const order = new TextDecoder().decode(files.get("etc/smcvisor/modules")).trim().split("\n");
    expect(order.indexOf(FFA_MODULE)).toBeGreaterThan(order.indexOf("tee"));
    expect(order.indexOf("optee")).toBeGreaterThan(order.indexOf(FFA_MODULE));
    expect(Buffer.compare(files.get("lib/modules/optee.ko")!, readFileSync(ffa.optee))).toBe(0);
    expect(Buffer.compare(files.get(`lib/modules/${FFA_MODULE}.ko`)!, readFileSync(ffa.arm_ffa))).toBe(0);
    expect(guest.ffa).toEqual(ffa);

    const plain = ensureLinuxGuest();
    expect(ensureLinuxGuest({ ffa: false }).initrd).toBe(plain.initrd);
    expect(plain.initrd).not.toBe(guest.initrd);
    expect(plain.ffa).toBeUndefined();
    const plainFiles = new Map(readCpio(gunzipSync(readFileSync(plain.initrd))).map((e) => [e.path, e.data]));
    expect(plainFiles.has(`lib/modules/${FFA_MODULE}.ko`)).toBe(false);
    expect(Buffer.compare(plainFiles.get("lib/modules/optee.ko")!, debianOptee)).toBe(0);
  }, 120_000);
});
