import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FleetApiError,
  FleetBusClient,
  FleetHttpClient,
  FleetUnreachable,
  type FollowEvent,
  type LogEventData,
} from "../client/src/index.js";
import { generateNatsUsers, type NatsUser } from "../shared/src/bus/index.js";
import { streamName } from "../shared/src/index.js";
import { startAuthServer, type AuthServer } from "./support/auth-server.js";
import { useTestFleet } from "./support/fleet-fixture.js";

async function collect(events: AsyncIterable<FollowEvent>): Promise<{ lines: LogEventData[]; end?: FollowEvent }> {
  const lines: LogEventData[] = [];
  for await (const e of events) {
    if (e.type === "end") return { lines, end: e };
    lines.push(e.line);
  }
  return { lines };
}

/**
 * The typed client as an outside system uses it, against the whole fleet as processes (simulated
 * sandboxes and agents) on a nats-server with the launcher's accounts: over HTTP with an API key,
 * and over the bus as the outside role, reading its own feed.
 */
describe("the client package, against a real fleet over HTTP and over the bus", () => {
  let srv: AuthServer;
  let outside: NatsConnection;
  const users = generateNatsUsers();
  const role = (r: NatsUser["role"]): Record<string, string> => {
    const u = users.find((x) => x.role === r) as NatsUser;
    return { NATS_USER: u.user, NATS_PASSWORD: u.password };
  };
  const fleet = useTestFleet({
    prefix: "cli",
    simulated: true,
    infra: async (ns) => {
      srv = await startAuthServer("client", ns, users);
      outside = await srv.as("outside");
      return { natsUrl: srv.url };
    },
    teardown: () => srv?.stop(),
    // Ten events 150 ms apart: long enough to cancel one mid-run and to follow lines as they come.
    env: { FLEET_SIM_EVENTS: "10", FLEET_SIM_EVENT_MS: "150", WATCHDOG_INTERVAL_MS: "300" },
    services: [
      ["api", role("api")],
      ["spawner", role("spawner")],
      ["poller", role("poller")],
      ["watchdog", role("watchdog")],
    ],
  });
  const http = () => new FleetHttpClient({ baseUrl: fleet.apiUrl, apiKey: fleet.apiKey, reconnectMs: 100 });
  const bus = () => new FleetBusClient({ nc: outside, namespace: fleet.namespace });

  it("submits idempotently, follows the log live to its end, resumes after a seq, and reads the result", async () => {
    const client = http();
    const first = await client.submit({ projectId: "p-cli", prompt: "hello" }, { idempotencyKey: "cli-1" });
    const again = await client.submit({ projectId: "p-cli", prompt: "hello" }, { idempotencyKey: "cli-1" });
    expect(again.sessionId).toBe(first.sessionId);

    const { lines, end } = await collect(client.follow(first.sessionId));
    expect(end).toMatchObject({ type: "end", end: { status: "completed", lastSeq: lines.length } });
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));

    const resumed = await collect(client.follow(first.sessionId, { afterSeq: 3 }));
    expect(resumed.lines).toEqual(lines.slice(3));

    const session = await client.waitForEnd(first.sessionId);
    expect(session).toMatchObject({ id: first.sessionId, projectId: "p-cli", status: "completed" });
    expect((await client.logs(first.sessionId, { afterSeq: 1, limit: 2 })).map((l) => l.seq)).toEqual([2, 3]);
    expect((await client.metrics(first.sessionId)).counts.logLines).toBe(lines.length);
    expect((await client.details(first.sessionId)).session.id).toBe(first.sessionId);

    const listed: string[] = [];
    for await (const s of client.listAll({ projectId: "p-cli", pageSize: 1 })) listed.push(s.id);
    expect(listed).toEqual([first.sessionId]);
  });

  it("cancels a running session and says so; refusals carry the api's status and code", async () => {
    const client = http();
    const { sessionId } = await client.submit({ projectId: "p-cancel", prompt: "cancel me" });
    await client.cancel(sessionId, "changed my mind");
    expect(await client.waitForEnd(sessionId, { pollMs: 100 })).toMatchObject({ status: "cancelled" });

    await expect(client.get("no-such-session")).rejects.toMatchObject({ status: 404, code: "not_found" });
    const stranger = new FleetHttpClient({ baseUrl: fleet.apiUrl, apiKey: "fk_nobody_nothing" });
    const refused = await stranger.get(sessionId).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FleetApiError);
    expect(refused).toMatchObject({ status: 401 });
    // Bad input is refused by the contract before anything is sent.
    await expect(client.submit({ projectId: "has spaces", prompt: "" })).rejects.toThrow(/projectId|prompt/);
  });

  it("over the bus: a request published twice is one session, its lines come from the feed once each, and its end arrives", async () => {
    const client = bus();
    const sessionId = `bus-${Date.now().toString(36)}`;
    const sent = await client.submit({ sessionId, projectId: "p-bus", prompt: "over the bus" });
    expect(sent.duplicate).toBe(false);
    expect((await client.submit({ sessionId, projectId: "p-bus", prompt: "over the bus" })).duplicate).toBe(true);

    const stop = new AbortController();
    const lines: number[] = [];
    const following = (async () => {
      for await (const line of client.follow(sessionId, { signal: stop.signal })) lines.push(line.seq);
    })();
    const end = await client.awaitEnd(sessionId, { since: sent.requestedAt });
    expect(end).toMatchObject({ status: "completed", event: { sessionId, projectId: "p-bus" } });

    const stored = await http().logs(sessionId);
    // The feed copies lines as they are published: wait until every stored line came, then stop.
    await expect.poll(() => lines.length, { timeout: 10_000 }).toBe(stored.length);
    stop.abort();
    await following;
    expect(lines).toEqual(stored.map((l) => l.seq));
  });
});

/**
 * A request the fleet's own stream did not confirm is not accepted, whatever else answered (on a
 * cluster the outside feed may answer while the fleet's stream has no leader). Shown here with the
 * fleet's work stream removed on a server of the test's own: nothing confirms.
 */
describe("the bus client takes only the fleet's own stream's ack", () => {
  let srv: AuthServer;
  beforeAll(async () => {
    srv = await startAuthServer("client-ack");
  }, 60_000);
  afterAll(() => srv?.stop());

  it("reports a request the fleet's stream did not confirm as not accepted", async () => {
    const client = new FleetBusClient({ nc: await srv.as("outside") });
    const accepted = await client.submit({ sessionId: "ack-1", projectId: "p", prompt: "x" });
    expect(accepted.duplicate).toBe(false);
    const jsm = await jetstreamManager(await srv.as("spawner"));
    await jsm.streams.delete(streamName("", "work"));
    const refused = await client.submit({ sessionId: "ack-2", projectId: "p", prompt: "x" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(FleetUnreachable);
    expect(String(refused)).toContain("did not confirm requested:ack-2");
  }, 30_000);
});
