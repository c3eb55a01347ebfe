import { describe, expect, inject, it } from "vitest";
import { FleetError, SessionConfig, type Session, type SessionDocStore } from "../shared/src/index.js";
import { MongoSessions } from "../shared/src/store/sessions.js";
import { useCommandLog, useStore } from "./support/fixtures.js";

const config = SessionConfig.parse({});
const output = { response: "done", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] };

describe(`sessions on a real ${inject("storeKind")}`, () => {
  const sessions: SessionDocStore = useStore("sessions");

  it("counts the active sessions per project, status and phase, and no ended one", async () => {
    const make = (id: string, projectId: string) => sessions.create({ id, projectId, prompt: "x", config }, 1_000);
    await Promise.all([make("ac-1", "p-ac-a"), make("ac-2", "p-ac-a"), make("ac-3", "p-ac-b"), make("ac-4", "p-ac-b")]);
    await sessions.transition("ac-3", { from: ["pending"], to: "running", set: { phase: "running" } });
    await sessions.transition("ac-4", { from: ["pending"], to: "failed", set: { completedAt: 2_000 } });
    const counts = (await sessions.activeCounts()).filter((c) => c.projectId.startsWith("p-ac-"));
    expect(counts).toEqual([
      { projectId: "p-ac-a", status: "pending", phase: "queued", count: 2 },
      { projectId: "p-ac-b", status: "running", phase: "running", count: 1 },
    ]);
  });

  it("creates idempotently on the session id and fills the defaults", async () => {
    const a = await sessions.create({ id: "s-create", projectId: "p", prompt: "x", config }, 1_000);
    const b = await sessions.create({ id: "s-create", projectId: "other", prompt: "y", config }, 2_000);
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.session).toEqual(a.session);
    expect(a.session).toMatchObject({
      status: "pending",
      phase: "queued",
      attempt: 0,
      createdAt: 1_000,
      deadlineAt: 1_000 + config.timeoutMs,
    });
  });

  it("creates a session with its first attempt claimed in the same write, for exactly one of racing creators", async () => {
    for (let round = 0; round < 10; round++) {
      const id = `s-create-claimed-${round}`;
      const before = Date.now();
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          sessions.create({ id, projectId: "p", prompt: "x", config }, 1_000, {
            claimedBy: { seq: 7, delivery: i + 1 },
            phase: "sandbox_creating",
          }),
        ),
      );
      const winners = results.filter((r) => r.created);
      expect(winners).toHaveLength(1);
      const stored = await sessions.get(id);
      expect(stored).toEqual(winners[0]?.session);
      expect(stored).toMatchObject({ status: "pending", phase: "sandbox_creating", attempt: 1, createdAt: 1_000 });
      expect(stored?.claimedAt).toBeGreaterThanOrEqual(before);
      // Attempt 1 is taken; a redelivery claims the next one.
      expect(await sessions.claimAttempt(id, 1)).toBe(false);
      expect(await sessions.claimAttempt(id, 2)).toBe(true);
    }
  });

  it("keeps a publisher's requestedAt as sent, and counts the deadline from the store's own create time", async () => {
    const before = Date.now();
    const { session } = await sessions.create({
      id: "s-requested-at",
      projectId: "p",
      prompt: "x",
      config,
      requestedAt: 0,
    });
    expect(session.requestedAt).toBe(0);
    expect(session.createdAt).toBeGreaterThanOrEqual(before);
    expect(session.deadlineAt).toBe(session.createdAt + config.timeoutMs);
    expect(
      (await sessions.create({ id: "s-no-requested-at", projectId: "p", prompt: "x", config })).session,
    ).not.toHaveProperty("requestedAt");
  });

  it("lets concurrent creators of one id agree on one document", async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        sessions.create({ id: "s-race-create", projectId: "p", prompt: `p${i}`, config }),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.session.prompt)).size).toBe(1);
  });

  it("of racing compare-and-set transitions exactly one wins", async () => {
    await sessions.create({ id: "s-cas", projectId: "p", prompt: "x", config });
    const outcomes = await Promise.all([
      sessions.transition("s-cas", { from: ["pending"], to: "running", set: { phase: "running" } }),
      sessions.transition("s-cas", { from: ["pending"], to: "failed", set: { error: { code: "x", message: "y" } } }),
      sessions.transition("s-cas", { from: ["pending"], to: "cancelled" }),
      sessions.transition("s-cas", { from: ["pending"], to: "running" }),
    ]);
    const winners = outcomes.filter((o) => o !== null);
    expect(winners).toHaveLength(1);
    // The winner gets the document as stored, so no caller needs to read it again.
    expect(await sessions.get("s-cas")).toEqual(winners[0]);
  });

  it("gives each setup attempt to exactly one of many racing claimers, and none once the session left pending", async () => {
    await sessions.create({ id: "s-claim", projectId: "p", prompt: "x", config });
    for (let attempt = 1; attempt <= 10; attempt++) {
      const before = Date.now();
      const won = await Promise.all(
        Array.from({ length: 10 }, () => sessions.claimAttempt("s-claim", attempt, { phase: "sandbox_creating" })),
      );
      expect(won.filter(Boolean)).toHaveLength(1);
      const stored = await sessions.get("s-claim");
      expect(stored).toMatchObject({ attempt, phase: "sandbox_creating" });
      expect(stored?.claimedAt).toBeGreaterThanOrEqual(before);
      // Taken once, an attempt stays taken; the one after it is free.
      expect(await sessions.claimAttempt("s-claim", attempt)).toBe(false);
    }
    await sessions.transition("s-claim", { from: ["pending"], to: "running" });
    expect(await sessions.claimAttempt("s-claim", 11)).toBe(false);
    expect((await sessions.get("s-claim"))?.attempt).toBe(10);
  });

  it("has exactly one winner in every one of many racing rounds, across statuses", async () => {
    const rounds = 25;
    for (let i = 0; i < rounds; i++) await sessions.create({ id: `race-${i}`, projectId: "p", prompt: "x", config });
    await Promise.all(
      Array.from({ length: rounds }, async (_, i) => {
        const id = `race-${i}`;
        const results = await Promise.all([
          sessions.transition(id, { from: ["pending"], to: "running" }),
          sessions.transition(id, { from: ["pending"], to: "running" }),
          sessions.transition(id, { from: ["pending"], to: "failed" }),
          sessions.transition(id, { from: ["pending", "running"], to: "cancelled" }),
        ]);
        const winners = results.filter((r) => r !== null);
        const running = winners.filter((w) => w.status === "running");
        const ended = winners.filter((w) => w.status !== "running");
        // Pending is left once (to running or to an end); running is left at most once.
        expect(running.length).toBeLessThanOrEqual(1);
        expect(ended.length).toBeLessThanOrEqual(1);
        expect(winners.length).toBeGreaterThanOrEqual(1);
        if (ended[0]?.status === "failed") expect(running).toHaveLength(0);
        expect((await sessions.get(id))?.status).toBe(ended[0]?.status ?? "running");
      }),
    );
  });

  it("never lets a racing stale write bring a terminal session back", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `stale-${i}`);
    for (const id of ids) {
      await sessions.create({ id, projectId: "p", prompt: "x", config });
      await sessions.transition(id, { from: ["pending"], to: "running" });
    }
    await Promise.all(
      ids.flatMap((id) => [
        sessions.patch(id, { phase: "running" }),
        sessions.transition(id, { from: ["running"], to: "completed", set: { output } }),
        sessions.patch(id, { agentSessionId: "a" }),
      ]),
    );
    for (const id of ids) {
      const s = await sessions.get(id);
      expect(s?.status).toBe("completed");
      expect(s?.output?.response).toBe("done");
      expect(await sessions.transition(id, { from: ["pending", "running"], to: "failed" })).toBeNull();
    }
  });

  it("writes only the named fields, so racing patches and a transition all keep what they wrote", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `fields-${i}`);
    for (const id of ids) await sessions.create({ id, projectId: "p", prompt: "x", config });
    await Promise.all(
      ids.flatMap((id) => [
        sessions.patch(id, { agentSessionId: `a-${id}` }),
        sessions.transition(id, { from: ["pending"], to: "running", set: { startedAt: 5, phase: "running" } }),
        sessions.patch(id, { agentMessageId: `m-${id}` }),
        sessions.patch(id, { sandbox: { id: `sb-${id}`, provider: "local" } }),
      ]),
    );
    for (const id of ids) {
      expect(await sessions.get(id)).toMatchObject({
        status: "running",
        startedAt: 5,
        phase: "running",
        agentSessionId: `a-${id}`,
        agentMessageId: `m-${id}`,
        sandbox: { id: `sb-${id}` },
      });
    }
    // A field given as undefined is left as it is, not cleared.
    expect(await sessions.patch("fields-0", { agentSessionId: undefined, queuePosition: 2 })).toBe(true);
    expect(await sessions.get("fields-0")).toMatchObject({ agentSessionId: "a-fields-0", queuePosition: 2 });
  });

  it("keeps terminal states absorbing", async () => {
    await sessions.create({ id: "s-term", projectId: "p", prompt: "x", config });
    const done = await sessions.transition("s-term", {
      from: ["pending", "running"],
      to: "completed",
      set: { output: { ...output, response: "r" } },
    });
    expect(done?.completedAt).toBeTypeOf("number");
    // Every active-status transition now loses.
    expect(await sessions.transition("s-term", { from: ["pending", "running"], to: "failed" })).toBeNull();
    expect(await sessions.transition("s-term", { from: ["running"], to: "cancelled" })).toBeNull();
    // Asking to leave a terminal status, or to stay in one, is refused outright.
    await expect(sessions.transition("s-term", { from: ["completed"], to: "running" })).rejects.toBeInstanceOf(
      FleetError,
    );
    await expect(sessions.transition("s-term", { from: ["running"], to: "running" })).rejects.toBeInstanceOf(
      FleetError,
    );
    // The lifecycle table is the rule: nothing enters pending (a session is created in it), running only from pending.
    await expect(sessions.transition("s-term", { from: ["running"], to: "pending" })).rejects.toMatchObject({
      code: "invalid_transition",
    });
    await expect(sessions.transition("s-term", { from: [], to: "failed" })).rejects.toMatchObject({
      code: "invalid_transition",
    });
    await expect(
      sessions.transition("s-term", { from: ["pending", "completed"], to: "running" }),
    ).rejects.toMatchObject({
      message: expect.stringContaining("enters running only from pending, not from completed"),
    });
    // Patches do not touch a terminal document unless asked for explicitly.
    expect(await sessions.patch("s-term", { phase: "running" })).toBe(false);
    expect(await sessions.patch("s-term", { queuePosition: 0 }, ["completed"])).toBe(true);
    await expect(sessions.patch("s-term", { status: "running" } as never)).rejects.toBeInstanceOf(FleetError);
    const stored = await sessions.get("s-term");
    expect(stored?.status).toBe("completed");
    expect(stored?.output?.response).toBe("r");
    expect(stored?.completedAt).toBe(done?.completedAt);
    // Unknown sessions: nothing to win, nothing to patch.
    expect(await sessions.transition("nobody", { from: ["pending"], to: "failed" })).toBeNull();
    expect(await sessions.patch("nobody", { phase: "running" })).toBe(false);
    expect(await sessions.get("nobody")).toBeNull();
  });

  it("paginates a project's sessions newest first, stable under inserts", async () => {
    for (let i = 0; i < 7; i++) {
      // Two sessions share each timestamp, so the id must break ties.
      await sessions.create(
        { id: `pg-${i}`, projectId: "paged", prompt: "x", config, createdAt: 10_000 + Math.floor(i / 2) },
        0,
      );
    }
    const first = await sessions.listByProject("paged", { limit: 3 });
    expect(first.items.map((s) => s.id)).toEqual(["pg-6", "pg-5", "pg-4"]);
    // New sessions arriving between pages must not shift or repeat what follows.
    await sessions.create({ id: "pg-new", projectId: "paged", prompt: "x", config, createdAt: 20_000 });
    const second = await sessions.listByProject("paged", { limit: 3, cursor: first.nextCursor as string });
    const third = await sessions.listByProject("paged", { limit: 3, cursor: second.nextCursor as string });
    expect(second.items.map((s) => s.id)).toEqual(["pg-3", "pg-2", "pg-1"]);
    expect(third.items.map((s) => s.id)).toEqual(["pg-0"]);
    expect(third.nextCursor).toBeUndefined();
    await expect(sessions.listByProject("paged", { cursor: "garbage" })).rejects.toMatchObject({ code: "bad_input" });
  });

  it("finds the active sessions of a card and sessions past their deadline", async () => {
    await sessions.create({ id: "card-old", projectId: "p", cardId: "c1", prompt: "x", config, createdAt: 1 });
    await sessions.create({ id: "card-new", projectId: "p", cardId: "c1", prompt: "x", config, createdAt: 2 });
    expect((await sessions.activeForCard("c1"))?.id).toBe("card-new");
    expect((await sessions.activeSessionsForCard("c1")).map((s) => s.id)).toEqual(["card-new", "card-old"]);
    await sessions.transition("card-new", { from: ["pending"], to: "cancelled" });
    expect((await sessions.activeForCard("c1"))?.id).toBe("card-old");
    expect((await sessions.activeSessionsForCard("c1")).map((s) => s.id)).toEqual(["card-old"]);
    expect(await sessions.activeForCard("c-none")).toBeNull();

    const late = (await sessions.pastDeadline(2 + config.timeoutMs)).map((s) => s.id);
    expect(late).toContain("card-old");
    expect(late).not.toContain("card-new");
  });

  it("renews a watch lease only for its holder and round, and a lapsed lease starts one new round", async () => {
    const id = "s-lease";
    await sessions.create({ id, projectId: "p", prompt: "x", config });
    await sessions.claimAttempt(id, 1);
    await sessions.transition(id, { from: ["pending"], to: "running", set: { startedAt: 1_000 } });
    const round0 = { attempt: 1, round: 0 };
    // Never renewed: the first lease ends leaseMs after the start.
    expect((await sessions.lapsedWatches(5_999, 5_000)).map((s) => s.id)).not.toContain(id);
    expect((await sessions.lapsedWatches(6_001, 5_000)).map((s) => s.id)).toContain(id);
    // The first renewal names no holder; a second watch that read the same state loses to it.
    expect(await sessions.renewWatch(id, round0, "w1", 10_000)).toBe(true);
    expect(await sessions.renewWatch(id, round0, "w2", 10_000)).toBe(false);
    expect(await sessions.renewWatch(id, { ...round0, attempt: 2, holder: "w1" }, "w1", 11_000)).toBe(false);
    expect(await sessions.renewWatch(id, { ...round0, holder: "w1" }, "w1", 12_000)).toBe(true);
    // A redelivery's watch takes over from the holder it read; the old holder is fenced.
    expect(await sessions.renewWatch(id, { ...round0, holder: "w1" }, "w3", 13_000)).toBe(true);
    expect(await sessions.renewWatch(id, { ...round0, holder: "w1" }, "w1", 14_000)).toBe(false);
    expect((await sessions.lapsedWatches(12_999, 5_000)).map((s) => s.id)).not.toContain(id);
    const [lapsed] = (await sessions.lapsedWatches(13_001, 5_000)).filter((s) => s.id === id);
    expect(lapsed).toMatchObject({ watchedUntil: 13_000, watchedBy: "w3" });
    // Two watchdogs read the lapsed lease: one starts round 1, which clears the holder.
    const rounds = await Promise.all([
      sessions.rewatch(lapsed as Session, 20_000),
      sessions.rewatch(lapsed as Session, 20_000),
    ]);
    expect(rounds.filter((r) => r !== null)).toHaveLength(1);
    const after = await sessions.get(id);
    expect(after).toMatchObject({ rewatches: 1, watchedUntil: 20_000 });
    expect(after?.watchedBy).toBeUndefined();
    // The fenced holder and any watch of round 0 can no longer renew; round 1's watch can.
    expect(await sessions.renewWatch(id, { ...round0, holder: "w3" }, "w3", 21_000)).toBe(false);
    expect(await sessions.renewWatch(id, round0, "w4", 21_000)).toBe(false);
    expect(await sessions.renewWatch(id, { attempt: 1, round: 1 }, "w5", 25_000)).toBe(true);
    // An ended session's lease is nobody's to renew, and it is not watched any more.
    await sessions.transition(id, { from: ["running"], to: "completed", set: { output } });
    expect(await sessions.renewWatch(id, { attempt: 1, round: 1, holder: "w5" }, "w5", 30_000)).toBe(false);
    expect((await sessions.lapsedWatches(Number.MAX_SAFE_INTEGER, 5_000)).map((s) => s.id)).not.toContain(id);
  });

  it("counts only older queued sessions with a queue position ahead of a session", async () => {
    const at = 50_000;
    for (const [i, queued] of [
      [0, true],
      [1, false],
      [2, true],
      [3, true],
    ] as const) {
      await sessions.create({ id: `q-${i}`, projectId: "queue", prompt: "x", config, createdAt: at + i });
      if (queued) await sessions.patch(`q-${i}`, { queuePosition: i });
    }
    // q-1 was never given a position (not picked up yet), so it holds nobody back.
    expect(await sessions.queuePosition({ id: "q-3", createdAt: at + 3 })).toBe(2);
    expect(await sessions.queuePosition({ id: "q-0", createdAt: at })).toBe(0);
    await sessions.transition("q-0", { from: ["pending"], to: "running" });
    expect(await sessions.queuePosition({ id: "q-3", createdAt: at + 3 })).toBe(1);
  });
});

describe("sessions cost one round trip per operation", () => {
  const { adapter: sessions, db, sent } = useCommandLog("roundtrips", (d) => new MongoSessions(d));

  it("creates, reads, patches and transitions with one command each, won or lost", async () => {
    expect(await sent(() => sessions.create({ id: "rt", projectId: "p", prompt: "x", config }))).toEqual([
      "findAndModify",
    ]);
    expect(await sent(() => sessions.create({ id: "rt", projectId: "p", prompt: "x", config }))).toEqual([
      "findAndModify",
    ]);
    const claim = { phase: "sandbox_creating" as const, claimedBy: { seq: 1, delivery: 1 } };
    expect(
      await sent(() => sessions.create({ id: "rt-claimed", projectId: "p", prompt: "x", config }, 1, claim)),
    ).toEqual(["findAndModify"]);
    expect(await sent(() => sessions.get("rt"))).toEqual(["find"]);
    expect(await sent(() => sessions.claimAttempt("rt", 1, { phase: "sandbox_creating" }))).toEqual(["update"]);
    expect(await sent(() => sessions.patch("rt", { phase: "restoring" }))).toEqual(["update"]);
    expect(
      await sent(() => sessions.transition("rt", { from: ["pending"], to: "running", set: { phase: "running" } })),
    ).toEqual(["findAndModify"]);
    expect(await sent(() => sessions.transition("rt", { from: ["pending"], to: "failed" }))).toEqual(["findAndModify"]);
    expect(
      await sent(() => sessions.transition("rt", { from: ["pending", "running"], to: "completed", set: { output } })),
    ).toEqual(["findAndModify"]);
    expect(await sent(() => sessions.patch("rt", { phase: "running" }))).toEqual(["update"]);
    // Nothing but the sessions collection is touched: no transition records, no cache repair.
    expect((await db.listCollections().toArray()).map((c) => c.name)).toEqual(["sessions"]);
  });

  it("calls a stored document the contract refuses an internal error, not an outage to retry", async () => {
    const broken = { _id: "rt-broken", projectId: "p", status: "pending", phase: "warming" };
    await db.collection<typeof broken>("sessions").insertOne(broken);
    const err = await sessions.get("rt-broken").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FleetError);
    expect(err).toMatchObject({ code: "internal", retryable: false });
    expect((err as FleetError).message).toMatch(/^store get: a stored document does not match the contract: .*phase/s);
  });
});
