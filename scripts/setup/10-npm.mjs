// npm packages: `npm ci` when node_modules is missing or older than the lock file.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";

export const steps = [
  {
    name: "npm packages",
    for: ["tests", "start"],
    run(ctx) {
      const lock = join(ctx.root, "package-lock.json");
      const installed = join(ctx.root, "node_modules", ".package-lock.json");
      if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs) return;
      ctx.say("installing npm packages (npm ci)");
      ctx.run("npm", ["ci", "--no-audit", "--no-fund"]);
    },
  },
];
