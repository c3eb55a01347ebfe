import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startInfra } from "../../devtools/src/infra/index.js";

declare module "vitest" {
  export interface ProvidedContext {
    natsUrl: string;
    mongoUri: string;
    storeKind: string;
    infraDir: string;
  }
}

/**
 * One nats-server and one store for the whole run; each test file isolates itself with its own
 * namespace (streams, subjects, durables) and database. NATS_URL / MONGODB_URI adopt running servers.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dataDir = mkdtempSync(join(tmpdir(), "fleet-test-"));
  const infra = await startInfra({
    dataDir,
    natsUrl: process.env.NATS_URL,
    mongoUri: process.env.MONGODB_URI,
    dockerHost: process.env.DOCKER_HOST,
    progress: (m) => process.stdout.write(`[infra] ${m}\n`),
  });
  process.stdout.write(`[infra] nats ${infra.nats} ${infra.natsUrl}, store ${infra.store} ${infra.mongoUri}\n`);
  project.provide("natsUrl", infra.natsUrl);
  project.provide("mongoUri", infra.mongoUri);
  project.provide("storeKind", infra.store);
  project.provide("infraDir", dataDir);
  return async () => {
    await infra.stop();
    if (!process.env.FLEET_TEST_KEEP) rmSync(dataDir, { recursive: true, force: true });
  };
}
