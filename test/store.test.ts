import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { FleetError, SessionConfig, type LogLine, type MongoSessionStore } from "../shared/src/index.js";
import { cleanup, openStore, uniqueNamespace } from "./support/fixtures.js";

const config = SessionConfig.parse({});

describe(`session store on a real ${inject("storeKind")}`, () => {
  let db: string;
  let store: MongoSessionStore;

  beforeAll(async () => {
    db = uniqueNamespace("store");
    store = await openStore(db);
  });

  afterAll(async () => {
    await store.close();
    await cleanup(db, db);
  });

  it("can be initialised again by every instance that starts", async () => {
    await store.init();
    const second = await openStore(db);
    await Promise.all([second.init(), store.init()]);
    await second.ping();
    await second.close();
  });

  it("creates idempotently on the session id and fills the defaults", async () => {
    const a = await store.create({ id: "s-create", projectId: "p", prompt: "x", config }, 1_000);
    const b = await store.create({ id: "s-create", projectId: "other", prompt: "y", config }, 2_000);
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.session).toEqual(a.session);
    expect(a.session).toMatchObject({ status: "pending", phase: "queued", attempt: 0, createdAt: 1_000, deadlineAt: 1_000 + config.timeoutMs });
  });

  it("lets concurrent creators of one id agree on one document", async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.create({ id: "s-race-create", projectId: "p", prompt: `p${i}`, config })),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.session.prompt)).size).toBe(1);
  });

  it("of racing compare-and-set transitions exactly one wins", async () => {
    await store.create({ id: "s-cas", projectId: "p", prompt: "x", config });
    const outcomes = await Promise.all([
      store.transition("s-cas", { from: ["pending"], to: "running", set: { phase: "running" } }),
      store.transition("s-cas", { from: ["pending"], to: "failed", set: { error: { code: "x", message: "y" } } }),
      store.transition("s-cas", { from: ["pending"], to: "cancelled" }),
      store.transition("s-cas", { from: ["pending"], to: "running" }),
    ]);
    const winners = outcomes.filter((o) => o !== null);
    expect(winners).toHaveLength(1);
    const stored = await store.get("s-cas");
    expect(stored?.status).toBe(winners[0]?.status);
  });

  it("has exactly one winner in every one of many racing rounds, across statuses", async () => {
    const rounds = 25;
    for (let i = 0; i < rounds; i++) await store.create({ id: `race-${i}`, projectId: "p", prompt: "x", config });
    await Promise.all(
      Array.from({ length: rounds }, async (_, i) => {
        const id = `race-${i}`;
        const results = await Promise.all([
          store.transition(id, { from: ["pending"], to: "running" }),
          store.transition(id, { from: ["pending"], to: "running" }),
          store.transition(id, { from: ["pending"], to: "failed" }),
          store.transition(id, { from: ["pending", "running"], to: "cancelled" }),
        ]);
        const winners = results.filter((r) => r !== null);
        const running = winners.filter((w) => w.status === "running");
        const ended = winners.filter((w) => w.status !== "running");
        // Pending is left once (to running or to an end); running is left at most once.
        expect(running.length).toBeLessThanOrEqual(1);
        expect(ended.length).toBeLessThanOrEqual(1);
        expect(winners.length).toBeGreaterThanOrEqual(1);
        if (ended[0]?.status === "failed") expect(running).toHaveLength(0);
        const stored = await store.get(id);
        expect(stored?.status).toBe(ended[0]?.status ?? "running");
      }),
    );
  });

  it("never lets a racing stale write bring a terminal session back", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `stale-${i}`);
    for (const id of ids) {
      await store.create({ id, projectId: "p", prompt: "x", config });
      await store.transition(id, { from: ["pending"], to: "running" });
    }
    const output = { response: "done", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] };
    await Promise.all(
      ids.flatMap((id) => [
        store.patch(id, { phase: "collecting" }),
        store.transition(id, { from: ["running"], to: "completed", set: { output } }),
        store.patch(id, { agentSessionId: "a" }),
      ]),
    );
    for (const id of ids) {
      const s = await store.get(id);
      expect(s?.status).toBe("completed");
      expect(s?.output?.response).toBe("done");
      expect(await store.transition(id, { from: ["pending", "running"], to: "failed" })).toBeNull();
    }
  });

  it("keeps terminal states absorbing", async () => {
    await store.create({ id: "s-term", projectId: "p", prompt: "x", config });
    const done = await store.transition("s-term", { from: ["pending", "running"], to: "completed", set: { output: { response: "r", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] } } });
    expect(done?.completedAt).toBeTypeOf("number");
    // Every active-status transition now loses.
    expect(await store.transition("s-term", { from: ["pending", "running"], to: "failed" })).toBeNull();
    expect(await store.transition("s-term", { from: ["running"], to: "cancelled" })).toBeNull();
    // Asking to leave a terminal status is refused outright.
    await expect(store.transition("s-term", { from: ["completed"], to: "running" })).rejects.toBeInstanceOf(FleetError);
    // Patches do not touch a terminal document unless asked for explicitly.
    expect(await store.patch("s-term", { phase: "running" })).toBe(false);
    expect(await store.patch("s-term", { queuePosition: 0 }, ["completed"])).toBe(true);
    await expect(store.patch("s-term", { status: "running" } as never)).rejects.toBeInstanceOf(FleetError);
    const stored = await store.get("s-term");
    expect(stored?.status).toBe("completed");
    expect(stored?.output?.response).toBe("r");
  });

  it("stores a replayed log line once and reads lines in order after a sequence", async () => {
    const line = (seq: number): LogLine => ({ sessionId: "s-log", seq, at: 1_000 + seq, kind: "tool", line: `line ${seq}` });
    expect(await store.appendLogs([line(1), line(2), line(3)])).toEqual({ inserted: 3 });
    // A poller that crashed after storing 2 and 3 replays 2..5: only 4 and 5 are new.
    expect(await store.appendLogs([line(2), line(4), line(3), line(5)])).toEqual({ inserted: 2 });
    expect(await store.appendLogs([line(5)])).toEqual({ inserted: 0 });
    expect(await store.appendLogs([])).toEqual({ inserted: 0 });
    const all = await store.logs("s-log");
    expect(all.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await store.logs("s-log", { afterSeq: 3 })).map((l) => l.line)).toEqual(["line 4", "line 5"]);
    expect(await store.lastLogSeq("s-log")).toBe(5);
    expect(await store.lastLogSeq("nobody")).toBe(0);
  });

  it("reads any run of log lines whole and in order, short ones by key and long ones by query", async () => {
    const line = (sessionId: string, seq: number): LogLine => ({ sessionId, seq, at: seq, kind: "system", line: `${sessionId} ${seq}` });
    // Lengths around the key-read rounds (1, then 3, then 12 lines) and past them (the query).
    for (const n of [0, 1, 2, 4, 5, 16, 17, 40]) {
      const id = `s-run-${n}`;
      await store.appendLogs(Array.from({ length: n }, (_, i) => line(id, i + 1)));
      expect((await store.logs(id)).map((l) => l.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      for (const afterSeq of [1, 3, 15]) {
        const expected = Array.from({ length: Math.max(0, n - afterSeq) }, (_, i) => afterSeq + 1 + i);
        expect((await store.logs(id, { afterSeq })).map((l) => l.seq)).toEqual(expected);
        expect((await store.logs(id, { afterSeq, limit: 2 })).map((l) => l.seq)).toEqual(expected.slice(0, 2));
        expect((await store.logs(id, { afterSeq, limit: 20 })).map((l) => l.seq)).toEqual(expected.slice(0, 20));
      }
    }
    // Another session's lines never leak in, whichever way they are read.
    expect((await store.logs("s-run-40", { afterSeq: 39 })).map((l) => l.line)).toEqual(["s-run-40 40"]);
  });

  it("paginates a project's sessions newest first, stable under inserts", async () => {
    for (let i = 0; i < 7; i++) {
      // Two sessions share each timestamp, so the id must break ties.
      await store.create({ id: `pg-${i}`, projectId: "paged", prompt: "x", config, createdAt: 10_000 + Math.floor(i / 2) }, 0);
    }
    const first = await store.listByProject("paged", { limit: 3 });
    expect(first.items.map((s) => s.id)).toEqual(["pg-6", "pg-5", "pg-4"]);
    // New sessions arriving between pages must not shift or repeat what follows.
    await store.create({ id: "pg-new", projectId: "paged", prompt: "x", config, createdAt: 20_000 });
    const second = await store.listByProject("paged", { limit: 3, cursor: first.nextCursor as string });
    const third = await store.listByProject("paged", { limit: 3, cursor: second.nextCursor as string });
    expect(second.items.map((s) => s.id)).toEqual(["pg-3", "pg-2", "pg-1"]);
    expect(third.items.map((s) => s.id)).toEqual(["pg-0"]);
    expect(third.nextCursor).toBeUndefined();
    await expect(store.listByProject("paged", { cursor: "garbage" })).rejects.toMatchObject({ code: "bad_input" });
  });

  it("finds the active session of a card and sessions past their deadline", async () => {
    await store.create({ id: "card-old", projectId: "p", cardId: "c1", prompt: "x", config, createdAt: 1 });
    await store.create({ id: "card-new", projectId: "p", cardId: "c1", prompt: "x", config, createdAt: 2 });
    expect((await store.activeForCard("c1"))?.id).toBe("card-new");
    await store.transition("card-new", { from: ["pending"], to: "cancelled" });
    expect((await store.activeForCard("c1"))?.id).toBe("card-old");
    expect(await store.activeForCard("c-none")).toBeNull();

    const late = await store.pastDeadline(2 + config.timeoutMs);
    const ids = late.map((s) => s.id);
    expect(ids).toContain("card-old");
    expect(ids).not.toContain("card-new");
  });

  it("grants a claim to exactly one of many racing callers", async () => {
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.claim("s-claim/spawn:1", `owner-${i}`)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.claim("s-claim/spawn:2", "x")).toBe(true);
  });

  it("merges a card's saved files across sessions and drops deleted ones", async () => {
    const f = (path: string, content: string, sessionId: string) => ({ cardId: "card-files", path, content, encoding: "utf8" as const, sessionId, savedAt: 1 });
    await store.saveCardFiles("card-files", [f("a.txt", "1", "s1"), f("dir/b.txt", "2", "s1")]);
    await store.saveCardFiles("card-files", [f("a.txt", "1b", "s2"), f("c.txt", "3", "s2")], ["dir/b.txt"]);
    const files = await store.cardFiles("card-files");
    expect(files.map((x) => [x.path, x.content, x.sessionId])).toEqual([
      ["a.txt", "1b", "s2"],
      ["c.txt", "3", "s2"],
    ]);
    expect(await store.cardFiles("other-card")).toEqual([]);
  });

  it("records a dead letter once even when reported twice", async () => {
    const letter = { id: "W:7", stream: "W", consumer: "c", subject: "s", seq: 7, reason: "first", excerpt: "{}", deliveries: 1, at: 5 };
    await store.recordDead(letter);
    await store.recordDead({ ...letter, reason: "second" });
    const dead = (await store.deadLetters()).filter((d) => d.id === "W:7");
    expect(dead).toEqual([letter]);
  });
});
