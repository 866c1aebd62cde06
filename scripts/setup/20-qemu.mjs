// QEMU, the cross compilers and dtc from Debian; a check that each compiler builds with the flags of the
// build it serves (toolchain.mjs); then the EL2 shim and the bare-metal conformance guest, built into
// build/ (never committed). make rebuilds only what changed.
import { assertToolchains } from "./toolchain.mjs";

export const steps = [
  {
    name: "QEMU and the cross toolchains",
    for: ["tests", "start"],
    run(ctx) {
      ctx.aptInstall([
        "qemu-system-arm",
        "device-tree-compiler",
        "make",
        // The shim, the AArch64 bare-metal guest and the TEE client. gcc-aarch64-linux-gnu only recommends
        // the C library, which setup installs without recommends: libc6-dev-arm64-cross has the headers,
        // crt files and libpthread the TEE client (guests/linux/tee-client.ts) is built with.
        "gcc-aarch64-linux-gnu",
        "binutils-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
        // The bare-metal guest for AArch32 EL1: freestanding, no C library; its -lgcc is libgcc-N-dev-armhf-cross,
        // which the compiler depends on. binutils for arm-linux-gnueabihf-objcopy.
        "gcc-arm-linux-gnueabihf",
        "binutils-arm-linux-gnueabihf",
      ]);
    },
  },
  {
    name: "toolchain check",
    for: ["tests", "start"],
    async run(ctx) {
      await assertToolchains(ctx.root);
    },
  },
  {
    name: "EL2 shim and bare-metal guest",
    for: ["tests", "start"],
    run(ctx) {
      ctx.run("make", ["-s", "-C", "shim"], { stdio: ["ignore", "ignore", "inherit"] });
      ctx.run("make", ["-s", "-C", "guests/baremetal"], { stdio: ["ignore", "ignore", "inherit"] });
    },
  },
];
