// npm packages: `npm ci` when node_modules is missing or older than the lock file. One of them is ours and
// native (native/shared-memory: mmap for Node), built by node-gyp from source with the host's C compiler
// against Node's own headers; it is rebuilt when its source is newer than the binary.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** node-gyp must not download Node's headers (this machine reaches no such server): point it at the installed ones. */
function nodedirArgs() {
  const configured = execFileSync("npm", ["config", "get", "nodedir"], { encoding: "utf8" }).trim();
  if (configured && configured !== "undefined" && configured !== "null") return [];
  const prefix = join(process.execPath, "..", "..");
  return existsSync(join(prefix, "include", "node", "node_api.h")) ? [`--nodedir=${prefix}`] : [];
}

function newest(dir) {
  return Math.max(...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
}

export const steps = [
  {
    name: "npm packages",
    for: ["tests", "start"],
    run(ctx) {
      // The native addon is compiled while npm installs it.
      ctx.aptInstall(["g++", "make", "python3"]);
      const lock = join(ctx.root, "package-lock.json");
      const installed = join(ctx.root, "node_modules", ".package-lock.json");
      if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
        ctx.say("installing npm packages (npm ci)");
        ctx.run("npm", ["ci", "--no-audit", "--no-fund", ...nodedirArgs()]);
      }
      const addon = join(ctx.root, "native", "shared-memory");
      const binary = join(addon, "build", "Release", "shared_memory.node");
      if (!existsSync(binary) || statSync(binary).mtimeMs < newest(join(addon, "src"))) {
        ctx.say("building native/shared-memory (npm rebuild)");
        ctx.run("npm", ["rebuild", "@smcvisor/shared-memory", ...nodedirArgs()]);
      }
    },
  },
];
