import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts", "guests/**/*.test.ts"],
    // Real-guest scenarios boot QEMU once per file; they set their own, longer timeouts.
    testTimeout: 20_000,
    hookTimeout: 300_000,
    pool: "forks",
  },
});
