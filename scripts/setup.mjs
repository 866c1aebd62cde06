#!/usr/bin/env node
// Idempotent setup: installs what is missing and says what it did. Plain Node, no dependencies, so it
// runs on a fresh clone before `npm ci`. Each part of the system adds its steps as a module in
// scripts/setup/ named NN-name.mjs (run in that order) exporting `steps`: [{ name, for: ["tests", "start"],
// run(ctx) }]. Other modules there (context.mjs, toolchain.mjs) are helpers the steps import.
//
//   node scripts/setup.mjs              everything `npm start` needs
//   node scripts/setup.mjs --for-tests  everything `npm test` and `npm run bench` need
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { context } from "./setup/context.mjs";
import { progress } from "./setup/progress.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
const purpose = args.has("--for-tests") ? "tests" : "start";
// On a terminal, a step that takes a while shows a live line with its name and the time so far.
const ticker = progress();
const ctx = context(root, { quiet: args.has("--quiet"), beforeSay: ticker.clear });

const modules = readdirSync(join(root, "scripts", "setup"))
  .filter((f) => /^\d+-.*\.mjs$/.test(f))
  .sort();
for (const file of modules) {
  const { steps } = await import(pathToFileURL(join(root, "scripts", "setup", file)).href);
  for (const step of steps) {
    if (!step.for.includes(purpose)) continue;
    ticker.start(step.name);
    try {
      await step.run(ctx);
      ticker.end();
    } catch (e) {
      await ticker.stop();
      // A `standalone` error's message is already the whole line (what is missing and how to install it).
      process.stderr.write(e.standalone ? `setup: ${e.message}\n` : `setup: ${step.name} failed: ${e.message}\n`);
      process.exit(1);
    }
  }
}
await ticker.stop();
