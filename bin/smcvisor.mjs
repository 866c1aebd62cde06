#!/usr/bin/env node
// The smcvisor command. TypeScript sources run through tsx's loader: no build step, nothing stale.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s + "\n"),
  err: (s) => process.stderr.write(s + "\n"),
  cwd: process.cwd(),
});
