// QEMU, the AArch64 cross compiler and dtc from Debian; then the EL2 shim and the bare-metal conformance
// guest, built into build/ (never committed). make rebuilds only what changed.
export const steps = [
  {
    name: "QEMU and the AArch64 toolchain",
    for: ["tests", "start"],
    run(ctx) {
      // gcc-arm-linux-gnueabihf builds the bare-metal guest for AArch32 EL1 as well.
      ctx.aptInstall(["qemu-system-arm", "gcc-aarch64-linux-gnu", "binutils-aarch64-linux-gnu", "gcc-arm-linux-gnueabihf", "device-tree-compiler", "make"]);
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
