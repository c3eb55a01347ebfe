import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { MongoClient, type Db } from "mongodb";
import { SCHEMA_VERSION, STREAMS, streamName, subjectFor, type StreamKey } from "@fleet/shared";
import { natsServers } from "@fleet/shared/bus";
import {
  freePort,
  startInfra,
  startService,
  type FleetProcessOptions,
  type Infra,
  type RunningService,
  type ServiceName,
} from "@fleet/devtools/infra";
import { readAllSimulatedStates, simulatedIdleAt } from "@fleet/devtools/simulated";
import { sleep } from "./util.js";

/** The real servers for one run, with their own counters served for the efficiency figures. */
export interface BenchInfra {
  infra: Infra;
  dataDir: string;
  nc: NatsConnection;
  js: JetStreamClient;
  mongo: MongoClient;
  monitor: { nats: number; store: number };
  stop(): Promise<void>;
}

/**
 * `cluster`: that many nats-server nodes on loopback (streams with 3 replicas, the fleet's default on
 * a cluster); the bus counters then come from the first node only.
 */
export async function startBenchInfra(
  dataDir: string,
  log: (line: string) => void,
  options: { cluster?: number } = {},
): Promise<BenchInfra> {
  mkdirSync(dataDir, { recursive: true });
  const monitor = { nats: await freePort(), store: await freePort() };
  const infra = await startInfra({
    dataDir: join(dataDir, "infra"),
    docker: "off",
    monitor,
    progress: log,
    ...(options.cluster ? { natsCluster: options.cluster } : {}),
  });
  const nc = await connect({ servers: natsServers(infra.natsUrl), name: "bench" });
  const mongo = await MongoClient.connect(infra.mongoUri, { maxPoolSize: 32 });
  return {
    infra,
    dataDir,
    nc,
    js: jetstream(nc),
    mongo,
    monitor,
    async stop() {
      await nc.close().catch(() => undefined);
      await mongo.close().catch(() => undefined);
      await infra.stop();
    },
  };
}

const HANDSHAKE = new Set([
  "hello",
  "isMaster",
  "ismaster",
  "ping",
  "buildInfo",
  "buildinfo",
  "endSessions",
  "unknown",
  "getParameter",
  "saslStart",
  "saslContinue",
]);

/**
 * The servers' own operation counts: messages nats-server received from clients (publishes, acks,
 * pulls, API calls) and data commands FerretDB served (find, insert, update, delete, findAndModify,
 * aggregate, count, getMore, createIndexes…; connection handshakes excluded).
 */
export async function serverCounters(
  b: BenchInfra,
): Promise<{ busMsgs: number; storeOps: number; storeOpsByCommand: Record<string, number> }> {
  const varz = (await (await fetch(`http://127.0.0.1:${b.monitor.nats}/varz`)).json()) as { in_msgs: number };
  const metrics = await (await fetch(`http://127.0.0.1:${b.monitor.store}/debug/metrics`)).text();
  let storeOps = 0;
  const storeOpsByCommand: Record<string, number> = {};
  for (const m of metrics.matchAll(/^ferretdb_client_requests_total\{command="([^"]+)",opcode="[^"]+"\} (\d+)/gm)) {
    const command = m[1] as string;
    if (HANDSHAKE.has(command)) continue;
    storeOps += Number(m[2]);
    storeOpsByCommand[command] = (storeOpsByCommand[command] ?? 0) + Number(m[2]);
  }
  return { busMsgs: varz.in_msgs, storeOps, storeOpsByCommand };
}

export interface FleetSpec {
  namespace: string;
  spawners: number;
  pollers: number;
  watchdog?: boolean;
  api?: boolean;
  /** Environment for every service (simulated settings, caps). */
  env: Record<string, string>;
  /** Extra node flags for the pollers (a heap snapshot on a signal, a CPU profile). */
  pollerNodeArgs?: string[];
  /** Extra node flags for every service (a CPU profile with --profile). */
  nodeArgs?: string[];
  /**
   * The NATS_URL of one instance (default: every server of the infra). On a cluster, a list of one
   * node pins that instance to it, so instances can be spread over the nodes.
   */
  natsUrlOf?: (name: ServiceName, index: number) => string;
}

export interface BenchFleet {
  namespace: string;
  db: Db;
  simDir: string;
  services: RunningService[];
  pids(name: ServiceName): number[];
  /** Publishes a session.requested straight on the bus, as an outside system does. */
  request(sessionId: string, extra?: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

/** The fleet's services as separate processes on the simulated provider, in a namespace of their own. */
/**
 * The options of services that run real agents (local sandboxes, OpenCode) on the given model, in a
 * namespace and database of their own: B6 and B10 start their services with these.
 */
export function realAgentServices(
  b: BenchInfra,
  namespace: string,
  modelUrl: string,
  env: Record<string, string> = {},
): FleetProcessOptions {
  return {
    natsUrl: b.infra.natsUrl,
    mongoUri: b.infra.mongoUri,
    dataDir: join(b.dataDir, namespace),
    agentSecret: randomBytes(32).toString("base64url"),
    modelUrl,
    namespace,
    database: namespace,
    readyTimeoutMs: 60_000,
    env: { LOG_LEVEL: "warn", POLLER_STATUS_INTERVAL_MS: "500", FLEET_SHUTDOWN_MS: "2000", ...env },
  };
}

export async function startBenchFleet(b: BenchInfra, spec: FleetSpec): Promise<BenchFleet> {
  const dir = join(b.dataDir, spec.namespace);
  const simDir = join(dir, "sim");
  mkdirSync(simDir, { recursive: true });
  const common = {
    natsUrl: b.infra.natsUrl,
    mongoUri: b.infra.mongoUri,
    dataDir: dir,
    agentSecret: randomBytes(32).toString("base64url"),
    // The simulated agent calls no model; the spawner's config still names one.
    modelUrl: "http://127.0.0.1:9/v1",
    namespace: spec.namespace,
    database: spec.namespace,
    readyTimeoutMs: 60_000,
    env: {
      SANDBOX_PROVIDER: "simulated",
      FLEET_SIM_DIR: simDir,
      FLEET_MAX_SANDBOXES: "0",
      LOG_LEVEL: "warn",
      FLEET_SHUTDOWN_MS: "2000",
      ...spec.env,
    },
  };
  const order: ServiceName[] = [
    ...(spec.api ? (["api"] as const) : []),
    ...Array.from({ length: spec.spawners }, () => "spawner" as const),
    ...Array.from({ length: spec.pollers }, () => "poller" as const),
    ...(spec.watchdog ? (["watchdog"] as const) : []),
  ];
  const counts = new Map<ServiceName, number>();
  const services = await Promise.all(
    order.map((name) => {
      const i = counts.get(name) ?? 0;
      counts.set(name, i + 1);
      const own = { ...common, natsUrl: spec.natsUrlOf?.(name, i) ?? common.natsUrl };
      return startService(
        name,
        name === "poller" && spec.pollerNodeArgs
          ? { ...own, nodeArgs: spec.pollerNodeArgs }
          : spec.nodeArgs
            ? { ...own, nodeArgs: spec.nodeArgs }
            : own,
        i,
      );
    }),
  );
  const db = b.mongo.db(spec.namespace);
  return {
    namespace: spec.namespace,
    db,
    simDir,
    services,
    pids: (name) => services.filter((s) => s.name === name).map((s) => s.process.pid),
    async request(sessionId, extra = {}) {
      const body = {
        v: SCHEMA_VERSION,
        sessionId,
        projectId: "bench",
        prompt: "benchmark",
        requestedAt: Date.now(),
        ...extra,
      };
      await b.js.publish(subjectFor(spec.namespace, "requested"), JSON.stringify(body), {
        msgID: `requested:${sessionId}`,
      });
    },
    async stop() {
      await Promise.all(services.map((s) => s.process.stop()));
      await db.dropDatabase().catch(() => undefined);
      const jsm = await b.js.jetstreamManager();
      for (const key of Object.keys(STREAMS) as StreamKey[])
        await jsm.streams.delete(streamName(spec.namespace, key)).catch(() => undefined);
    },
  };
}

/** Runs `run` on a fleet started for it, and stops the fleet (its namespace's streams and database go too) whatever happens. */
export async function withBenchFleet<T>(
  b: BenchInfra,
  spec: FleetSpec,
  run: (fleet: BenchFleet) => Promise<T>,
): Promise<T> {
  const fleet = await startBenchFleet(b, spec);
  try {
    return await run(fleet);
  } finally {
    await fleet.stop();
  }
}

/**
 * Waits until every given session ended (completed, failed or cancelled); returns when the last one
 * was seen ended. Sessions are read by id, from the oldest one not seen ended, so a poll costs about
 * one key lookup (a count over the collection would be a scan on FerretDB and slow the fleet down).
 */
/** Store reads the harness itself made while waiting (B1 takes them out of the fleet's count). */
export const harnessReads = { count: 0 };

export async function waitEnded(
  fleet: BenchFleet,
  ids: readonly string[],
  timeoutMs: number,
  onProgress?: (ended: number) => void,
): Promise<number> {
  const end = Date.now() + timeoutMs;
  const sessions = fleet.db.collection<{ _id: string; status: string }>("sessions");
  let shown = Date.now();
  let i = 0;
  while (i < ids.length) {
    const doc = await sessions.findOne({ _id: ids[i] as string }, { projection: { status: 1 } });
    harnessReads.count++;
    if (doc && ["completed", "failed", "cancelled"].includes(doc.status)) {
      i++;
      continue;
    }
    if (Date.now() - shown >= 2_000) {
      onProgress?.(i);
      shown = Date.now();
    }
    if (Date.now() > end) throw new Error(`only ${i} of ${ids.length} sessions ended within ${timeoutMs} ms`);
    await sleep(20);
  }
  return Date.now();
}

export interface SessionTimes {
  id: string;
  status: string;
  requestedAt: number;
  claimedAt: number;
  runningAt: number;
  idleAt: number;
  promptedAt: number;
  endedAt: number;
}

/** Each session's milestones: from its document (claimedAt: its current attempt's claim) and its simulated sandbox. */
export async function sessionTimes(
  fleet: BenchFleet,
  requestedAt: ReadonlyMap<string, number>,
): Promise<SessionTimes[]> {
  type Doc = {
    _id: string;
    status: string;
    claimedAt?: number;
    startedAt?: number;
    completedAt?: number;
    sandbox?: { id: string };
  };
  const docs = await fleet.db
    .collection<Doc>("sessions")
    .find({}, { projection: { status: 1, claimedAt: 1, startedAt: 1, completedAt: 1, sandbox: 1 } })
    .toArray();
  const { states } = await readAllSimulatedStates(fleet.simDir);
  const sims = new Map(states.map((s) => [s.id, s]));
  const out: SessionTimes[] = [];
  for (const d of docs) {
    const sim = d.sandbox ? sims.get(d.sandbox.id) : undefined;
    const idleAt = sim ? simulatedIdleAt(sim) : undefined;
    const req = requestedAt.get(d._id);
    if (
      req === undefined ||
      !sim ||
      idleAt === undefined ||
      sim.promptedAt === undefined ||
      d.startedAt === undefined ||
      d.completedAt === undefined
    )
      continue;
    out.push({
      id: d._id,
      status: d.status,
      requestedAt: req,
      claimedAt: d.claimedAt ?? Number.NaN,
      runningAt: d.startedAt,
      idleAt,
      promptedAt: sim.promptedAt,
      endedAt: d.completedAt,
    });
  }
  return out;
}
