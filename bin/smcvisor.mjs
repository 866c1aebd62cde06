#!/usr/bin/env node
// The smcvisor command. TypeScript sources run through tsx's loader: no build step, nothing stale.
import { register } from "tsx/esm/api";

register();
// A closed pipe (`smcvisor ... | head`) ends the command quietly, as it does for other Unix tools.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s + "\n"),
  err: (s) => process.stderr.write(s + "\n"),
  cwd: process.cwd(),
});
