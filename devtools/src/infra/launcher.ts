import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { z } from "zod";
import { generateNatsUsers, natsAuthConfig, natsServers, provisionOutsideFeed, type NatsUser } from "@fleet/shared/bus";
import { FleetError } from "@fleet/shared/errors";
import { defaultToolsDir } from "./paths.js";
import { isAlive, stopPid, type ManagedProcess } from "./process.js";
import { startNatsCluster } from "./nats-cluster.js";
import { dockerAnswers, pingMongo, startFerretDb, startMongoContainer, startNatsServer } from "./servers.js";
import { ensureFerretDb, ensureNatsServer, type Progress } from "./tools.js";

export interface InfraOptions {
  /** Where server data and logs go. */
  dataDir: string;
  /** Use this NATS server or cluster instead of starting one. */
  natsUrl?: string | undefined;
  /** Use this MongoDB instead of starting one. */
  mongoUri?: string | undefined;
  /** Passed through to decide whether testcontainers may be used. */
  dockerHost?: string | undefined;
  /** "off" skips the Docker probe (FerretDB is used when no MONGODB_URI is given). */
  docker?: "auto" | "off";
  toolsDir?: string;
  /** Servers outlive this process (for `./fleet infra up`). */
  persistent?: boolean;
  /** A local nats-server requires per-role users (see shared/src/bus/nats-auth.ts); ignored for a given NATS_URL. */
  natsAuth?: boolean;
  /** Nodes of the local nats-server cluster (`--cluster 3`); 1 or unset: a lone server. */
  natsCluster?: number | undefined;
  /**
   * JetStream's sync_interval on every local node: unset keeps nats-server's lazy default (fsync
   * every 2 minutes), `always` fsyncs each write before acknowledging it (docs/guarantees.md).
   */
  natsSyncInterval?: string | undefined;
  /** Serve the local servers' own counters on these loopback ports (benchmarks read them). */
  monitor?: { nats: number; store: number };
  progress?: Progress;
}

export type StoreKind = "external" | "container" | "ferretdb";

export interface Infra {
  natsUrl: string;
  mongoUri: string;
  nats: "external" | "local";
  store: StoreKind;
  dataDir: string;
  processes: Array<{ name: string; pid: number; logFile: string }>;
  containerId?: string;
  /** Per-role NATS users when the local server requires them. */
  natsUsers?: NatsUser[];
  /** Stops what this call started (SIGTERM, then SIGKILL after the bound). Idempotent. */
  stop(): Promise<void>;
}

async function startStore(opts: InfraOptions, toolsDir: string, progress: Progress) {
  if (opts.mongoUri) return { url: opts.mongoUri, kind: "external" as const };
  if (opts.docker !== "off" && (await dockerAnswers(opts.dockerHost))) {
    progress("starting a mongo:7 container (Docker answered)");
    const c = await startMongoContainer();
    return { url: c.url, kind: "container" as const, container: c };
  }
  const binary = await ensureFerretDb(toolsDir, progress);
  const s = await startFerretDb({
    binary,
    dataDir: opts.dataDir,
    persistent: opts.persistent ?? false,
    ...(opts.monitor ? { monitorPort: opts.monitor.store } : {}),
  });
  return { url: s.url, kind: "ferretdb" as const, process: s.process };
}

async function startBus(opts: InfraOptions, toolsDir: string, progress: Progress) {
  if (opts.natsUrl) return { url: opts.natsUrl, kind: "external" as const, processes: [] };
  const binary = await ensureNatsServer(toolsDir, progress);
  const users = opts.natsAuth ? generateNatsUsers() : undefined;
  const probe = users?.find((u) => u.role === "spawner");
  const auth =
    users && probe ? { config: natsAuthConfig(users), probe: { user: probe.user, pass: probe.password } } : undefined;
  const size = opts.natsCluster ?? 1;
  const common = {
    binary,
    dataDir: opts.dataDir,
    persistent: opts.persistent ?? false,
    syncInterval: opts.natsSyncInterval,
    ...(opts.monitor ? { monitorPort: opts.monitor.nats } : {}),
    ...(auth ? { auth } : {}),
  };
  const started =
    size > 1
      ? await startNatsCluster({ ...common, size }).then((c) => ({
          url: c.url,
          processes: c.nodes.map((n) => n.process),
        }))
      : await startNatsServer(common).then((s) => ({ url: s.url, processes: [s.process] }));
  if (auth) {
    // Outside systems keep their consumers on the feed in their own account; the fleet makes it,
    // replicated like the fleet's own streams.
    try {
      const nc = await connect({ servers: natsServers(started.url), ...auth.probe });
      await provisionOutsideFeed(nc, "", size >= 3 ? 3 : 1).finally(() => nc.close());
    } catch (err) {
      await Promise.all(started.processes.map((p) => p.stop()));
      throw err;
    }
  }
  return { url: started.url, kind: "local" as const, processes: started.processes, users };
}

/** Starts (or adopts) NATS with JetStream and a MongoDB-protocol store, ready to use. */
export async function startInfra(opts: InfraOptions): Promise<Infra> {
  const progress = opts.progress ?? (() => {});
  const toolsDir = opts.toolsDir ?? defaultToolsDir();
  mkdirSync(opts.dataDir, { recursive: true });
  mkdirSync(toolsDir, { recursive: true });
  const [bus, store] = await Promise.allSettled([
    startBus(opts, toolsDir, progress),
    startStore(opts, toolsDir, progress),
  ]);
  const started: ManagedProcess[] = [];
  if (bus.status === "fulfilled") started.push(...bus.value.processes);
  if (store.status === "fulfilled" && "process" in store.value && store.value.process)
    started.push(store.value.process);
  const container = store.status === "fulfilled" && "container" in store.value ? store.value.container : undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(started.map((p) => p.stop()));
      await container?.stop();
    })();
    return stopping;
  };
  if (bus.status === "rejected" || store.status === "rejected") {
    await stop();
    throw bus.status === "rejected" ? bus.reason : (store as PromiseRejectedResult).reason;
  }
  return {
    natsUrl: bus.value.url,
    mongoUri: store.value.url,
    nats: bus.value.kind,
    store: store.value.kind,
    dataDir: opts.dataDir,
    processes: started.map((p) => ({ name: p.name, pid: p.pid, logFile: p.logFile })),
    ...(container ? { containerId: container.containerId } : {}),
    ...("users" in bus.value && bus.value.users ? { natsUsers: bus.value.users } : {}),
    stop,
  };
}

const InfraState = z.object({
  natsUrl: z.string(),
  mongoUri: z.string(),
  nats: z.enum(["external", "local"]),
  store: z.enum(["external", "container", "ferretdb"]),
  dataDir: z.string(),
  processes: z.array(z.object({ name: z.string(), pid: z.number().int(), logFile: z.string() })),
  containerId: z.string().optional(),
  natsUsers: z
    .array(
      z.object({
        role: z.enum(["api", "spawner", "poller", "watchdog", "gateway", "outside"]),
        user: z.string(),
        password: z.string(),
      }),
    )
    .optional(),
  startedAt: z.number(),
});
export type InfraState = z.infer<typeof InfraState>;

function stateFile(dir: string): string {
  return join(dir, "infra.json");
}

export function writeInfraState(dir: string, infra: Infra): InfraState {
  const { stop: _stop, ...rest } = infra;
  const state: InfraState = { ...rest, startedAt: Date.now() };
  mkdirSync(dir, { recursive: true });
  // Owner-only: it holds the NATS users' passwords.
  writeFileSync(stateFile(dir), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  return state;
}

export function readInfraState(dir: string): InfraState | undefined {
  const file = stateFile(dir);
  if (!existsSync(file)) return undefined;
  const parsed = InfraState.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success) throw new FleetError("infra", `${file} is not a valid infra state file; delete it and retry`);
  return parsed.data;
}

export interface InfraHealth {
  state: InfraState;
  processes: Array<{ name: string; pid: number; alive: boolean }>;
  natsReady: boolean;
  storeReady: boolean;
}

export async function infraStatus(dir: string): Promise<InfraHealth | undefined> {
  const state = readInfraState(dir);
  if (!state) return undefined;
  const { connect } = await import("@nats-io/transport-node");
  const probe = state.natsUsers?.find((u) => u.role === "spawner");
  const natsReady = await connect({
    servers: natsServers(state.natsUrl),
    reconnect: false,
    timeout: 1_000,
    ...(probe ? { user: probe.user, pass: probe.password } : {}),
  }).then(
    (nc) => nc.close().then(() => true),
    () => false,
  );
  const storeReady = await pingMongo(state.mongoUri).then(
    () => true,
    () => false,
  );
  return {
    state,
    processes: state.processes.map((p) => ({ name: p.name, pid: p.pid, alive: isAlive(p.pid) })),
    natsReady,
    storeReady,
  };
}

/** Stops what `./fleet infra up` started and forgets it. */
export async function stopInfraFromState(dir: string): Promise<InfraState | undefined> {
  const state = readInfraState(dir);
  if (!state) return undefined;
  await Promise.all(state.processes.map((p) => stopPid(p.pid)));
  if (state.containerId) {
    await new Promise<void>((resolve) =>
      execFile("docker", ["rm", "-f", state.containerId as string], () => resolve()),
    );
  }
  rmSync(stateFile(dir), { force: true });
  return state;
}
