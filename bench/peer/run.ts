/**
 * One load run of the BullMQ peer (benchmark peer, not part of the fleet): starts its spawn and
 * watch worker processes, enqueues the sessions on `peer-requested`, waits for every document to
 * end, and returns per-session timestamps measured like the fleet's (Date.now() ms on this host;
 * idleAt from the simulated agent's journal). The database should be the run's own.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Queue } from "bullmq";
import { MongoClient, type Collection } from "mongodb";
import { FleetError } from "@fleet/shared";
import { logTail, ownLog, repoRoot, startProcess, type ManagedProcess } from "@fleet/devtools/infra";
import { readSimulatedState, simulatedIdleAt } from "@fleet/devtools/simulated";
import {
  JOB_OPTIONS,
  READY_LINE,
  REQUESTED_QUEUE,
  RUNNING_QUEUE,
  peerCollections,
  redisConnection,
  type PeerRole,
  type PeerSessionDoc,
  type RequestedJob,
} from "./queues.js";

export interface PeerLoadOptions {
  redisUrl: string;
  mongoUri: string;
  database: string;
  simDir: string;
  instancesPerStage: number;
  sessions: number;
  /** Sessions enqueued per second; undefined enqueues them all at once, in addBulk chunks. */
  ratePerSecond?: number;
  createMs: number;
  events: number;
  eventMs: number;
  /** Jobs each worker process runs at once (BullMQ Worker concurrency); default 64. */
  concurrency?: number;
  dataDir: string;
  progress?: (completed: number, total: number) => void;
  /** Gives up (and throws) when the sessions have not all ended by then; default 10 minutes. */
  timeoutMs?: number;
}

export interface PeerSessionTimes {
  id: string;
  requestedAt: number;
  claimedAt: number;
  runningAt: number;
  completedAt: number;
  idleAt: number;
}

export interface PeerLoadResult {
  sessions: number;
  /** Just before the first session was enqueued. */
  startedAt: number;
  /** When the completion poll (every 50 ms) saw the last session end. */
  endedAt: number;
  perSession: PeerSessionTimes[];
}

const ADD_CHUNK = 500;
const POLL_MS = 50;
const LOOKUPS = 32;
const READY_TIMEOUT_MS = 30_000;

export async function runPeerLoad(o: PeerLoadOptions): Promise<PeerLoadResult> {
  const script = join(repoRoot(), "bench", "dist", "peer", "worker.js");
  if (!existsSync(script)) throw new FleetError("infra", `${script} is missing: build first (npx tsc -b)`);
  mkdirSync(o.dataDir, { recursive: true });
  mkdirSync(o.simDir, { recursive: true });
  const mongo = await MongoClient.connect(o.mongoUri, { appName: "peer-load" });
  const db = mongo.db(o.database);
  const { sessions, logs } = peerCollections(db);
  await logs.createIndex({ sessionId: 1, seq: 1 }, { unique: true, name: "session_seq" });
  const connection = redisConnection(o.redisUrl, "producer");
  const requested = new Queue(REQUESTED_QUEUE, { connection });
  const running = new Queue(RUNNING_QUEUE, { connection });
  const workers: ManagedProcess[] = [];
  try {
    // A Redis kept from an earlier run starts empty.
    await Promise.all([requested.obliterate({ force: true }), running.obliterate({ force: true })]);
    const env = workerEnv(o, randomBytes(24).toString("hex"));
    for (const role of ["watch", "spawn"] as const) {
      for (let i = 0; i < o.instancesPerStage; i++) workers.push(startWorker(o.dataDir, role, i, script, env));
    }
    await Promise.all(workers.map((w) => waitReady(w)));

    const ids = Array.from({ length: o.sessions }, () => `peer-${randomUUID()}`);
    const startedAt = Date.now();
    const enqueued = enqueue(requested, ids, o.ratePerSecond);
    const endedAt = await waitEnded(sessions, ids, o, workers, enqueued, () => failedJobs([requested, running]));
    await enqueued;
    const perSession = await collect(sessions, o.simDir, ids);
    return { sessions: perSession.length, startedAt, endedAt, perSession };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await Promise.all([requested.obliterate({ force: true }), running.obliterate({ force: true })]).catch(
      () => undefined,
    );
    await Promise.all([requested.close(), running.close()]);
    await mongo.close();
  }
}

function workerEnv(o: PeerLoadOptions, secret: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    PEER_REDIS_URL: o.redisUrl,
    PEER_MONGODB_URI: o.mongoUri,
    PEER_DATABASE: o.database,
    PEER_CONCURRENCY: String(o.concurrency ?? 64),
    PEER_AGENT_SECRET: secret,
    FLEET_SIM_DIR: o.simDir,
    FLEET_SIM_CREATE_MS: String(o.createMs),
    FLEET_SIM_EVENTS: String(o.events),
    FLEET_SIM_EVENT_MS: String(o.eventMs),
  };
}

function startWorker(
  dataDir: string,
  role: PeerRole,
  index: number,
  script: string,
  env: NodeJS.ProcessEnv,
): ManagedProcess {
  return startProcess({
    name: `peer-${role}-${index}`,
    command: process.execPath,
    args: [script],
    env: { ...env, PEER_ROLE: role },
    logFile: join(dataDir, `peer-${role}-${index}.log`),
  });
}

async function waitReady(proc: ManagedProcess): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  while (!ownLog(proc).includes(READY_LINE)) {
    if (!proc.running)
      throw new FleetError(
        "infra",
        `${proc.name} exited during start-up; its log (${proc.logFile}) ends with:\n${logTail(proc.logFile)}`,
      );
    if (Date.now() > until)
      throw new FleetError("infra", `${proc.name} not ready in ${READY_TIMEOUT_MS} ms; see ${proc.logFile}`);
    await sleep(50);
  }
}

/**
 * Adds the jobs with addBulk: all at once in chunks, or paced so that by time t the first
 * t × rate sessions are in (a late tick catches up in one batch). Each job carries its requestedAt.
 */
async function enqueue(queue: Queue, ids: readonly string[], ratePerSecond: number | undefined): Promise<void> {
  const started = Date.now();
  for (let sent = 0; sent < ids.length; ) {
    const due =
      ratePerSecond === undefined
        ? ids.length
        : Math.min(ids.length, Math.floor(((Date.now() - started) * ratePerSecond) / 1000) + 1);
    if (due <= sent) {
      await sleep(Math.max(1, started + (sent * 1000) / (ratePerSecond ?? 1) - Date.now()));
      continue;
    }
    const batch = ids.slice(sent, Math.min(due, sent + ADD_CHUNK));
    const requestedAt = Date.now();
    await queue.addBulk(
      batch.map((sessionId) => {
        const data: RequestedJob = {
          sessionId,
          projectId: "bench",
          prompt: "simulated benchmark session",
          requestedAt,
        };
        return { name: "requested", data, opts: { ...JOB_OPTIONS, jobId: sessionId } };
      }),
    );
    sent += batch.length;
  }
}

/**
 * Returns when every session's document has ended (the way the harness times the fleet: when the
 * poll saw the last one), failing the run if a worker process dies. Each poll reads the documents
 * not yet seen ended by id, in request order, until one is still going: FerretDB 1.x serves only
 * a lone `_id` filter from its primary key and scans the whole collection for anything else, so a
 * count over a few thousand documents costs it more than the sessions' own writes.
 */
async function waitEnded(
  sessions: Collection<PeerSessionDoc>,
  ids: readonly string[],
  o: PeerLoadOptions,
  workers: readonly ManagedProcess[],
  enqueued: Promise<void>,
  failures: () => Promise<string>,
): Promise<number> {
  let enqueueError: unknown;
  enqueued.catch((err: unknown) => (enqueueError = err));
  const until = Date.now() + (o.timeoutMs ?? 600_000);
  let pending = [...ids];
  for (;;) {
    if (enqueueError) throw enqueueError;
    const dead = workers.find((w) => !w.running);
    if (dead)
      throw new FleetError(
        "infra",
        `${dead.name} exited during the run; its log (${dead.logFile}) ends with:\n${logTail(dead.logFile)}`,
      );
    // 1, 2, 4… lookups at a time while they all find ended sessions: a poll costs about one lookup
    // while the oldest session is still going, and a burst of endings is read in few round trips.
    for (let width = 1; pending.length > 0; width = Math.min(width * 2, LOOKUPS)) {
      const batch = pending.slice(0, width);
      const going = new Set<string>();
      await Promise.all(
        batch.map(async (id) => {
          const doc = await sessions.findOne({ _id: id }, { projection: { status: 1 } });
          if (doc?.status !== "completed" && doc?.status !== "failed") going.add(id);
        }),
      );
      pending = [...batch.filter((id) => going.has(id)), ...pending.slice(batch.length)];
      if (going.size > 0) break;
    }
    o.progress?.(ids.length - pending.length, ids.length);
    if (pending.length === 0) return Date.now();
    if (Date.now() > until) {
      const ended = ids.length - pending.length;
      throw new FleetError(
        "timeout",
        `peer run: ${ended} of ${ids.length} sessions ended in ${o.timeoutMs ?? 600_000} ms${await failures().catch(() => "")}`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** A few of the jobs BullMQ gave up on, for an error message. */
async function failedJobs(queues: readonly Queue[]): Promise<string> {
  const failed = (await Promise.all(queues.map((q) => q.getFailed(0, 2)))).flat();
  return failed.length
    ? `; failed jobs: ${failed.map((j) => `${j.queueName}/${j.id}: ${j.failedReason}`).join("; ")}`
    : "";
}

async function collect(
  sessions: Collection<PeerSessionDoc>,
  simDir: string,
  ids: readonly string[],
): Promise<PeerSessionTimes[]> {
  const docs = await sessions.find({}, { projection: { output: 0, prompt: 0 } }).toArray();
  const failed = docs.filter((d) => d.status !== "completed");
  if (failed.length > 0) {
    const sample = failed
      .slice(0, 3)
      .map((d) => `${d._id}: ${d.status} ${d.error?.code ?? ""} ${d.error?.message ?? ""}`.trim());
    throw new FleetError(
      "internal",
      `peer run: ${failed.length} of ${docs.length} sessions did not complete (${sample.join("; ")})`,
    );
  }
  const byId = new Map(docs.map((d) => [d._id, d]));
  const out: PeerSessionTimes[] = [];
  for (let i = 0; i < ids.length; i += 64) {
    const chunk = await Promise.all(
      ids.slice(i, i + 64).map(async (id) => {
        const d = byId.get(id);
        if (!d?.sandboxId || d.claimedAt === undefined || d.runningAt === undefined || d.completedAt === undefined) {
          throw new FleetError("internal", `peer run: session ${id} has no complete record`);
        }
        const state = await readSimulatedState(simDir, d.sandboxId);
        const idleAt = state ? simulatedIdleAt(state) : undefined;
        if (idleAt === undefined)
          throw new FleetError("internal", `peer run: sandbox ${d.sandboxId} of ${id} was never prompted`);
        return {
          id,
          requestedAt: d.requestedAt,
          claimedAt: d.claimedAt,
          runningAt: d.runningAt,
          completedAt: d.completedAt,
          idleAt,
        };
      }),
    );
    out.push(...chunk);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
