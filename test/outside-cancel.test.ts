import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWatchdog, type Watchdog } from "../services/watchdog/src/app.js";
import { SessionCancel, SessionCancelled, feedStreamName, streamName } from "../shared/src/index.js";
import { createMetrics } from "../shared/src/metrics/index.js";
import { SimulatedSandboxProvider } from "../devtools/src/simulated/index.js";
import { startAuthServer, type AuthServer } from "./support/auth-server.js";
import { useApi } from "./support/api-fixture.js";
import { eventually, logger, sleep } from "./support/fixtures.js";

const FLEET = "outside-cancel";
// Written out, as an outside system writes them: the public subjects, not the catalog's names.
const TERMINAL = ["session.completed", "session.failed", "session.cancelled"];
const CANCEL = "session.cancel";

interface Seen {
  subject: string;
  body: Record<string, unknown>;
}

let srv: AuthServer;
let dir: string;

// The file's own nats-server, outside the describe: up before its api takes a bus on it, until after the api closed.
beforeAll(async () => {
  srv = await startAuthServer("outcancel");
}, 60_000);

afterAll(async () => {
  await srv?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Cancelling, as an outside system sees it, on a nats-server with the fleet's accounts: the api and
 * the watchdog run in-process as their own users, the reader is the outside role with a durable of
 * its own on the three terminal subjects of its feed. Each cancelled session must reach it once, as
 * a terminal event (never the request that caused it), whatever else was published about it.
 */
describe("a cancelled session reaches an outside consumer as exactly one terminal event", () => {
  let watchdog: Watchdog;
  let outside: NatsConnection;
  let js: JetStreamClient;

  const api = useApi({ prefix: "ocx", apiBus: () => srv.busAs("api"), api: { submitsPerMinute: 1_000 } });
  const { store, call } = api;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "fleet-outside-cancel-"));
    const provider = new SimulatedSandboxProvider({ dir: join(dir, "sim"), fleet: FLEET, events: 0 }, logger);
    const deps = { store, bus: await srv.busAs("watchdog"), provider, logger, metrics: createMetrics("oc-watchdog") };
    watchdog = createWatchdog(deps, {
      fleet: FLEET,
      graceMs: 600_000,
      intervalMs: 300,
      reaperIntervalMs: 3_600_000,
      debtGraceMs: 500,
    });
    watchdog.start();
    outside = await srv.as("outside");
    js = jetstream(outside, { timeout: 2_000 });
    const jsm = await jetstreamManager(outside, { checkAPI: false });
    await jsm.consumers.add(feedStreamName(""), {
      durable_name: "acme-ended",
      ack_policy: AckPolicy.Explicit,
      filter_subjects: TERMINAL,
    });
  }, 60_000);

  afterAll(async () => {
    await watchdog?.stop(1_000);
  });

  /** A pending session (no spawner runs here: it waits in the queue until cancelled). */
  const submit = async (): Promise<string> => {
    const r = await call<{ sessionId: string }>("POST", "/v1/sessions", { projectId: "p-oc", prompt: "go" });
    expect(r.status).toBe(202);
    return r.body.sessionId;
  };

  const settled = (id: string) =>
    eventually(
      async () => {
        const s = await store.get(id);
        return s?.status === "cancelled" && !s.eventOwed ? s : undefined;
      },
      15_000,
      50,
    );

  const drain = async (durable: string): Promise<Seen[]> => {
    const consumer = await js.consumers.get(feedStreamName(""), durable);
    const seen: Seen[] = [];
    for (let m = await consumer.next({ expires: 1_000 }); m; m = await consumer.next({ expires: 1_000 })) {
      seen.push({ subject: m.subject, body: m.json<Record<string, unknown>>() });
      await m.ackAck();
    }
    return seen;
  };

  /** What the durable gets for a session, waited for, then a few more watchdog rounds (nothing more may come). */
  const eventsOf = async (id: string): Promise<Seen[]> => {
    const seen: Seen[] = [];
    await eventually(
      async () => {
        seen.push(...(await drain("acme-ended")));
        return seen.length > 0;
      },
      10_000,
      100,
    ).catch(() => undefined);
    await sleep(1_500);
    seen.push(...(await drain("acme-ended")));
    return seen.filter((s) => s.body.sessionId === id);
  };

  const expectOneCancelled = (seen: Seen[], id: string, reason: string) => {
    expect(seen.map((s) => `${s.subject} ${String(s.body.sessionId)}`)).toEqual([`session.cancelled ${id}`]);
    const [event] = seen as [Seen];
    // A terminal event, which a request is not: it names the project and parses only as the former.
    expect(SessionCancelled.parse(event.body)).toMatchObject({ sessionId: id, projectId: "p-oc", reason });
    expect(SessionCancel.safeParse(event.body).success).toBe(false);
  };

  it("one session.cancelled for a session cancelled over HTTP", async () => {
    const id = await submit();
    expect((await call("POST", `/v1/sessions/${id}/cancel`, { reason: "over http" })).status).toBe(202);
    await settled(id);
    expect((await call("POST", `/v1/sessions/${id}/cancel`, {})).status).toBe(409);
    expectOneCancelled(await eventsOf(id), id, "over http");
  }, 60_000);

  it("one session.cancelled for a session cancelled by an outside session.cancel, acked by the fleet", async () => {
    const id = await submit();
    const request = JSON.stringify({ v: 1, sessionId: id, at: Date.now(), reason: "from outside" });
    const ack = await js.publish(CANCEL, request, { msgID: `cancel:${id}` });
    expect(ack).toMatchObject({ stream: streamName("", "events"), duplicate: false });
    expect(await js.publish(CANCEL, request, { msgID: `cancel:${id}` })).toMatchObject({
      seq: ack.seq,
      duplicate: true,
    });
    const s = await settled(id);
    expect(s.error).toEqual({ code: "cancelled", message: "from outside" });
    // Asked again once it ended (a request past the duplicate window, under another id): the
    // watchdog meets an ended session that owes nothing.
    const later = await js.publish(CANCEL, JSON.stringify({ v: 1, sessionId: id, at: Date.now() }), {
      msgID: `cancel:${id}:later`,
    });
    expect(later.duplicate).toBe(false);
    expectOneCancelled(await eventsOf(id), id, "from outside");

    // The whole feed, read from its start by a new durable: one terminal event per session, and the
    // outside's own request on its own subject only.
    const jsm = await jetstreamManager(outside, { checkAPI: false });
    await jsm.consumers.add(feedStreamName(""), {
      durable_name: "acme-audit",
      ack_policy: AckPolicy.Explicit,
      filter_subjects: [...TERMINAL, CANCEL],
    });
    const all = (await drain("acme-audit")).map((m) => `${m.subject} ${String(m.body.sessionId)}`);
    expect(all.filter((m) => m.endsWith(` ${id}`))).toEqual([
      `session.cancel ${id}`,
      `session.cancelled ${id}`,
      `session.cancel ${id}`,
    ]);
    expect(all.filter((m) => m.startsWith("session.cancelled "))).toHaveLength(2);
  }, 60_000);
});
