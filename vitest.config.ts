import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const shared = fileURLToPath(new URL("./shared/src", import.meta.url));
const client = fileURLToPath(new URL("./client/src", import.meta.url));
const devtools = fileURLToPath(new URL("./devtools/src", import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^@session-fleet\/client$/, replacement: `${client}/index.ts` },
      { find: /^@session-fleet\/client\/contracts$/, replacement: `${client}/contracts/index.ts` },
      { find: /^@fleet\/shared$/, replacement: `${shared}/index.ts` },
      { find: /^@fleet\/shared\/(.*)$/, replacement: `${shared}/$1/index.ts` },
      { find: /^@fleet\/devtools\/(.*)$/, replacement: `${devtools}/$1/index.ts` },
    ],
  },
  test: {
    include: [
      "client/src/**/*.test.ts",
      "shared/src/**/*.test.ts",
      "devtools/src/**/*.test.ts",
      "services/*/src/**/*.test.ts",
      "cli/src/**/*.test.ts",
      "test/**/*.test.ts",
    ],
    // Scenarios too heavy for ./fleet test on 2 cores run on their own (npm run test:heavy): the
    // 50-session quota test with a real OpenCode per session on the local E2B.
    exclude: process.env.FLEET_HEAVY_TESTS === "1" ? [] : ["test/heavy/**"],
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
