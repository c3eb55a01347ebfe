import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EVENTS,
  SCHEMA_VERSION,
  feedStreamName,
  streamName,
  subjectFor,
  type EventInput,
  type EventKind,
  type SessionLog,
} from "../shared/src/index.js";
import { progressSubject } from "../shared/src/contracts/index.js";
import { startAuthServer, type AuthServer } from "./support/auth-server.js";
import { eventually } from "./support/fixtures.js";
import { logMessage } from "./support/jetstream.js";

describe("NATS authorization: each user only its subjects", () => {
  let srv: AuthServer;
  const as = (role: Parameters<AuthServer["as"]>[0]) => srv.as(role);

  beforeAll(async () => {
    srv = await startAuthServer("natsauth");
  }, 60_000);

  afterAll(async () => {
    await srv?.stop();
  });

  const request = (id: string) =>
    JSON.stringify({ v: SCHEMA_VERSION, sessionId: id, projectId: "p", prompt: "x", requestedAt: 1 });
  type Role = Parameters<AuthServer["as"]>[0];

  it("refuses a connection without valid credentials", async () => {
    await expect(connect({ servers: srv.url, reconnect: false })).rejects.toThrow(/Authorization/i);
    await expect(connect({ servers: srv.url, user: "fleet-outside", pass: "wrong", reconnect: false })).rejects.toThrow(
      /Authorization/i,
    );
  });

  it("(g) lets an outside system publish session.requested and session.cancel, acked by the fleet's streams, and nothing the fleet publishes", async () => {
    const js = jetstream(await as("outside"), { timeout: 2_000 });
    const ack = await js.publish(subjectFor("", "requested"), request("from-outside"), {
      msgID: "requested:from-outside",
    });
    expect(ack.stream).toBe(streamName("", "work"));
    const again = await js.publish(subjectFor("", "requested"), request("from-outside"), {
      msgID: "requested:from-outside",
    });
    expect(again).toMatchObject({ stream: streamName("", "work"), seq: ack.seq, duplicate: true });
    const cancel = JSON.stringify({ v: SCHEMA_VERSION, sessionId: "from-outside", at: 1 });
    const cancelled = await js.publish(subjectFor("", "cancel"), cancel, { msgID: "cancel:from-outside" });
    expect(cancelled.stream).toBe(streamName("", "events"));
    expect(await js.publish(subjectFor("", "cancel"), cancel, { msgID: "cancel:from-outside" })).toMatchObject({
      seq: cancelled.seq,
      duplicate: true,
    });
    // The terminal subjects are the fleet's to publish: a cancel request on session.cancelled is refused.
    for (const kind of ["running", "completed", "failed", "cancelled"] as const) {
      await expect(js.publish(subjectFor("", kind), "{}"), kind).rejects.toThrow(/Permissions Violation for Publish/);
    }
    await expect(js.publish(subjectFor("", "cancelled"), cancel, { msgID: "cancel:from-outside" })).rejects.toThrow(
      /Permissions Violation for Publish/,
    );
    await expect(js.publish(subjectFor("", "log", "s1"), "{}")).rejects.toThrow(/Permissions Violation for Publish/);
  });

  it("(h, i) lets an outside system keep its own durables on results and a log, and follow a log with an ordered consumer", async () => {
    const poller = jetstream(await as("poller"));
    const watchdog = jetstream(await as("watchdog"));
    const line = (seq: number, text: string) => JSON.stringify(logMessage("s-out", seq, text));
    await poller.publish(subjectFor("", "log", "s-out"), line(1, "hello"));
    await poller.publish(
      subjectFor("", "completed"),
      JSON.stringify({ v: 1, sessionId: "s-out", projectId: "p", at: 1, response: "ok", toolCalls: 0 }),
    );
    await watchdog.publish(
      subjectFor("", "failed"),
      JSON.stringify({ v: 1, sessionId: "s-late", projectId: "p", at: 1, error: { code: "timeout", message: "late" } }),
    );
    await watchdog.publish(
      subjectFor("", "cancelled"),
      JSON.stringify({ v: 1, sessionId: "s-gone", projectId: "p", at: 1, reason: "user" }),
    );

    const outside = await as("outside");
    const js = jetstream(outside, { timeout: 2_000 });
    const jsm = await jetstreamManager(outside, { checkAPI: false });
    const feed = feedStreamName("");
    // Durables of its own, named as it likes, with one filter or several.
    const terminal = (["completed", "failed", "cancelled"] as const).map((k) => subjectFor("", k));
    await jsm.consumers.add(feed, {
      durable_name: "acme-results",
      ack_policy: AckPolicy.Explicit,
      filter_subjects: terminal,
    });
    const results = await js.consumers.get(feed, "acme-results");
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await results.next({ expires: 2_000 });
      seen.push(`${m?.subject} ${m?.json<{ sessionId: string }>().sessionId}`);
      await m?.ackAck();
    }
    expect(seen).toEqual([
      `${subjectFor("", "completed")} s-out`,
      `${subjectFor("", "failed")} s-late`,
      `${subjectFor("", "cancelled")} s-gone`,
    ]);
    await jsm.consumers.add(feed, {
      durable_name: "acme-log",
      ack_policy: AckPolicy.Explicit,
      filter_subject: subjectFor("", "log", "s-out"),
    });
    const logged = await (await js.consumers.get(feed, "acme-log")).next({ expires: 2_000 });
    expect(logged?.json<SessionLog>().lines[0]?.line).toBe("hello");

    // History, then live: an ordered consumer on one session's log.
    const ordered = await js.consumers.get(feed, {
      filter_subjects: subjectFor("", "log", "s-out"),
      deliver_policy: DeliverPolicy.All,
    });
    expect((await ordered.next({ expires: 2_000 }))?.json<SessionLog>().lines[0]?.line).toBe("hello");
    await poller.publish(subjectFor("", "log", "s-out"), line(2, "live"));
    expect((await ordered.next({ expires: 2_000 }))?.json<SessionLog>().lines[0]?.line).toBe("live");

    // The fleet's own cancel requests and the work queue are not lent to the outside account: a
    // consumer may name them and gets only the outside's own request, and the fleet's streams do not exist there.
    await jetstream(await as("api")).publish(
      subjectFor("", "cancel"),
      JSON.stringify({ v: 1, sessionId: "s-out", at: 1 }),
      { msgID: "cancel:s-out" },
    );
    await jsm.consumers.add(feed, {
      durable_name: "peek",
      ack_policy: AckPolicy.Explicit,
      filter_subjects: [subjectFor("", "cancel"), subjectFor("", "running")],
    });
    const peek = await js.consumers.get(feed, "peek");
    const peeked: string[] = [];
    for (let m = await peek.next({ expires: 1_000 }); m; m = await peek.next({ expires: 1_000 })) {
      peeked.push(`${m.subject} ${m.json<{ sessionId: string }>().sessionId}`);
      await m.ackAck();
    }
    expect(peeked).toEqual([`${subjectFor("", "cancel")} from-outside`]);
    await expect(
      jsm.consumers.add(streamName("", "work"), {
        durable_name: "peek-work",
        ack_policy: AckPolicy.Explicit,
        filter_subject: subjectFor("", "running"),
      }),
    ).rejects.toThrow(/stream not found/);
  });

  it("keeps each fleet service to its own data subjects", async () => {
    // Requests come from the api (and outside systems); every stage may end a session, or meet
    // one that ended elsewhere with its event still owed (settleEnded), so each pays all three
    // terminal events: the api too, whose callback route ends sessions.
    const terminal = ["completed", "failed", "cancelled"] as const;
    const rights: Record<Exclude<Role, "outside">, readonly EventKind[]> = {
      api: ["requested", "cancel", ...terminal],
      spawner: ["running", "log", ...terminal],
      poller: ["log", ...terminal],
      // The watchdog also republishes session.running for a session whose watch lease lapsed.
      watchdog: ["running", ...terminal],
      // The model gateway publishes no event: it only asks the watching poller to log a model switch.
      gateway: [],
    };
    for (const [role, allowed] of Object.entries(rights) as Array<[Exclude<Role, "outside">, readonly EventKind[]]>) {
      const js = jetstream(await as(role), { timeout: 2_000 });
      for (const kind of Object.keys(EVENTS) as EventKind[]) {
        const body = validBody(kind, `rights-${role}`);
        const sent = js.publish(subjectFor("", kind, `rights-${role}`), JSON.stringify(body), {
          msgID: EVENTS[kind].msgId(body as never),
        });
        if (allowed.includes(kind)) await expect(sent, `${role} ${kind}`).resolves.toBeDefined();
        else await expect(sent, `${role} ${kind}`).rejects.toThrow(/Permissions Violation for Publish/);
      }
    }
  });

  it("lets the api and the gateway ask the poller for sandbox progress, and nobody else answer or ask", async () => {
    const [api, poller, outside] = [await srv.busAs("api"), await srv.busAs("poller"), await as("outside")];
    const gateway = await srv.busAs("gateway");
    try {
      const served = poller.serveProgress("s-1", async (p) => ({ ok: true, stored: p.lines.length, seq: 7 }));
      const msg = { v: SCHEMA_VERSION, sessionId: "s-1", attempt: 1, lines: [{ kind: "text" as const, line: "hi" }] };
      await eventually(
        async () => (await api.sendProgress(msg, 1_000).catch(() => undefined))?.ok === true,
        10_000,
        100,
      );
      expect(await api.sendProgress(msg, 1_000)).toEqual({ ok: true, stored: 1, seq: 7 });
      expect(await gateway.sendProgress(msg, 1_000)).toEqual({ ok: true, stored: 1, seq: 7 });
      // An outside system may neither ask nor listen on progress subjects.
      await expect(
        outside.request(progressSubject("", "s-1"), JSON.stringify(msg), { timeout: 1_000 }),
      ).rejects.toThrow();
      served.stop();
      // Once the server has the unsubscribe (a moment under load), nobody answers at all.
      await eventually(
        async () =>
          /no poller watches/.test(
            await api.sendProgress(msg, 1_000).then(
              () => "",
              (e: Error) => e.message,
            ),
          ),
        10_000,
        100,
      );
    } finally {
      await api.close();
      await poller.close();
      await gateway.close();
    }
  });
});

/** A body each kind's schema accepts, so that what a role may publish is also stored as a valid message. */
function validBody(kind: EventKind, sessionId: string): EventInput<EventKind> {
  const base = { v: SCHEMA_VERSION, sessionId, at: 1 } as const;
  const bodies: { [K in EventKind]: EventInput<K> } = {
    requested: { v: SCHEMA_VERSION, sessionId, projectId: "p", prompt: "x", requestedAt: 1 },
    running: { ...base, projectId: "p", sandboxId: "sb", agentSessionId: "a", attempt: 1 },
    log: logMessage(sessionId, 1, "x"),
    cancel: base,
    completed: { ...base, projectId: "p", response: "ok", toolCalls: 0 },
    failed: { ...base, projectId: "p", error: { code: "agent", message: "x" } },
    cancelled: { ...base, projectId: "p" },
  };
  return bodies[kind];
}
