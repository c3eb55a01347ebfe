import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { MongoClient } from "mongodb";
import { FleetError, errorMessage } from "@fleet/shared/errors";
import { natsNodeConfig } from "./nats-config.js";
import { freePort } from "./ports.js";
import { logTail, startProcess, type ManagedProcess } from "./process.js";

export interface ServerStart {
  binary: string;
  dataDir: string;
  persistent: boolean;
  readyTimeoutMs?: number;
  /** Serve the server's own counters on this loopback port (nats: /varz; FerretDB: /debug/metrics). */
  monitorPort?: number;
}

export interface NatsAuthStart {
  /** The `accounts` block of the server config (users, permissions, imports and exports). */
  config: string;
  /** Credentials the readiness probe uses. */
  probe: { user: string; pass: string };
}

export interface StartedServer {
  url: string;
  process: ManagedProcess;
}

export async function waitReady(
  proc: ManagedProcess,
  what: string,
  timeoutMs: number,
  probe: () => Promise<void>,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < until) {
    if (!proc.running) {
      throw new FleetError(
        "infra",
        `${what} exited during start-up; its log (${proc.logFile}) ends with:\n${logTail(proc.logFile)}`,
      );
    }
    try {
      await probe();
      return;
    } catch (err) {
      last = errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await proc.stop();
  throw new FleetError("infra", `${what} did not become ready in ${timeoutMs} ms (${last}); see ${proc.logFile}`);
}

/** nats-server with JetStream (file storage) on a free loopback port; ready once JetStream answers. */
export async function startNatsServer(
  opts: ServerStart & { auth?: NatsAuthStart; syncInterval?: string | undefined },
): Promise<StartedServer> {
  const dir = join(opts.dataDir, "nats");
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "nats.conf");
  for (let tries = 1; ; tries++) {
    const port = await freePort();
    // Owner-only: with auth on, it holds the users' passwords.
    writeFileSync(
      conf,
      natsNodeConfig({
        serverName: `fleet-${port}`,
        port,
        storeDir: join(dir, "jetstream"),
        monitorPort: opts.monitorPort,
        syncInterval: opts.syncInterval,
        accounts: opts.auth?.config,
      }),
      { mode: 0o600 },
    );
    const proc = startProcess({
      name: "nats-server",
      command: opts.binary,
      args: ["-c", conf],
      logFile: join(opts.dataDir, "nats-server.log"),
      persistent: opts.persistent,
    });
    const url = `nats://127.0.0.1:${port}`;
    try {
      await waitReady(proc, "nats-server", opts.readyTimeoutMs ?? 20_000, () => probeJetStream(url, opts.auth?.probe));
      return { url, process: proc };
    } catch (err) {
      // The free port may have been taken between our probe and the server's bind: try another.
      if (tries >= 3) throw err;
    }
  }
}

/** Resolves once the server at `url` answers a JetStream request (in a cluster: once it has a meta leader). */
export async function probeJetStream(url: string, creds?: { user: string; pass: string }): Promise<void> {
  const nc = await connect({ servers: url, reconnect: false, timeout: 1_000, ...(creds ?? {}) });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 1_000 });
    await jsm.getAccountInfo();
  } finally {
    await nc.close();
  }
}

/**
 * FerretDB (SQLite backend, one file per database), ready once it answers ping. It listens on a
 * Unix socket only, in a folder of the fleet's user: FerretDB on SQLite has no authentication, so
 * the socket's owner is what decides who may connect (neither other users nor anything without the
 * host's filesystem, such as a sandbox, can), and no port on the host's loopback serves the store.
 */
export async function startFerretDb(opts: ServerStart): Promise<StartedServer> {
  const dir = join(opts.dataDir, "ferretdb");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const socket = storeSocketPath(dir);
  rmSync(socket, { force: true });
  const proc = startProcess({
    name: "ferretdb",
    command: opts.binary,
    args: [
      "--handler=sqlite",
      // Writes take SQLite's write lock when they begin, so its busy timeout applies (a deferred
      // transaction upgrading under contention fails at once with SQLITE_BUSY). synchronous=normal
      // with WAL: a commit survives the process, not a power cut, like JetStream's file store,
      // which also leaves fsync to its sync interval. A checkpoint every 10,000 WAL pages (40 MB)
      // rather than SQLite's 1,000: log lines keyed by session land on scattered index pages, and
      // a page written again before the next checkpoint is copied back once (200,000 lines into
      // session_logs: 10.2 s of FerretDB at 1,000 pages, 8.1 s at 10,000; docs/benchmarks.md 10).
      `--sqlite-url=file:${dir}/?_txlock=immediate&_pragma=synchronous(normal)&_pragma=wal_autocheckpoint(10000)`,
      "--listen-addr=",
      `--listen-unix=${socket}`,
      `--state-dir=${dir}`,
      `--debug-addr=${opts.monitorPort ? `127.0.0.1:${opts.monitorPort}` : "-"}`,
      "--telemetry=disable",
      "--log-level=warn",
    ],
    env: { ...process.env, FERRETDB_TELEMETRY: "disable", DO_NOT_TRACK: "1" },
    logFile: join(opts.dataDir, "ferretdb.log"),
    persistent: opts.persistent,
  });
  const url = `mongodb://${encodeURIComponent(socket)}/`;
  await waitReady(proc, "FerretDB", opts.readyTimeoutMs ?? 20_000, () => pingMongo(url));
  return { url, process: proc };
}

/** Unix socket paths are limited to 107 bytes: a deep data folder gets its socket in a private temporary folder. */
function storeSocketPath(dir: string): string {
  const socket = join(dir, "ferretdb.sock");
  if (Buffer.byteLength(socket) <= 100) return socket;
  return join(mkdtempSync(join(tmpdir(), "fleet-store-")), "ferretdb.sock");
}

export async function pingMongo(url: string, timeoutMs = 1_000): Promise<void> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs });
  try {
    await client.connect();
    await client.db("admin").command({ ping: 1 });
  } finally {
    await client.close();
  }
}

/** True when a Docker engine answers on its socket (or DOCKER_HOST is set, which testcontainers will try). */
export function dockerAnswers(dockerHost: string | undefined): Promise<boolean> {
  if (dockerHost) return Promise.resolve(true);
  const socketPath = "/var/run/docker.sock";
  if (!existsSync(socketPath)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export interface StartedContainer {
  url: string;
  containerId: string;
  stop(): Promise<void>;
}

/** A mongo:7 container through testcontainers (loaded only when a Docker engine answers). */
export async function startMongoContainer(): Promise<StartedContainer> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const container = await new GenericContainer("mongo:7")
    .withExposedPorts(27017)
    .withWaitStrategy(Wait.forLogMessage(/Waiting for connections/))
    .start();
  const url = `mongodb://${container.getHost()}:${container.getMappedPort(27017)}/`;
  await pingMongo(url, 10_000);
  return {
    url,
    containerId: container.getId(),
    stop: async () => {
      await container.stop();
    },
  };
}
