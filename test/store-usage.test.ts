import { describe, expect, inject, it } from "vitest";
import type { UsageCall } from "../shared/src/index.js";
import { MongoUsage } from "../shared/src/store/usage.js";
import { present, useCommandLog } from "./support/fixtures.js";

const DAY = Date.parse("2031-03-04T10:00:00Z");

function call(n: number, over: Partial<UsageCall> = {}): UsageCall {
  return {
    callId: `c${n}`,
    sessionId: "s1",
    projectId: "p1",
    attempt: 1,
    model: "m",
    tokensIn: 100,
    tokensOut: 10,
    cachedTokens: 40,
    cost: 0.25,
    stream: true,
    status: 200,
    durationMs: 5,
    at: DAY + n,
    ...over,
  };
}

describe(`the usage ledger on a real ${inject("storeKind")}`, () => {
  const { adapter: usage, sent } = useCommandLog("usage", async (db) => {
    const ledger = new MongoUsage(db);
    await ledger.init();
    return ledger;
  });

  it("records a call with one store operation, and keeps its session's and project's day totals", async () => {
    expect(await sent(() => usage.recordUsage(call(1)))).toEqual(["update"]);
    await usage.recordUsage(call(2, { model: "other", requestedModel: "m", cost: 0.5 }));
    expect(await usage.sessionUsage("s1")).toEqual({
      calls: 2,
      tokensIn: 200,
      tokensOut: 20,
      cachedTokens: 80,
      cost: 0.75,
      firstAt: DAY + 1,
      lastAt: DAY + 2,
    });
    expect(await usage.projectDayUsage("p1", "2031-03-04")).toMatchObject({ calls: 2, tokensIn: 200, cost: 0.75 });
    expect(await usage.projectDayUsage("p1", "2031-03-05")).toMatchObject({ calls: 0, tokensIn: 0 });
    expect(await usage.sessionUsage("nobody")).toBeNull();
    const calls = await usage.usageCalls("s1");
    expect(calls.map((c) => [c.callId, c.model, c.requestedModel])).toEqual([
      ["c1", "m", undefined],
      ["c2", "other", "m"],
    ]);
  });

  it("writes a call's record once when the same call is recorded again", async () => {
    await usage.recordUsage(call(1, { sessionId: "s-once", callId: "once" }));
    await usage.recordUsage(call(1, { sessionId: "s-once", callId: "once", tokensIn: 999 }));
    const calls = await usage.usageCalls("s-once");
    expect(calls.map((c) => c.tokensIn)).toEqual([100]);
  });

  it("adds racing calls without losing any", async () => {
    await Promise.all(
      Array.from({ length: 60 }, (_, i) => usage.recordUsage(call(i, { sessionId: "s-race", callId: `race-${i}` }))),
    );
    const s = present(await usage.sessionUsage("s-race"), "the racing session's totals");
    expect(s.calls).toBe(60);
    expect(s.tokensIn).toBe(6_000);
    expect(s.firstAt).toBe(DAY);
    expect(s.lastAt).toBe(DAY + 59);
  });

  it("serves a project's days in a range, oldest first, apart from other projects", async () => {
    for (const [n, at, projectId] of [
      [1, "2031-05-01T01:00:00Z", "p-range"],
      [2, "2031-05-03T23:59:59Z", "p-range"],
      [3, "2031-05-03T00:00:00Z", "p-range"],
      [4, "2031-05-09T00:00:00Z", "p-range"],
      [5, "2031-05-03T00:00:00Z", "p-other"],
    ] as const)
      await usage.recordUsage(call(n, { callId: `r${n}`, sessionId: `s-r${n}`, projectId, at: Date.parse(at) }));
    const days = await usage.projectUsage("p-range", "2031-05-01", "2031-05-08");
    expect(days.map((d) => [d.day, d.calls])).toEqual([
      ["2031-05-01", 1],
      ["2031-05-03", 2],
    ]);
  });
});
