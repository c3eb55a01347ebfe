import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCHEMA_VERSION, feedStreamName, streamName, subjectFor } from "../shared/src/index.js";
import { progressSubject } from "../shared/src/contracts/index.js";
import { startAuthServer, type AuthServer } from "./support/auth-server.js";
import { eventually } from "./support/fixtures.js";

describe("NATS authorization: each user only its subjects", () => {
  let srv: AuthServer;
  const as = (role: Parameters<AuthServer["as"]>[0]) => srv.as(role);

  beforeAll(async () => {
    srv = await startAuthServer("natsauth");
  }, 60_000);

  afterAll(async () => {
    await srv?.stop();
  });

  const request = (id: string) => JSON.stringify({ v: SCHEMA_VERSION, sessionId: id, projectId: "p", prompt: "x", requestedAt: 1 });

  it("refuses a connection without valid credentials", async () => {
    await expect(connect({ servers: srv.url, reconnect: false })).rejects.toThrow(/Authorization/i);
    await expect(connect({ servers: srv.url, user: "fleet-outside", pass: "wrong", reconnect: false })).rejects.toThrow(/Authorization/i);
  });

  it("(g) lets an outside system publish session.requested, acked by the work stream, and nothing the fleet publishes", async () => {
    const js = jetstream(await as("outside"), { timeout: 2_000 });
    const ack = await js.publish(subjectFor("", "requested"), request("from-outside"), { msgID: "requested:from-outside" });
    expect(ack.stream).toBe(streamName("", "work"));
    const again = await js.publish(subjectFor("", "requested"), request("from-outside"), { msgID: "requested:from-outside" });
    expect(again).toMatchObject({ stream: streamName("", "work"), seq: ack.seq, duplicate: true });
    for (const kind of ["running", "completed", "failed", "cancelled"] as const) {
      await expect(js.publish(subjectFor("", kind), "{}"), kind).rejects.toThrow();
    }
    await expect(js.publish(subjectFor("", "log", "s1"), "{}")).rejects.toThrow();
  });

  it("(h, i) lets an outside system keep its own durables on results and a log, and follow a log with an ordered consumer", async () => {
    const poller = jetstream(await as("poller"));
    const watchdog = jetstream(await as("watchdog"));
    const line = (seq: number, text: string) => JSON.stringify({ v: 1, sessionId: "s-out", seq, at: 1, kind: "system", line: text });
    await poller.publish(subjectFor("", "log", "s-out"), line(1, "hello"));
    await poller.publish(subjectFor("", "completed"), JSON.stringify({ v: 1, sessionId: "s-out", projectId: "p", at: 1, response: "ok", toolCalls: 0 }));
    await watchdog.publish(subjectFor("", "failed"), JSON.stringify({ v: 1, sessionId: "s-late", projectId: "p", at: 1, error: { code: "timeout", message: "late" } }));

    const outside = await as("outside");
    const js = jetstream(outside, { timeout: 2_000 });
    const jsm = await jetstreamManager(outside, { checkAPI: false });
    const feed = feedStreamName("");
    // Durables of its own, named as it likes, with one filter or several.
    await jsm.consumers.add(feed, { durable_name: "acme-results", ack_policy: AckPolicy.Explicit, filter_subjects: [subjectFor("", "completed"), subjectFor("", "failed")] });
    const results = await js.consumers.get(feed, "acme-results");
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) {
      const m = await results.next({ expires: 2_000 });
      seen.push(`${m?.subject} ${m?.json<{ sessionId: string }>().sessionId}`);
      await m?.ackAck();
    }
    expect(seen).toEqual([`${subjectFor("", "completed")} s-out`, `${subjectFor("", "failed")} s-late`]);
    await jsm.consumers.add(feed, { durable_name: "acme-log", ack_policy: AckPolicy.Explicit, filter_subject: subjectFor("", "log", "s-out") });
    const logged = await (await js.consumers.get(feed, "acme-log")).next({ expires: 2_000 });
    expect(logged?.json<{ line: string }>().line).toBe("hello");

    // History, then live: an ordered consumer on one session's log.
    const ordered = await js.consumers.get(feed, { filter_subjects: subjectFor("", "log", "s-out"), deliver_policy: DeliverPolicy.All });
    expect((await ordered.next({ expires: 2_000 }))?.json<{ line: string }>().line).toBe("hello");
    await poller.publish(subjectFor("", "log", "s-out"), line(2, "live"));
    expect((await ordered.next({ expires: 2_000 }))?.json<{ line: string }>().line).toBe("live");

    // Cancel requests and the work queue are not lent to the outside account: a consumer may name
    // them and gets nothing, and the fleet's streams do not exist there.
    await jetstream(await as("api")).publish(subjectFor("", "cancelled"), JSON.stringify({ v: 1, sessionId: "s-out", at: 1 }), { msgID: "cancelled:s-out" });
    await jsm.consumers.add(feed, { durable_name: "peek", ack_policy: AckPolicy.Explicit, filter_subjects: [subjectFor("", "cancelled"), subjectFor("", "running")] });
    expect(await (await js.consumers.get(feed, "peek")).next({ expires: 1_000 })).toBeNull();
    await expect(jsm.consumers.add(streamName("", "work"), { durable_name: "peek-work", ack_policy: AckPolicy.Explicit, filter_subject: subjectFor("", "running") })).rejects.toThrow(/stream not found/);
  });

  it("keeps each fleet service to its own data subjects", async () => {
    const api = jetstream(await as("api"), { timeout: 2_000 });
    await api.publish(subjectFor("", "cancelled"), JSON.stringify({ v: 1, sessionId: "x", at: 1 }), { msgID: "cancelled:x" });
    // session.completed too: a sandbox's completion callback ends its session in the api.
    await api.publish(subjectFor("", "completed"), JSON.stringify({ v: 1, sessionId: "x", projectId: "p", at: 1, response: "ok", toolCalls: 0 }), { msgID: "ended:x" });
    await expect(api.publish(subjectFor("", "failed"), "{}")).rejects.toThrow();
    await expect(api.publish(subjectFor("", "running"), "{}")).rejects.toThrow();
    const watchdog = jetstream(await as("watchdog"), { timeout: 2_000 });
    await expect(watchdog.publish(subjectFor("", "requested"), request("w"))).rejects.toThrow();
  });

  it("lets the api ask the poller for sandbox progress, and nobody else answer or ask", async () => {
    const [api, poller, outside] = [await srv.busAs("api"), await srv.busAs("poller"), await as("outside")];
    try {
      const served = poller.serveProgress("s-1", async (p) => ({ ok: true, stored: p.lines.length, seq: 7 }));
      const msg = { v: SCHEMA_VERSION, sessionId: "s-1", attempt: 1, lines: [{ kind: "text" as const, line: "hi" }] };
      await eventually(async () => (await api.sendProgress(msg, 1_000).catch(() => undefined))?.ok === true, 10_000, 100);
      expect(await api.sendProgress(msg, 1_000)).toEqual({ ok: true, stored: 1, seq: 7 });
      // An outside system may neither ask nor listen on progress subjects.
      await expect(outside.request(progressSubject("", "s-1"), JSON.stringify(msg), { timeout: 1_000 })).rejects.toThrow();
      served.stop();
      // Once the server has the unsubscribe (a moment under load), nobody answers at all.
      await eventually(async () => /no poller watches/.test(await api.sendProgress(msg, 1_000).then(() => "", (e: Error) => e.message)), 10_000, 100);
    } finally {
      await api.close();
      await poller.close();
    }
  });
});
