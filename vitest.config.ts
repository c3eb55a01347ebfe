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
    // The node-loss scenarios on a three-node cluster run on their own (npm run test:cluster): in the
    // full suite on 2 cores they did not finish within their bounds every time (docs/guarantees.md §9).
    exclude: process.env.FLEET_CLUSTER_TESTS === "1" ? [] : ["test/nats-cluster.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
