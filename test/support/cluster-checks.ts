import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, expect } from "vitest";
import {
  SCHEMA_VERSION,
  SessionLog,
  connectBus,
  feedStreamName,
  streamName,
  subjectFilter,
  subjectFor,
  type Bus,
  type MongoSessionStore,
  type Session,
} from "../../shared/src/index.js";
import { eventually, logger, sleep } from "./fixtures.js";
import type { TestFleet } from "./fleet.js";
import { api, readSse } from "./fleet.js";
import { type FleetFixture, useTestFleet } from "./fleet-fixture.js";
import type { ServiceName } from "../../devtools/src/infra/index.js";
import type { SimulatedSandboxProvider } from "../../devtools/src/simulated/index.js";
import { startTestCluster, type TestCluster } from "./nats-cluster.js";

const TERMINAL = ["completed", "failed", "cancelled"] as const;

/**
 * Sessions submitted the way clients do while nodes come and go: over HTTP (to any of the api
 * instances) and straight on the bus as the outside user. A submission is retried with the same id
 * until it is accepted (2xx, or a JetStream ack); every accepted id must then be served.
 */
export class Workload {
  readonly accepted: string[] = [];
  /** Submissions that failed before one was accepted (the node or the api was away). */
  retries = 0;
  /** Why submissions failed (over HTTP or on the bus), with how often and when each reason was last seen. */
  readonly failures = new Map<string, { count: number; lastAt: number }>();

  private failed(why: string): void {
    this.retries++;
    const key = why.replace(/[0-9]+/g, "N").slice(0, 200);
    const seen = this.failures.get(key) ?? { count: 0, lastAt: 0 };
    this.failures.set(key, { count: seen.count + 1, lastAt: Date.now() });
  }
  private readonly followers: Array<Promise<{ id: string; seqs: number[]; end: string }>> = [];

  constructor(
    private readonly fleet: TestFleet,
    private readonly apiUrls: () => string[],
    private readonly bus: Bus,
    private readonly projectId: string,
  ) {}

  static async open(fleet: TestFleet, cluster: TestCluster, projectId: string, apiUrls?: () => string[]) {
    const outside = cluster.users.find((u) => u.role === "outside");
    const bus = await connectBus(
      {
        servers: cluster.url,
        namespace: fleet.namespace,
        name: "outside-submitter",
        ...(outside ? { user: outside.user, pass: outside.password } : {}),
      },
      { logger },
    );
    return new Workload(fleet, apiUrls ?? (() => [fleet.apiUrl]), bus, projectId);
  }

  async viaHttp(id: string, follow = false): Promise<void> {
    const body = { sessionId: id, projectId: this.projectId, prompt: `cluster ${id}` };
    // Retried as a client should: backing off, and after a 429 not before its Retry-After.
    const until = Date.now() + 90_000;
    for (let wait = 250; ; wait = Math.min(wait * 2, 2_000)) {
      const urls = this.apiUrls();
      const url = urls[(this.accepted.length + this.retries) % urls.length] as string;
      const r = await api({ apiUrl: url, apiKey: this.fleet.apiKey }, "POST", "/v1/sessions", body).catch(
        (err: unknown) => (err instanceof Error ? err.message : String(err)),
      );
      if (typeof r !== "string" && r.status >= 200 && r.status < 300) break;
      this.failed(`http: ${typeof r === "string" ? r : `${r.status} ${JSON.stringify(r.body)}`}`);
      if (Date.now() > until) throw new Error(`${id} was not accepted over HTTP within 90 s`);
      const retryAfter = typeof r === "string" ? 0 : Number(r.headers.get("retry-after") ?? 0);
      await sleep(Math.max(wait, retryAfter * 1_000));
    }
    this.accepted.push(id);
    if (follow) this.follow(id);
  }

  async viaBus(id: string): Promise<void> {
    await eventually(
      async () => {
        try {
          await this.bus.publish("requested", {
            v: SCHEMA_VERSION,
            sessionId: id,
            projectId: this.projectId,
            prompt: `cluster ${id}`,
            requestedAt: Date.now(),
          });
          return true;
        } catch (err) {
          this.failed(`bus: ${err instanceof Error ? err.message : String(err)}`);
          return false;
        }
      },
      90_000,
      250,
    );
    this.accepted.push(id);
  }

  /** A live follower of the session's log over SSE, from its first line to its end. */
  follow(id: string): void {
    this.followers.push(
      readSse(this.fleet, id).then(({ lines, end }) => ({ id, seqs: lines.map((l) => l.seq), end: end.status })),
    );
  }

  /** `count` submissions, alternating HTTP and bus, one every `everyMs`; every third HTTP one followed live. */
  async run(prefix: string, count: number, everyMs: number): Promise<void> {
    const pending: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const id = `${prefix}-${i}`;
      pending.push(i % 2 === 0 ? this.viaHttp(id, i % 6 === 0) : this.viaBus(id));
      await sleep(everyMs);
    }
    await Promise.all(pending);
  }

  followed() {
    return Promise.all(this.followers);
  }

  close(): Promise<void> {
    return this.bus.close();
  }
}

/** An outside system's durable consumer of terminal events on the feed: what it received, by session. */
export class OutsideConsumer {
  /** Stream sequences received per session (a redelivery of the same sequence counts once). */
  readonly seen = new Map<string, Set<number>>();
  deliveries = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly namespace: string,
  ) {}

  async start(durable: string): Promise<void> {
    const feed = feedStreamName(this.namespace);
    const jsm = await jetstreamManager(this.nc, { timeout: 5_000 });
    await jsm.consumers.add(feed, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subjects: TERMINAL.map((k) => subjectFilter(this.namespace, k)),
      ack_wait: 5_000_000_000,
    });
    const js = jetstream(this.nc, { timeout: 5_000 });
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          const consumer = await js.consumers.get(feed, durable);
          const batch = await consumer.fetch({ max_messages: 100, expires: 1_000 });
          for await (const m of batch) {
            this.deliveries++;
            const id = m.json<{ sessionId: string }>().sessionId;
            const seqs = this.seen.get(id) ?? new Set<number>();
            seqs.add(m.seq);
            this.seen.set(id, seqs);
            await m.ackAck().catch(() => undefined);
          }
        } catch {
          // The consumer's leader is away or being elected: ask again.
          await sleep(250);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** A read of a stream through its leader, asked again while the stream elects one (up to a minute). */
async function settledRead<T>(read: () => Promise<T>): Promise<T> {
  let last: unknown;
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    try {
      return await read();
    } catch (err) {
      last = err;
      await sleep(500);
    }
  }
  throw last;
}

/** Every terminal event in the fleet's events stream, by session (read by an ordered consumer of a fleet user). */
export async function terminalEvents(nc: NatsConnection, namespace: string): Promise<Map<string, string[]>> {
  const consumer = await jetstream(nc).consumers.get(streamName(namespace, "events"), {
    filter_subjects: TERMINAL.map((k) => subjectFor(namespace, k)),
    deliver_policy: DeliverPolicy.All,
  });
  const out = new Map<string, string[]>();
  for (let m = await consumer.next({ expires: 2_000 }); m; m = await consumer.next({ expires: 2_000 })) {
    const id = m.json<{ sessionId: string }>().sessionId;
    out.set(id, [...(out.get(id) ?? []), m.subject]);
  }
  return out;
}

/** How many copies of the session's log lines the log stream holds: the lines of every message on its subject. */
export async function streamedLines(nc: NatsConnection, namespace: string, id: string): Promise<number> {
  const subject = subjectFor(namespace, "log", id);
  const stream = streamName(namespace, "logs");
  const info = await (await jetstreamManager(nc)).streams.info(stream, { subjects_filter: subject });
  const messages = info.state.subjects?.[subject] ?? 0;
  if (messages === 0) return 0;
  const consumer = await jetstream(nc, { timeout: 5_000 }).consumers.get(stream, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.All,
  });
  let lines = 0;
  for (let read = 0; read < messages; read++) {
    const m = await consumer.next({ expires: 5_000 });
    if (!m) throw new Error(`the log of ${id} was read to message ${read} of ${messages}`);
    lines += SessionLog.parse(m.json()).lines.length;
  }
  await consumer.delete().catch(() => undefined);
  return lines;
}

/**
 * What the fleet promises, checked for every accepted session: it completed, once; one terminal
 * event in the fleet's stream and one at the outside consumer; its log lines each once, in order,
 * in the stream, in the store and at its live follower.
 */
export async function expectServedOnce(opts: {
  ids: readonly string[];
  get: (id: string) => Promise<Session>;
  store: MongoSessionStore;
  nc: NatsConnection;
  namespace: string;
  outside: OutsideConsumer;
  followed: Array<{ id: string; seqs: number[]; end: string }>;
  minLines: number;
}): Promise<void> {
  const ended = await Promise.all(
    opts.ids.map((id) =>
      eventually(
        async () => {
          const s = await opts.get(id);
          return (TERMINAL as readonly string[]).includes(s.status) ? s : undefined;
        },
        120_000,
        200,
      ),
    ),
  );
  for (const s of ended) expect(s.status, `${s.id}: ${s.error?.message ?? ""}`).toBe("completed");
  // The checks read the streams through their leaders, which a restarted node may still be moving:
  // a read that meets an election ("no responders", a timeout) is asked again.
  const events = await settledRead(() => terminalEvents(opts.nc, opts.namespace));
  for (const id of opts.ids) expect(events.get(id), `terminal events of ${id}`).toHaveLength(1);
  await eventually(() => opts.ids.every((id) => opts.outside.seen.has(id)), 120_000, 200);
  for (const id of opts.ids) expect(opts.outside.seen.get(id)?.size, `outside events of ${id}`).toBe(1);
  for (const id of opts.ids) {
    const inStream = await settledRead(() => streamedLines(opts.nc, opts.namespace, id));
    expect(inStream, `log lines of ${id} in the stream`).toBeGreaterThanOrEqual(opts.minLines);
    const stored = await eventually(
      async () => {
        const lines = await opts.store.logs(id, { limit: 10_000 });
        return lines.length >= inStream ? lines : undefined;
      },
      120_000,
      250,
    );
    expect(
      stored.map((l) => l.seq),
      `stored lines of ${id}`,
    ).toEqual(Array.from({ length: inStream }, (_, i) => i + 1));
  }
  for (const f of opts.followed) {
    expect(f.end, `follower of ${f.id}`).toBe("completed");
    expect(f.seqs, `lines at the follower of ${f.id}`).toEqual(
      Array.from({ length: await settledRead(() => streamedLines(opts.nc, opts.namespace, f.id)) }, (_, i) => i + 1),
    );
  }
}

/** Log lines each simulated agent of the cluster tests writes. */
export const CLUSTER_EVENTS = 8;

export interface ClusterFleet {
  readonly fleet: FleetFixture<SimulatedSandboxProvider>;
  readonly cluster: TestCluster;
  /** A connection to the cluster with the fleet's own rights, for checks. */
  readonly admin: NatsConnection;
  /** A durable consumer of the outside feed, started before any session. */
  readonly outside: OutsideConsumer;
  /** expectServedOnce for the workload's accepted sessions and followers. */
  servedOnce(work: Workload): Promise<void>;
}

/**
 * A fleet of simulated sandboxes on a three-node cluster of the file's own (replicas 3), with an
 * outside consumer of terminal events: what every cluster test starts from.
 */
export function useClusterFleet(
  prefix: string,
  options: { env?: Record<string, string>; services: Array<[ServiceName, Record<string, string>?]> },
): ClusterFleet {
  let cluster: TestCluster | undefined;
  let admin: NatsConnection | undefined;
  let outside: OutsideConsumer | undefined;
  const fleet = useTestFleet({
    prefix,
    simulated: true,
    timeoutMs: 180_000,
    infra: async (namespace) => {
      cluster = await startTestCluster(prefix, { namespace });
      return { natsUrl: cluster.url, natsUsers: cluster.users };
    },
    env: {
      FLEET_SIM_EVENTS: String(CLUSTER_EVENTS),
      FLEET_SIM_EVENT_MS: "250",
      FLEET_MAX_SANDBOXES: "0",
      FLEET_ACK_WAIT_MS: "5000",
      FLEET_WATCH_ACK_WAIT_MS: "4000",
      POLLER_STATUS_INTERVAL_MS: "500",
      WATCHDOG_INTERVAL_MS: "500",
      REAPER_INTERVAL_MS: "1000",
      // Submissions retried through a fault are not what these tests limit (the default is 60 a minute per key).
      API_SUBMITS_PER_MINUTE: "100000",
      ...options.env,
    },
    services: options.services,
    store: true,
    teardown: () => cluster?.stop(),
  });
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the cluster fleet has no ${what} yet (used before its beforeAll)`);
    return value;
  };
  beforeAll(async () => {
    const c = started(cluster, "cluster");
    admin = await c.as("spawner");
    outside = new OutsideConsumer(await c.as("outside"), fleet.namespace);
    await outside.start("outside-terminal");
  });
  afterAll(async () => {
    await outside?.stop();
  });
  const self: ClusterFleet = {
    fleet,
    get cluster() {
      return started(cluster, "cluster");
    },
    get admin() {
      return started(admin, "admin connection");
    },
    get outside() {
      return started(outside, "outside consumer");
    },
    servedOnce: async (work) =>
      expectServedOnce({
        ids: work.accepted,
        get: fleet.get,
        store: fleet.store,
        nc: self.admin,
        namespace: fleet.namespace,
        outside: self.outside,
        followed: await work.followed(),
        minLines: CLUSTER_EVENTS,
      }),
  };
  return self;
}
