#!/usr/bin/env node
// Idempotent setup: installs what is missing and says what it did. Plain Node, no dependencies, so it
// runs on a fresh clone before `npm ci`. Later steps (Debian packages, guest images, the shim) add
// themselves to STEPS.
//
//   node scripts/setup.mjs              everything `npm start` needs
//   node scripts/setup.mjs --for-tests  everything `npm test` and `npm run bench` need
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
const quiet = args.has("--quiet");

function say(msg) {
  if (!quiet) process.stderr.write(`setup: ${msg}\n`);
}

function run(cmd, argv, opts = {}) {
  execFileSync(cmd, argv, { cwd: root, stdio: ["ignore", "inherit", "inherit"], ...opts });
}

/** npm packages: `npm ci` when node_modules is missing or older than the lock file. */
function npmPackages() {
  const lock = join(root, "package-lock.json");
  const installed = join(root, "node_modules", ".package-lock.json");
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs) return;
  say("installing npm packages (npm ci)");
  run("npm", ["ci", "--no-audit", "--no-fund"]);
}

const STEPS = [{ name: "npm packages", run: npmPackages, for: ["tests", "start"] }];

const purpose = args.has("--for-tests") ? "tests" : "start";
for (const step of STEPS) {
  if (!step.for.includes(purpose)) continue;
  try {
    step.run();
  } catch (e) {
    process.stderr.write(`setup: ${step.name} failed: ${e.message}\n`);
    process.exit(1);
  }
}
