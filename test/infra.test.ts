import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import {
  infraStatus,
  isAlive,
  pingMongo,
  readInfraState,
  startInfra,
  stopInfraFromState,
} from "../devtools/src/infra/index.js";
import { eventually } from "./support/fixtures.js";

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "fleet-infra-test-"));
  dirs.push(d);
  return d;
}

interface ChildReport {
  natsUrl?: string;
  mongoUri?: string;
  pids?: number[];
  error?: string;
}

/** Starts the launcher in a child process and resolves with its first line of output. */
function launchChild(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, [join(import.meta.dirname, "support", "infra-child.mjs"), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env,
  });
  const report = new Promise<ChildReport>((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line) as ChildReport));
    child.once("exit", (code) => reject(new Error(`child exited ${code} before reporting`)));
  });
  return { child, report };
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("infrastructure launcher", () => {
  it("starts nats-server with JetStream and FerretDB that really answer, and stops them", async () => {
    const infra = await startInfra({ dataDir: tempDir(), docker: "off" });
    expect(infra.nats).toBe("local");
    expect(infra.store).toBe("ferretdb");
    const nc = await connect({ servers: infra.natsUrl });
    const account = await (await jetstreamManager(nc)).getAccountInfo();
    expect(account.limits).toBeDefined();
    await nc.close();
    await pingMongo(infra.mongoUri);
    const pids = infra.processes.map((p) => p.pid);
    expect(pids).toHaveLength(2);
    await infra.stop();
    await infra.stop();
    expect(pids.filter(isAlive)).toEqual([]);
  });

  it("adopts given servers instead of starting its own", async () => {
    const own = await startInfra({ dataDir: tempDir(), docker: "off" });
    const adopted = await startInfra({ dataDir: tempDir(), natsUrl: own.natsUrl, mongoUri: own.mongoUri });
    expect(adopted).toMatchObject({
      nats: "external",
      store: "external",
      natsUrl: own.natsUrl,
      mongoUri: own.mongoUri,
      processes: [],
    });
    await adopted.stop();
    await pingMongo(own.mongoUri);
    await own.stop();
  });

  it("leaves no server behind when its parent is killed with SIGKILL", async () => {
    const { child, report } = launchChild(["owned", tempDir()]);
    const started = await report;
    expect(started.pids).toHaveLength(2);
    expect(started.pids?.every(isAlive)).toBe(true);
    child.kill("SIGKILL");
    await eventually(() => started.pids?.every((p) => !isAlive(p)), 10_000);
  });

  it("keeps persistent servers after the parent exits, and stops them from the state file", async () => {
    const dir = tempDir();
    const { report } = launchChild(["persistent", dir]);
    const started = await report;
    await new Promise((r) => setTimeout(r, 300));
    expect(started.pids?.every(isAlive)).toBe(true);
    const health = await infraStatus(dir);
    expect(health).toMatchObject({ natsReady: true, storeReady: true });
    expect(readInfraState(dir)?.natsUrl).toBe(started.natsUrl);
    await stopInfraFromState(dir);
    expect(started.pids?.filter(isAlive)).toEqual([]);
    expect(readInfraState(dir)).toBeUndefined();
    expect(await infraStatus(dir)).toBeUndefined();
  });

  it("says what to do when Go is missing and nothing is built", async () => {
    const { report } = launchChild(["owned", tempDir(), tempDir()], { ...process.env, PATH: "/usr/bin:/bin" });
    const failed = await report;
    expect(failed.error).toMatch(/go not found: install Go >= 1\.22, or set NATS_URL and MONGODB_URI/);
  });
});
