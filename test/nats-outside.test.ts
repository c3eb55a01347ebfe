import { jetstream, jetstreamManager, type DeliveryInfo, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CONSUMERS,
  FEED,
  SCHEMA_VERSION,
  errorMessage,
  feedStreamName,
  streamName,
  subjectFilter,
  subjectFor,
  type ConsumerName,
  type EventKind,
  type StreamKey,
} from "../shared/src/index.js";
import { consumerName } from "../shared/src/bus/index.js";
import { progressSubject } from "../shared/src/contracts/index.js";
import { startAuthServer, type AuthServer } from "./support/auth-server.js";
import { eventually } from "./support/fixtures.js";
import { logMessage } from "./support/jetstream.js";

/**
 * What the `outside` NATS user (another system) must not do to the fleet, tried on a real server
 * configured by natsAuthConfig: each attempt is checked by its effect, read with a fleet user.
 */
const durables = (Object.keys(CONSUMERS) as ConsumerName[]).map((durable) => ({
  // The archiver runs in the poller's process, as the poller's user.
  role: durable === "archiver" ? ("poller" as const) : durable,
  name: consumerName("", durable),
  stream: streamName("", CONSUMERS[durable].stream),
  filter: subjectFilter("", CONSUMERS[durable].event),
  marker: `held-by-${durable}`,
}));
const fleetStreams = (["work", "events", "logs"] as StreamKey[]).map((k) => streamName("", k));
const ALL_KINDS: EventKind[] = ["requested", "cancel", "running", "log", "completed", "failed", "cancelled"];

/** What the server answered, or why nothing came back (permission violation, no responders, timeout). */
async function ask(nc: NatsConnection, subject: string, body: unknown = ""): Promise<string> {
  try {
    const m = await nc.request(subject, typeof body === "string" ? body : JSON.stringify(body), { timeout: 1_500 });
    return m.string();
  } catch (err) {
    return `refused: ${errorMessage(err)}`;
  }
}

/** A delivery's ack subject in both forms the server listens on (v1, and v2 with domain and account hash). */
function ackSubjects(i: DeliveryInfo): string[] {
  const tail = `${i.stream}.${i.consumer}.${i.deliveryCount}.${i.streamSequence}.${i.deliverySequence}.${i.timestampNanos}.${i.pending}`;
  return [`$JS.ACK.${tail}`, ...(i.account_hash ? [`$JS.ACK.${i.domain || "_"}.${i.account_hash}.${tail}`] : [])];
}

describe("the outside NATS role cannot reach the fleet's own consumers or subjects", () => {
  let srv: AuthServer;
  let outside: NatsConnection;
  let fleet: JetStreamManager;
  let viewer: { name: string; stop: () => void; next: Promise<IteratorResult<{ line: string }>> };
  const counts = async (): Promise<number[]> =>
    Promise.all(fleetStreams.map(async (s) => (await fleet.streams.info(s)).state.messages));

  beforeAll(async () => {
    srv = await startAuthServer("natsoutside");
    outside = await srv.as("outside");
    fleet = await jetstreamManager(await srv.as("spawner"));
    // One message waiting in each fleet durable, each carrying a marker.
    const api = await srv.busAs("api");
    await api.publish("requested", {
      v: SCHEMA_VERSION,
      sessionId: "held-by-spawner",
      projectId: "p",
      prompt: "x",
      requestedAt: 1,
    });
    await api.publish("cancel", { v: SCHEMA_VERSION, sessionId: "held-by-watchdog", at: 1 });
    await (await srv.busAs("spawner")).publish("running", {
      v: SCHEMA_VERSION,
      sessionId: "held-by-poller",
      projectId: "p",
      sandboxId: "sb",
      agentSessionId: "a",
      attempt: 1,
      at: 1,
    });
    await (await srv.busAs("poller")).publish("log", logMessage("held-by-archiver", 1, "held"));
    // The api follows a session's log for a viewer: an ordered consumer of the fleet on the log stream.
    const stop = new AbortController();
    const lines = api.followLogs("s-view", stop.signal)[Symbol.asyncIterator]();
    const next = lines.next();
    const name = await eventually(async () => {
      for await (const c of fleet.consumers.list(streamName("", "logs")))
        if (c.name !== consumerName("", "archiver")) return c.name;
      return undefined;
    });
    viewer = { name, stop: () => stop.abort(), next };
  }, 60_000);

  afterAll(async () => {
    viewer?.stop();
    await srv?.stop();
  });

  it("(a) cannot pull from a fleet durable, nor ack, nak or terminate what it holds", async () => {
    for (const d of durables) {
      const consumer = await jetstream(await srv.as(d.role)).consumers.get(d.stream, d.name);
      const held = await consumer.next({ expires: 3_000 });
      expect(held?.string(), d.name).toContain(d.marker);
      // Every delivery shows its ack subject; the outside user acting on it must change nothing.
      for (const subject of held ? ackSubjects(held.info) : [])
        for (const verb of ["+TERM", "+ACK", "-NAK"]) outside.publish(subject, verb);
      await outside.flush();
      held?.nak();
      const again = await consumer.next({ expires: 3_000 });
      expect(again?.string(), `${d.name} still holds its message`).toContain(d.marker);
      again?.nak();
      const pulled = await ask(outside, `$JS.API.CONSUMER.MSG.NEXT.${d.stream}.${d.name}`, { batch: 1, no_wait: true });
      expect(pulled, d.name).not.toContain(d.marker);
      const last = await consumer.next({ expires: 3_000 });
      expect(last?.string(), `${d.name} still holds its message after the pull`).toContain(d.marker);
      last?.nak();
    }
  });

  it("(b) cannot read the info of a fleet consumer or list the fleet's consumers", async () => {
    const targets = [...durables, { name: viewer.name, stream: streamName("", "logs") }];
    for (const t of targets) {
      expect(await ask(outside, `$JS.API.CONSUMER.INFO.${t.stream}.${t.name}`), t.name).not.toContain(`"${t.name}"`);
      for (const what of ["NAMES", "LIST"])
        expect(await ask(outside, `$JS.API.CONSUMER.${what}.${t.stream}`, {}), `${what} ${t.stream}`).not.toContain(
          `"${t.name}"`,
        );
    }
  });

  it("(c) cannot change a fleet durable's filter or any of its settings", async () => {
    for (const d of durables) {
      const before = (await fleet.consumers.info(d.stream, d.name)).config;
      for (const filter of [
        subjectFor("", "completed"),
        subjectFor("", "failed"),
        subjectFilter("", "log"),
        subjectFor("", "log", "x"),
        d.filter,
      ]) {
        const config = {
          durable_name: d.name,
          name: d.name,
          ack_policy: "explicit",
          deliver_policy: "all",
          filter_subject: filter,
          max_deliver: 1,
        };
        await ask(outside, `$JS.API.CONSUMER.CREATE.${d.stream}.${d.name}.${filter}`, {
          stream_name: d.stream,
          config,
          action: "update",
        });
        await ask(outside, `$JS.API.CONSUMER.CREATE.${d.stream}.${d.name}.${filter}`, {
          stream_name: d.stream,
          config,
        });
        await ask(outside, `$JS.API.CONSUMER.DURABLE.CREATE.${d.stream}.${d.name}`, { stream_name: d.stream, config });
      }
      expect((await fleet.consumers.info(d.stream, d.name)).config, d.name).toEqual(before);
    }
  });

  it("(d) cannot delete a fleet consumer", async () => {
    const targets = [...durables, { name: viewer.name, stream: streamName("", "logs") }];
    for (const t of targets) await ask(outside, `$JS.API.CONSUMER.DELETE.${t.stream}.${t.name}`);
    for (const t of targets) expect((await fleet.consumers.info(t.stream, t.name)).name, t.name).toBe(t.name);
    // The api's viewer still gets its session's lines.
    await (await srv.busAs("poller")).publish("log", logMessage("s-view", 1, "still here"));
    expect((await viewer.next).value?.line).toBe("still here");
  });

  it("(f) cannot publish on the fleet's subjects, and nothing it tries lands in a fleet stream", async () => {
    const before = await counts();
    const js = jetstream(outside, { timeout: 1_500 });
    // Everything but its two requests, session.requested and session.cancel.
    const requests: readonly EventKind[] = FEED.requests;
    for (const kind of ALL_KINDS.filter((k) => !requests.includes(k))) {
      const subject = subjectFor("", kind, "pushed");
      await expect(js.publish(subject, "{}"), kind).rejects.toThrow();
      outside.publish(subject, "{}");
    }
    outside.publish(progressSubject("", "s-view"), "{}");
    await outside.flush();
    await new Promise((r) => setTimeout(r, 500));
    expect(await counts()).toEqual(before);
  });

  it("(e) cannot make a push consumer deliver into a fleet subject", async () => {
    const before = await counts();
    const sources: Array<[string, string]> = [
      [streamName("", "events"), subjectFor("", "completed")],
      [streamName("", "events"), subjectFor("", "failed")],
      [streamName("", "logs"), subjectFilter("", "log")],
      [streamName("", "work"), subjectFor("", "requested")],
      // The outside's own stream: the server refuses deliveries into its subjects, its two requests among them.
      [feedStreamName(""), subjectFor("", "completed")],
      [feedStreamName(""), subjectFilter("", "log")],
    ];
    let n = 0;
    for (const [stream, filter] of sources) {
      for (const kind of ALL_KINDS) {
        n += 1;
        const name = `push-${n}`;
        const config = {
          name,
          ack_policy: "none",
          deliver_policy: "all",
          filter_subject: filter,
          deliver_subject: subjectFor("", kind, "pushed"),
        };
        await ask(outside, `$JS.API.CONSUMER.CREATE.${stream}.${name}.${filter}`, { stream_name: stream, config });
      }
    }
    // New events too, so that live deliveries would follow the replayed ones.
    const poller = await srv.busAs("poller");
    await poller.publish("completed", {
      v: SCHEMA_VERSION,
      sessionId: "s-push",
      projectId: "p",
      at: 1,
      response: "ok",
      toolCalls: 0,
    });
    await poller.publish("log", logMessage("s-push", 1, "x"));
    await new Promise((r) => setTimeout(r, 1_500));
    const [work, events, logs] = before as [number, number, number];
    expect(await counts()).toEqual([work, events + 1, logs + 1]);
  });

  it("(e) cannot use what the fleet lends its feed's sources: no consumer on a fleet stream, no delivery read", async () => {
    const before = await counts();
    const events = streamName("", "events");
    const filter = subjectFor("", "completed");
    // The feed's sources reach FLEET's consumer API under $JS.FLEET.API; a consumer made there could
    // deliver the fleet's events into its own work stream.
    const config = { name: "lent", ack_policy: "none", deliver_policy: "all", filter_subject: filter };
    for (const deliver of [subjectFor("", "requested", "x"), "_FEED.deliver.S.x"])
      for (const subject of [
        `$JS.FLEET.API.CONSUMER.CREATE.${events}.lent.${filter}`,
        `$JS.FLEET.API.CONSUMER.CREATE.${events}`,
      ])
        expect(
          await ask(outside, subject, { stream_name: events, config: { ...config, deliver_subject: deliver } }),
        ).toMatch(/^refused: .*[Pp]ermission/);
    const made: string[] = [];
    for await (const c of fleet.consumers.list(events)) made.push(c.name);
    expect(made).not.toContain("lent");
    // The sources' own deliveries are not for the outside user to read.
    const got: string[] = [];
    const refusals: string[] = [];
    const sub = outside.subscribe("_FEED.deliver.>", {
      callback: (err, m) => {
        if (err) refusals.push(err.message);
        else got.push(m.subject);
      },
    });
    await (await srv.busAs("poller")).publish("failed", {
      v: SCHEMA_VERSION,
      sessionId: "s-lent",
      projectId: "p",
      at: 1,
      error: { code: "internal", message: "x" },
    });
    await new Promise((r) => setTimeout(r, 1_000));
    sub.unsubscribe();
    expect(got).toEqual([]);
    expect(refusals.join()).toMatch(/[Pp]ermission/);
    // ... though the feed has it.
    const feed = await jetstreamManager(outside, { checkAPI: false });
    await eventually(
      async () => {
        const last = await feed.streams.getMessage(feedStreamName(""), { last_by_subj: subjectFor("", "failed") });
        return last?.json<{ sessionId: string }>().sessionId === "s-lent";
      },
      10_000,
      100,
    );
    const [work, eventsCount, logs] = before as [number, number, number];
    expect(await counts()).toEqual([work, eventsCount + 1, logs]);
  });

  it("(e) cannot reconfigure its feed to lift that guard, nor add a stream of its own", async () => {
    const feed = feedStreamName("");
    const jsm = await jetstreamManager(outside, { checkAPI: false });
    const before = (await jsm.streams.info(feed)).config;
    await ask(outside, `$JS.API.STREAM.UPDATE.${feed}`, { ...before, subjects: [subjectFor("", "completed")] });
    await ask(outside, `$JS.API.STREAM.DELETE.${feed}`);
    await ask(outside, "$JS.API.STREAM.CREATE.SIDE", { name: "SIDE", subjects: ["side.>"] });
    expect((await jsm.streams.info(feed)).config).toEqual(before);
    const names: string[] = [];
    for await (const n of jsm.streams.names()) names.push(n);
    expect(names).toEqual([feed]);
  });
});
