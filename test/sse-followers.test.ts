import { beforeAll, describe, expect, it } from "vitest";
import { SessionConfig, SessionLogWriter, consumerName, newApiKey } from "../shared/src/index.js";
import { useApi } from "./support/api-fixture.js";
import { eventually, logger, sleep } from "./support/fixtures.js";
import { jsonOf, openStream, rawRequest, type OpenStream } from "./support/http.js";
import { streamConsumers } from "./support/jetstream.js";

const DONE = { response: "", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] };
const rand = (n: number): number => Math.floor(Math.random() * n);

describe("log followers (server-sent events) over a real bus and store", () => {
  const api = useApi({
    prefix: "sse",
    // The pool the api gets in production (FLEET_STORE_POOL), so followers compete with /readyz as they would there.
    maxPoolSize: 8,
    api: { followers: { perKey: 400, perProcess: 1_000 } },
  });
  const { namespace: ns, store, bus } = api;
  const running: string[] = [];
  const ended: string[] = [];

  beforeAll(async () => {
    // Other sessions' lines, so that a log query the store serves by scanning costs what it costs in a fleet that has run a while.
    for (let b = 0; b < 20; b++) {
      await store.appendLogs(
        Array.from({ length: 1_000 }, (_, n) => ({
          sessionId: `old-${b}-${n % 10}`,
          seq: Math.floor(n / 10) + 1,
          at: Date.now(),
          kind: "text" as const,
          line: "x".repeat(200),
        })),
      );
    }
    // Sessions with and without lines: a session with none gives a bus follow nothing to wake it up.
    for (let i = 0; i < 40; i++) {
      const id = `s-${i}`;
      await store.create({ id, projectId: "p1", prompt: "x", config: SessionConfig.parse({}) });
      if (i % 3 !== 0) {
        const writer = await SessionLogWriter.open({ store, bus, logger }, id);
        await writer.append(Array.from({ length: 40 }, (_, n) => ({ kind: "system" as const, line: `line ${n + 1}` })));
      }
      if (i % 2 === 0) {
        await store.transition(id, { from: ["pending"], to: "running", set: { startedAt: Date.now() } });
        running.push(id);
      } else {
        await store.transition(id, { from: ["pending"], to: "completed", set: { output: DONE } });
        ended.push(id);
      }
    }
  });

  const follow = (id: string, withKey = api.key): OpenStream =>
    openStream(api.base, `/v1/sessions/${id}/logs?follow=1`, { authorization: `Bearer ${withKey}` });

  /** The api's follower gauges, from /metrics. */
  const gauges = async (): Promise<{ followers: number; feeds: number }> => {
    const text = (await rawRequest(api.base, "GET", "/metrics")).text;
    const value = (name: string): number =>
      Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, "m").exec(text)?.[1] ?? Number.NaN);
    return { followers: value("fleet_api_log_followers"), feeds: value("fleet_api_log_feeds") };
  };

  it("ends 300 followers dropped at random moments, leaving no follower, feed or consumer", {
    timeout: 120_000,
  }, async () => {
    const outcomes: Array<Promise<{ id: string; mode: string; endSeen: boolean; closedByServer: boolean }>> = [];
    for (let i = 0; i < 300; i++) {
      const id = (i % 2 === 0 ? running : ended)[rand(20)] as string;
      const mode = ["early", "afterHead", "untilEnd"][i % 3] as string;
      outcomes.push(
        (async () => {
          await sleep(rand(1_500));
          const s = follow(id);
          if (mode === "early") {
            await sleep(rand(8));
            s.drop();
          } else if (mode === "afterHead") {
            await s.head;
            await sleep(rand(300));
            s.drop();
          } else {
            // Ended sessions must end the stream by themselves (however busy the store); running ones are dropped after a while.
            await Promise.race([s.until("event: end"), sleep(ended.includes(id) ? 20_000 : 1_500 + rand(1_000))]);
            const endSeen = s.text().includes("event: end");
            const closedByServer = endSeen ? await Promise.race([s.ended, sleep(3_000).then(() => false)]) : false;
            s.drop();
            return { id, mode, endSeen, closedByServer };
          }
          return { id, mode, endSeen: false, closedByServer: false };
        })(),
      );
    }
    // Some running sessions end while they are followed.
    await sleep(1_000);
    for (const id of running.slice(0, 5))
      await store.transition(id, { from: ["running"], to: "completed", set: { output: DONE } });
    const results = await Promise.all(outcomes);
    const toEnded = results.filter((r) => r.mode === "untilEnd" && ended.includes(r.id));
    expect(toEnded.length).toBeGreaterThan(20);
    const notEnded = toEnded.filter((r) => !r.endSeen).map((r) => r.id);
    const leftOpen = results.filter((r) => r.endSeen && !r.closedByServer).map((r) => r.id);
    // The api's own count, and the server's: a consumer still pulled is a follow that never ended.
    const state = async () => {
      // The archiver's durable lives on the log stream too; it is not a follow.
      const consumers = (await streamConsumers(ns, "logs")).filter((c) => c.name !== consumerName(ns, "archiver"));
      return {
        ...(await gauges()),
        pulled: consumers.filter((c) => c.waiting > 0).length,
        consumers: consumers.length,
      };
    };
    const started = Date.now();
    const settled = await eventually(
      async () => {
        const s = await state();
        return s.followers === 0 && s.feeds === 0 && s.pulled === 0 && s.consumers === 0 ? s : undefined;
      },
      5_000,
      100,
    ).catch(() => state());
    process.stdout.write(`after 300 drops: ${JSON.stringify(settled)} in ${Date.now() - started} ms\n`);
    expect({ notEnded, leftOpen, ...settled }).toEqual({
      notEnded: [],
      leftOpen: [],
      followers: 0,
      feeds: 0,
      pulled: 0,
      consumers: 0,
    });
  });

  it("refuses followers past the per-key and per-process caps with 429 in the error shape", async () => {
    const { app: capped, url } = await api.listen({ followers: { perKey: 3, perProcess: 5 } });
    const other = newApiKey(["*"], "other");
    await store.saveApiKey(other.record);
    const open = (withKey: string): OpenStream =>
      openStream(url, `/v1/sessions/${running[10]}/logs?follow=1`, { authorization: `Bearer ${withKey}` });
    const streams: OpenStream[] = [];
    try {
      for (let i = 0; i < 3; i++) streams.push(open(api.key));
      expect(await Promise.all(streams.map((s) => s.head))).toEqual([200, 200, 200]);
      const fourth = open(api.key);
      expect(await fourth.head).toBe(429);
      await fourth.ended;
      expect(jsonOf(fourth.text())).toMatchObject({
        error: { code: "rate_limited", message: expect.stringMatching(/API key/) },
      });
      for (let i = 0; i < 2; i++) streams.push(open(other.key));
      expect(await Promise.all(streams.slice(3).map((s) => s.head))).toEqual([200, 200]);
      const overProcess = open(other.key);
      expect(await overProcess.head).toBe(429);
      await overProcess.ended;
      expect(jsonOf(overProcess.text())).toMatchObject({
        error: { code: "rate_limited", message: expect.stringMatching(/process/) },
      });
      // A dropped follower gives its place back at once.
      streams.shift()?.drop();
      await eventually(
        async () => {
          const again = open(api.key);
          const status = await again.head;
          streams.push(again);
          return status === 200;
        },
        5_000,
        100,
      );
    } finally {
      for (const s of streams) s.drop();
      await capped.close();
    }
  });

  it("ends open streams without an end event when the api closes, so clients resume elsewhere", async () => {
    const { app: closing, url } = await api.listen();
    // s-22 has lines, s-24 has none (both running).
    const streams = ["s-22", "s-22", "s-24"].map((id) => openStream(url, `/v1/sessions/${id}/logs?follow=1`, api.auth));
    expect(await Promise.all(streams.map((s) => s.head))).toEqual([200, 200, 200]);
    await Promise.all([streams[0]?.until('"seq":40'), streams[1]?.until('"seq":40')]);
    const started = Date.now();
    await closing.close();
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await Promise.all(streams.map((s) => s.ended))).toEqual([true, true, true]);
    expect(streams.map((s) => s.text().includes("event: end"))).toEqual([false, false, false]);
  });

  it("answers /readyz fast while 200 followers open and follow", { timeout: 60_000 }, async () => {
    const times: number[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const t = performance.now();
        const r = await rawRequest(api.base, "GET", "/readyz");
        times.push(r.status === 200 ? performance.now() - t : Number.POSITIVE_INFINITY);
        await sleep(50);
      }
    })();
    const streams = Array.from({ length: 200 }, (_, i) => follow(running[5 + (i % 15)] as string));
    try {
      expect(new Set(await Promise.all(streams.map((s) => s.head)))).toEqual(new Set([200]));
      await sleep(2_000);
    } finally {
      probing = false;
      await probe;
      for (const s of streams) s.drop();
    }
    const sorted = [...times].sort((a, b) => a - b);
    const at = (q: number): string => (sorted[Math.floor(q * (sorted.length - 1))] ?? Number.NaN).toFixed(1);
    process.stdout.write(
      `readyz while 200 followers open and follow: ${sorted.length} probes, median ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${at(1)} ms\n`,
    );
    expect(sorted.at(-1)).toBeLessThan(500);
    await eventually(async () => (await gauges()).followers === 0, 5_000, 100);
  });
});
