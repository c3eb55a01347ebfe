import { MongoClient } from "mongodb";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  FleetError,
  SessionConfig,
  SessionLogWriter,
  startLogArchiver,
  type LogArchiver,
  type LogArchiverDeps,
  type LogArchiverOptions,
  type LogLine,
} from "../shared/src/index.js";
import { useApi } from "./support/api-fixture.js";
import { eventually, logger } from "./support/fixtures.js";
import { openStream, rawRequest } from "./support/http.js";
import { expireOldestLines, logMessage } from "./support/jetstream.js";

const DONE = { response: "", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] };

describe("log lines live on the bus; the archiver stores them", () => {
  const api = useApi({ prefix: "lp" });
  const { namespace: ns, store, bus } = api;
  let mongo: MongoClient;

  beforeAll(async () => {
    mongo = await MongoClient.connect(inject("mongoUri"));
  });

  afterAll(async () => {
    await mongo.close();
  });

  const running = async (id: string): Promise<void> => {
    await store.create({ id, projectId: "p1", prompt: "x", config: SessionConfig.parse({}) });
    await store.transition(id, { from: ["pending"], to: "running", set: { startedAt: Date.now() } });
  };
  /** Lines `from`… written `per` at a time: each write is one message of the stream. */
  const write = async (id: string, n: number, from = 1, per = 10): Promise<void> => {
    const writer = await SessionLogWriter.open({ store, bus, logger }, id);
    for (let i = from; i < from + n; i += per)
      await writer.append(
        Array.from({ length: Math.min(per, from + n - i) }, (_, k) => ({
          kind: "tool" as const,
          line: `line ${i + k}`,
        })),
      );
  };
  const getLogs = async (id: string, query = ""): Promise<number[]> =>
    (
      JSON.parse(
        (await rawRequest(api.base, "GET", `/v1/sessions/${id}/logs${query}`, { headers: api.auth })).text,
      ) as {
        lines: LogLine[];
      }
    ).lines.map((l) => l.seq);
  /** Documents the store holds for a session: each line once means exactly one per seq. */
  const storedCopies = (id: string): Promise<number> =>
    mongo.db(ns).collection("session_logs").countDocuments({ sessionId: id });
  /** An archiver (batches of up to 100) that stores through `appendLogs`, which stands in for the store's. */
  const archiverOver = (
    appendLogs: LogArchiverDeps["store"]["appendLogs"],
    options: Partial<LogArchiverOptions> = {},
  ): LogArchiver =>
    startLogArchiver(
      { bus, logger, registry: new Registry(), store: { appendLogs } },
      { maxBatch: 100, heartbeatMs: 1_000, ...options },
    );
  const seqs = (n: number, from = 1): number[] => Array.from({ length: n }, (_, i) => from + i);
  const sseIds = (text: string): number[] => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));

  it("lines reach a live follower, the stream and GET /logs before the store has them; the archiver then stores each once", async () => {
    await running("live-1");
    const follower = openStream(api.base, "/v1/sessions/live-1/logs?follow=1", api.auth);
    expect(await follower.head).toBe(200);
    await write("live-1", 40);
    await follower.until('"seq":40');
    expect(sseIds(follower.text())).toEqual(seqs(40));
    // No archiver runs yet: the store has none of them, and the api still answers with all.
    expect(await store.lastLogSeq("live-1")).toBe(0);
    expect(await getLogs("live-1")).toEqual(seqs(40));
    expect(await getLogs("live-1", "?afterSeq=10&limit=5")).toEqual(seqs(5, 11));

    const archiver = startLogArchiver(
      { bus, store, logger, registry: new Registry() },
      { maxBatch: 16, heartbeatMs: 1_000 },
    );
    try {
      await eventually(async () => (await store.lastLogSeq("live-1")) === 40, 10_000, 50);
      expect(await storedCopies("live-1")).toBe(40);
      expect((await store.logs("live-1")).map((l) => l.line)).toEqual(seqs(40).map((i) => `line ${i}`));
      await store.transition("live-1", { from: ["running"], to: "completed", set: { output: DONE } });
      await follower.until("event: end");
      expect(follower.text()).toContain('"lastSeq":40');
      expect(sseIds(follower.text())).toEqual(seqs(40));
    } finally {
      follower.drop();
      await archiver.stop();
    }
  });

  it("serves lines older than the stream keeps from the store, the rest from the stream, gap-free", async () => {
    await running("aged-1");
    await write("aged-1", 12, 1, 4);
    // The first eight (two messages) were archived, then left the stream (what its max age does to old lines).
    await store.appendLogs(
      seqs(8).map((seq) => ({ sessionId: "aged-1", seq, at: Date.now(), kind: "tool" as const, line: `line ${seq}` })),
    );
    await expireOldestLines(ns, "aged-1", 1);
    expect((await bus.readLogs("aged-1")).map((l) => l.seq)).toEqual(seqs(4, 9));
    expect(await getLogs("aged-1")).toEqual(seqs(12));
    expect(await getLogs("aged-1", "?afterSeq=6&limit=4")).toEqual(seqs(4, 7));
    const follower = openStream(api.base, "/v1/sessions/aged-1/logs?follow=1", api.auth);
    try {
      await follower.until('"seq":12');
      expect(sseIds(follower.text())).toEqual(seqs(12));
    } finally {
      follower.drop();
    }
  });

  it("stores a batch handed over twice once: a write whose answer was lost, and a batch another instance took over", async () => {
    await write("twice-1", 30);
    // The write lands but its answer is lost: the archiver writes the same batch again.
    const calls: number[][] = [];
    let lose = true;
    const lossy = archiverOver(
      async (lines) => {
        const done = await store.appendLogs(lines);
        calls.push(lines.filter((l) => l.sessionId === "twice-1").map((l) => l.seq));
        if (lose && calls.at(-1)?.length) {
          lose = false;
          throw new FleetError("store_unavailable", "connection reset before the answer", { retryable: true });
        }
        return done;
      },
      { concurrency: 1 },
    );
    await eventually(
      async () => (await store.lastLogSeq("twice-1")) === 30 && (await bus.archiveBacklog()).pending === 0,
      10_000,
      50,
    );
    await lossy.stop();
    const withLines = calls.filter((c) => c.length > 0).map((c) => c.join(","));
    expect(withLines.filter((c) => c === withLines[0])).toHaveLength(2);
    expect(await storedCopies("twice-1")).toBe(30);

    // An instance writes a batch, then stops before its answer: the batch goes back and another takes it.
    let answer: () => void = () => undefined;
    const held = new Promise<void>((r) => (answer = r));
    const firstSaw: number[] = [];
    const first = archiverOver(async (lines) => {
      const done = await store.appendLogs(lines);
      firstSaw.push(...lines.filter((l) => l.sessionId === "over-1").map((l) => l.seq));
      await held;
      return done;
    });
    await write("over-1", 20);
    // Its batches (both messages, two writes under way) never answer. Waiting for both keeps a
    // message from being in flight to its fetch when it stops (one would come back only after the ack wait).
    await eventually(() => firstSaw.length === 20, 10_000, 50);
    await first.stop(200);
    const secondSaw: number[] = [];
    const second = archiverOver((lines) => {
      secondSaw.push(...lines.filter((l) => l.sessionId === "over-1").map((l) => l.seq));
      return store.appendLogs(lines);
    });
    try {
      await eventually(async () => secondSaw.length >= 20 && (await bus.archiveBacklog()).pending === 0, 10_000, 50);
      answer();
      expect([...new Set(secondSaw)].sort((a, b) => a - b)).toEqual(seqs(20));
      expect(await storedCopies("over-1")).toBe(20);
      expect((await store.logs("over-1")).map((l) => l.seq)).toEqual(seqs(20));
    } finally {
      answer();
      await second.stop();
    }
  });

  it("stores at most maxBatch lines per write, whole messages only (a larger message alone)", async () => {
    // Six messages of 10 lines, then one of 40: more than a batch.
    await write("sized-1", 60);
    await write("sized-1", 40, 61, 40);
    const calls: number[][] = [];
    const sized = archiverOver(
      async (lines) => {
        calls.push(lines.filter((l) => l.sessionId === "sized-1").map((l) => l.seq));
        return store.appendLogs(lines);
      },
      { maxBatch: 25, concurrency: 1 },
    );
    try {
      await eventually(async () => (await store.lastLogSeq("sized-1")) === 100, 10_000, 50);
    } finally {
      await sized.stop();
    }
    const mine = calls.filter((c) => c.length > 0);
    expect(mine.flat()).toEqual(seqs(100));
    for (const c of mine) {
      if (c.includes(61)) expect(c).toEqual(seqs(40, 61));
      else {
        expect(c.length).toBeLessThanOrEqual(25);
        expect(c.length % 10).toBe(0);
      }
    }
    expect(await storedCopies("sized-1")).toBe(100);
  });

  it("shows its backlog on /metrics: lines not stored yet and the oldest one's age, both 0 once caught up", async () => {
    for (let seq = 1; seq <= 5; seq++) await bus.publish("log", logMessage("backlog-1", seq, `b${seq}`));
    await new Promise((r) => setTimeout(r, 1_100));
    const waiting = await bus.archiveBacklog();
    expect(waiting.pending).toBe(5);
    expect(waiting.oldestAgeMs).toBeGreaterThanOrEqual(1_000);
    const registry = new Registry();
    const gauge = async (name: string): Promise<number> =>
      Number(new RegExp(`^${name} (\\S+)$`, "m").exec(await registry.metrics())?.[1] ?? Number.NaN);
    const archiver = startLogArchiver({ bus, store, logger, registry }, { maxBatch: 100, heartbeatMs: 1_000 });
    try {
      await eventually(async () => (await gauge("fleet_log_archive_pending")) === 0, 10_000, 100);
      await new Promise((r) => setTimeout(r, 1_100));
      expect(await gauge("fleet_log_archive_oldest_seconds")).toBe(0);
      expect(await gauge("fleet_log_lines_archived_total")).toBeGreaterThanOrEqual(5);
      expect(await storedCopies("backlog-1")).toBe(5);
    } finally {
      await archiver.stop();
    }
  });
});
