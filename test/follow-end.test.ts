import { describe, expect, it } from "vitest";
import { SessionConfig, SessionLogWriter } from "../shared/src/index.js";
import { useApi } from "./support/api-fixture.js";
import { logger, sleep } from "./support/fixtures.js";
import { openStream } from "./support/http.js";
import { useOwnNats } from "./support/restartable.js";

const DONE = { response: "", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] };

const nats = useOwnNats("nats-follow-end");

/**
 * A follower's `end` event tells it the log is whole, so it is sent only after a read that reached
 * the log stream's last line. In a three-node cluster's election (no quorum), a follower of a session
 * that had just completed got lines 1-13 of 20 (what the store held) and then `end`.
 */
describe("a log follower's end event", () => {
  const api = useApi({
    prefix: "fend",
    bus: () => ({ servers: nats.url, name: "follow-end", publishTimeoutMs: 1_000 }),
  });
  const { store, bus } = api;

  const follow = (id: string, after?: number) =>
    openStream(api.base, `/v1/sessions/${id}/logs?follow=1`, {
      ...api.auth,
      ...(after !== undefined ? { "last-event-id": String(after) } : {}),
    });
  const seqs = (text: string): number[] => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));

  it("is not sent while the log stream cannot be read; the follower resumes and gets the rest, then the end", {
    timeout: 60_000,
  }, async () => {
    const id = "s-ended";
    await store.create({ id, projectId: "p1", prompt: "x", config: SessionConfig.parse({}) });
    const writer = await SessionLogWriter.open({ store, bus, logger }, id, { fresh: true });
    await writer.append(Array.from({ length: 6 }, (_, n) => ({ kind: "system" as const, line: `line ${n + 1}` })));
    // The archiver is behind: the store holds the first three.
    await store.appendLogs(
      [1, 2, 3].map((seq) => ({ sessionId: id, seq, at: Date.now(), kind: "system" as const, line: `line ${seq}` })),
    );
    await store.transition(id, { from: ["pending"], to: "completed", set: { output: DONE } });

    const whole = follow(id);
    expect(await whole.ended).toBe(true);
    expect(seqs(whole.text())).toEqual([1, 2, 3, 4, 5, 6]);
    expect(whole.text()).toContain('"lastSeq":6');

    await nats.server.stop();
    try {
      const away = follow(id);
      await away.ended;
      expect(away.text(), "no end while only the store answered").not.toContain("event: end");
      expect(seqs(away.text())).toEqual([1, 2, 3].slice(0, seqs(away.text()).length));
    } finally {
      await nats.server.start();
    }
    // As a client does: resume from the last line it got until an end comes (the api's bus reconnects meanwhile).
    const got: number[] = [];
    let text = "";
    for (const until = Date.now() + 30_000; !text.includes("event: end") && Date.now() < until; ) {
      const resumed = follow(id, 3 + got.length);
      await resumed.ended;
      text = resumed.text();
      got.push(...seqs(text));
      if (!text.includes("event: end")) await sleep(250);
    }
    expect(got).toEqual([4, 5, 6]);
    expect(text).toContain('"lastSeq":6');
  });
});
