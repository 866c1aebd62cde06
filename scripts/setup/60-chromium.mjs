// The dashboard's browser test (test/ui/dashboard.test.ts) drives Debian's chromium with playwright-core
// (an npm dependency that downloads no browser of its own): the system browser at /usr/bin/chromium,
// headless. Fonts come with the package's dependencies, so the page (and docs/dashboard.png) render text.
export const steps = [
  {
    name: "chromium for the dashboard's browser test",
    for: ["tests"],
    run(ctx) {
      ctx.aptInstall(["chromium"]);
    },
  },
];
