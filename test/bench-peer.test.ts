import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "bullmq";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  REQUESTED_QUEUE,
  RUNNING_QUEUE,
  peerCollections,
  redisConnection,
  type PeerLogDoc,
} from "../bench/peer/queues.js";
import { startRedis, type StartedRedis } from "../bench/peer/redis.js";
import { runPeerLoad } from "../bench/peer/run.js";
import { SimulatedSandboxProvider } from "../devtools/src/simulated/index.js";
import { logger, uniqueNamespace } from "./support/fixtures.js";

const SESSIONS_N = 50;
const EVENTS = 3;
// Long enough that the prompt is recorded as running before the agent goes idle, even on a busy machine.
const EVENT_MS = 100;

/**
 * The BullMQ peer of the benchmarks on a real redis-server (Debian's package) and the run's store:
 * sessions go request -> spawn -> watch -> complete through its own worker processes. No skip: a
 * machine without redis-server (and no way to install it) fails here, saying so.
 */
describe("BullMQ benchmark peer", () => {
  let dir: string;
  let redis: StartedRedis | undefined;
  let mongo: MongoClient;
  const database = uniqueNamespace("peer");

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "fleet-peer-"));
    mongo = await MongoClient.connect(inject("mongoUri"));
    redis = await startRedis(join(dir, "redis"));
  }, 300_000);

  afterAll(async () => {
    await redis?.stop();
    await mongo
      ?.db(database)
      .dropDatabase()
      .catch(() => undefined);
    await mongo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`completes ${SESSIONS_N} sessions with their log lines and ordered timestamps, leaving no sandbox alive`, async () => {
    const simDir = join(dir, "sim");
    const r = await runPeerLoad({
      redisUrl: (redis as StartedRedis).url,
      mongoUri: inject("mongoUri"),
      database,
      simDir,
      dataDir: join(dir, "run"),
      instancesPerStage: 1,
      sessions: SESSIONS_N,
      createMs: 0,
      events: EVENTS,
      eventMs: EVENT_MS,
    });
    const seconds = (r.endedAt - r.startedAt) / 1000;
    console.log(
      `[bench-peer] ${r.sessions} sessions in ${seconds.toFixed(2)} s: ${(r.sessions / seconds).toFixed(1)} sessions/s (1 instance per stage)`,
    );

    expect(r.sessions).toBe(SESSIONS_N);
    for (const s of r.perSession) {
      expect(s.requestedAt).toBeLessThanOrEqual(s.claimedAt);
      expect(s.claimedAt).toBeLessThanOrEqual(s.runningAt);
      expect(s.runningAt).toBeLessThanOrEqual(s.idleAt);
      expect(s.idleAt).toBeLessThanOrEqual(s.completedAt);
      expect(s.completedAt).toBeLessThanOrEqual(r.endedAt);
    }

    const db = mongo.db(database);
    const { sessions, logs } = peerCollections(db);
    const docs = await sessions.find({}).toArray();
    expect(docs).toHaveLength(SESSIONS_N);
    for (const d of docs) {
      expect(d.status).toBe("completed");
      expect(d.attempt).toBe(1);
      expect(d.output?.toolCalls).toHaveLength(EVENTS);
      expect(d.output?.response).toMatch(/Simulated run finished/);
    }

    // Each tool part is two lines (started, done), numbered 1..2N without gaps or repeats.
    const lines = await logs.find({}).sort({ sessionId: 1, seq: 1 }).toArray();
    expect(lines).toHaveLength(SESSIONS_N * EVENTS * 2);
    const bySession = new Map<string, PeerLogDoc[]>();
    for (const l of lines) bySession.set(l.sessionId, [...(bySession.get(l.sessionId) ?? []), l]);
    expect(bySession.size).toBe(SESSIONS_N);
    for (const ls of bySession.values()) {
      expect(ls.map((l) => l.seq)).toEqual(Array.from({ length: EVENTS * 2 }, (_, i) => i + 1));
      expect(ls.every((l) => l.kind === "tool" && typeof l.at === "number")).toBe(true);
      expect(ls.at(-1)?.line).toBe(`✓ Bash echo simulated step ${EVENTS}`);
    }

    expect(await new SimulatedSandboxProvider({ dir: simDir }, logger).list()).toEqual([]);
    // The run leaves its queues empty.
    for (const name of [REQUESTED_QUEUE, RUNNING_QUEUE]) {
      const q = new Queue(name, { connection: redisConnection((redis as StartedRedis).url, "producer") });
      try {
        expect(await q.count()).toBe(0);
      } finally {
        await q.close();
      }
    }
  }, 180_000);
});
