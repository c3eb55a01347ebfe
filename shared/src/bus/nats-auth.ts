import { randomBytes } from "node:crypto";
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type StreamConfig,
} from "@nats-io/jetstream";
import { nanos, type NatsConnection } from "@nats-io/transport-node";
import { defaultReplicas } from "./nats-bus.js";
import {
  EVENTS,
  FEED,
  feedStreamName,
  progressSubject,
  streamName,
  subjectFilter,
  type EventKind,
  type StreamKey,
} from "../contracts/index.js";

/**
 * NATS users for the fleet, in two accounts. The services share the FLEET account, each user
 * allowed only the subjects it needs. The `outside` user (what another system gets) lives in the
 * OUTSIDE account, which holds of the fleet only what FLEET lends it: session.requested and
 * session.cancel as services (so the JetStream ack comes back), and session.completed,
 * session.failed, session.cancelled and session.log.> as streams for live subscribers. The outside
 * keeps its own consumers on one stream of its account, the feed, which sources those subjects from
 * the fleet's events and logs streams (see feedSources).
 *
 * Why an account and not permissions in one account: permissions match whole subject tokens, so
 * they cannot tell an outside consumer from a fleet one by a name prefix, and a push consumer's
 * deliver subject is in the request body, where the server checks no permission (nats-server
 * 2.15 consumer.go checkConsumerCfg only refuses a deliver subject inside the consumer's own stream).
 * In its own account, whatever the outside creates can only see and deliver to that account's subjects.
 */
export type NatsRole = "api" | "spawner" | "poller" | "watchdog" | "gateway" | "outside";

export const FLEET_ACCOUNT = "FLEET";
export const OUTSIDE_ACCOUNT = "OUTSIDE";
/** Where fleet users reach the outside account's stream API, for the feed only (provisionOutsideFeed). */
export const FEED_API_PREFIX = "$JS.FEED.API";
/** What the fleet lends the outside account to read, and the requests it may send the fleet. */
const LENT: readonly EventKind[] = FEED.lent;
const REQUESTS: readonly EventKind[] = FEED.requests;
/** A stage that ends a session or meets an ended one pays its owed event (settleEnded), whatever its status. */
const TERMINAL: readonly EventKind[] = ["completed", "failed", "cancelled"];

/** Where the feed (in OUTSIDE) reaches FLEET's consumer API, for its sources only. */
export const FLEET_SOURCE_API_PREFIX = "$JS.FLEET.API";

/**
 * The feed's sources in FLEET: the fleet streams holding the lent kinds, and those kinds. The feed
 * copies them through consumers it keeps on those streams, resumed from the last sequence it
 * stored. A stream capturing the lent subjects as they are published (what the feed did before)
 * misses every message published while it has no leader: on a cluster, losing the node that leads
 * the feed lost the terminal events of that election to every outside consumer.
 */
function feedSources(namespace: string): Array<{ stream: string; filters: string[] }> {
  const keys = [...new Set(LENT.map((k) => EVENTS[k].stream as StreamKey))];
  return keys.map((key) => ({
    stream: streamName(namespace, key),
    filters: LENT.filter((k) => EVENTS[k].stream === key).map((k) => subjectFilter(namespace, k)),
  }));
}

/** The fleet streams the feed sources from. */
function sourcedStreams(namespace: string): string[] {
  return feedSources(namespace).map((s) => s.stream);
}

/** Where the feed's source consumers deliver (a FLEET subject lent to OUTSIDE only, no user may subscribe to it). */
function feedDeliverPrefix(namespace: string): string {
  return namespace ? `${namespace}._FEED.deliver` : "_FEED.deliver";
}

/**
 * What FLEET lends OUTSIDE so that the feed can source: consumer create and delete on the sourced
 * streams only (reached in OUTSIDE under FLEET_SOURCE_API_PREFIX, which no outside user may publish
 * to), the subjects those consumers deliver on, and flow-control replies. An outside user may
 * already publish on `$JS.FC.>` for its own consumers; what it sends there reaches FLEET too, where
 * a flow-control reply that names no stalled consumer of its subject is ignored.
 */
function feedSourcing(namespace: string) {
  const api = sourcedStreams(namespace).flatMap((stream) => [
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.*`,
  ]);
  return {
    services: [...api, "$JS.FC.>"],
    /** Where an import lands in OUTSIDE: the API under the feed's own prefix, flow control as it is. */
    localTo: (subject: string) =>
      subject.startsWith("$JS.API.") ? `${FLEET_SOURCE_API_PREFIX}.${subject.slice("$JS.API.".length)}` : subject,
    deliver: `${feedDeliverPrefix(namespace)}.>`,
  };
}

export interface NatsPermissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
}

export function rolePermissions(role: NatsRole, namespace = ""): NatsPermissions {
  const s = (k: EventKind) => subjectFilter(namespace, k);
  const inbox = "_INBOX.>";
  if (role === "outside") {
    const feed = feedStreamName(namespace);
    return {
      publish: {
        allow: [
          ...REQUESTS.map(s),
          "$JS.API.INFO",
          "$JS.API.STREAM.NAMES",
          "$JS.API.STREAM.LIST",
          `$JS.API.STREAM.INFO.${feed}`,
          `$JS.API.STREAM.MSG.GET.${feed}`,
          // Any consumer, named as it likes: its account has no stream but the feed. The feed's
          // own configuration is the fleet's to set (no stream create, update or delete here).
          "$JS.API.CONSUMER.>",
          "$JS.ACK.>",
          "$JS.FC.>",
        ],
      },
      subscribe: { allow: [inbox, ...LENT.map(s)] },
    };
  }
  // Sandbox progress: the api asks, the poller watching the session answers on the asker's inbox.
  const progress = progressSubject(namespace, "*");
  if (role === "gateway") {
    // The model gateway only asks the watching poller to log a model switch: no stream, no event.
    return { publish: { allow: [progress, "$JS.API.INFO"] }, subscribe: { allow: [inbox] } };
  }
  // Every stage may pay any terminal event: the api ends a session its sandbox completes through
  // the callback route, and a path that loses the race to end a session settles the winner's debt.
  const own: Record<Exclude<NatsRole, "outside" | "gateway">, readonly EventKind[]> = {
    api: ["requested", "cancel", ...TERMINAL],
    spawner: ["running", "log", ...TERMINAL],
    poller: ["log", ...TERMINAL],
    // session.running again for a session whose watch lease lapsed (docs/guarantees.md §9).
    watchdog: ["running", ...TERMINAL],
  };
  const extraPublish = role === "api" ? [progress] : role === "poller" ? [inbox] : [];
  const extraSubscribe = role === "poller" ? [progress] : [];
  return {
    publish: {
      allow: [...own[role].map(s), ...extraPublish, "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", `${FEED_API_PREFIX}.>`],
    },
    subscribe: { allow: [inbox, ...extraSubscribe, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"] },
  };
}

export interface NatsUser {
  role: NatsRole;
  user: string;
  password: string;
}

export function generateNatsUsers(
  roles: readonly NatsRole[] = ["api", "spawner", "poller", "watchdog", "gateway", "outside"],
): NatsUser[] {
  return roles.map((role) => ({ role, user: `fleet-${role}`, password: randomBytes(24).toString("base64url") }));
}

const q = (v: string): string => JSON.stringify(v);
const list = (xs: readonly string[], indent: string): string =>
  `[\n${xs.map((x) => `${indent}  ${x}`).join("\n")}\n${indent}]`;

/** The `accounts` block of a nats-server config for these users (JetStream must be on for the server). */
export function natsAuthConfig(users: readonly NatsUser[], namespace = ""): string {
  const s = (k: EventKind) => subjectFilter(namespace, k);
  const feedApi = ["CREATE", "UPDATE", "INFO"].map((op) => `STREAM.${op}.${feedStreamName(namespace)}`);
  const userLines = (inAccount: (u: NatsUser) => boolean) =>
    users.filter(inAccount).map((u) => {
      const p = rolePermissions(u.role, namespace);
      const allow = (xs: string[]) => `[${xs.map(q).join(", ")}]`;
      return `{ user: ${q(u.user)}, password: ${q(u.password)}, permissions: { publish: { allow: ${allow(p.publish.allow)} }, subscribe: { allow: ${allow(p.subscribe.allow)} } } }`;
    });
  const isOutside = (u: NatsUser) => u.role === "outside";
  const sourcing = feedSourcing(namespace);
  const fleet = [
    `  ${FLEET_ACCOUNT}: {`,
    "    jetstream: enabled",
    `    users: ${list(
      userLines((u) => !isOutside(u)),
      "    ",
    )}`,
    `    exports: ${list(
      [
        ...REQUESTS.map((k) => `{ service: ${q(s(k))}, accounts: [${OUTSIDE_ACCOUNT}] }`),
        ...LENT.map((k) => `{ stream: ${q(s(k))}, accounts: [${OUTSIDE_ACCOUNT}] }`),
        ...sourcing.services.map((x) => `{ service: ${q(x)}, accounts: [${OUTSIDE_ACCOUNT}] }`),
        `{ stream: ${q(sourcing.deliver)}, accounts: [${OUTSIDE_ACCOUNT}] }`,
      ],
      "    ",
    )}`,
    `    imports: ${list(
      feedApi.map(
        (a) =>
          `{ service: { account: ${OUTSIDE_ACCOUNT}, subject: ${q(`$JS.API.${a}`)} }, to: ${q(`${FEED_API_PREFIX}.${a}`)} }`,
      ),
      "    ",
    )}`,
    "  }",
  ];
  const outside = [
    `  ${OUTSIDE_ACCOUNT}: {`,
    // With a single stream in the account, no consumer can deliver into another stream of it (no loops).
    "    jetstream: { max_streams: 1 }",
    `    users: ${list(userLines(isOutside), "    ")}`,
    `    imports: ${list(
      [
        ...REQUESTS.map((k) => `{ service: { account: ${FLEET_ACCOUNT}, subject: ${q(s(k))} } }`),
        ...LENT.map((k) => `{ stream: { account: ${FLEET_ACCOUNT}, subject: ${q(s(k))} } }`),
        ...sourcing.services.map(
          (x) => `{ service: { account: ${FLEET_ACCOUNT}, subject: ${q(x)} }, to: ${q(sourcing.localTo(x))} }`,
        ),
        `{ stream: { account: ${FLEET_ACCOUNT}, subject: ${q(sourcing.deliver)} } }`,
      ],
      "    ",
    )}`,
    `    exports: ${list(
      feedApi.map((a) => `{ service: ${q(`$JS.API.${a}`)}, accounts: [${FLEET_ACCOUNT}] }`),
      "    ",
    )}`,
    "  }",
  ];
  return `accounts {\n${[...fleet, ...outside].join("\n")}\n}\n`;
}

function feedConfig(namespace: string, replicas: number): Partial<StreamConfig> & { name: string } {
  return {
    num_replicas: replicas,
    name: feedStreamName(namespace),
    description: FEED.description,
    subjects: REQUESTS.map((k) => subjectFilter(namespace, k)),
    // One source per fleet stream, all its lent subjects in one consumer, so the feed keeps that
    // stream's order (a session's log lines, and the terminal events, as the fleet published them).
    sources: feedSources(namespace).map(({ stream, filters }) => ({
      name: stream,
      ...(filters.length === 1
        ? { filter_subject: filters[0] }
        : { subject_transforms: filters.map((f) => ({ src: f, dest: f })) }),
      external: { api: FLEET_SOURCE_API_PREFIX, deliver: feedDeliverPrefix(namespace) },
    })),
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    no_ack: true,
    max_age: nanos(FEED.maxAgeMs),
    max_msgs_per_subject: FEED.maxMsgsPerSubject,
    duplicate_window: nanos(FEED.duplicateWindowMs),
  };
}

/**
 * Creates or updates the outside account's feed, through the FLEET account's import of its stream
 * API (`nc` is a fleet user's connection). Idempotent. Before it runs, outside systems can send
 * requests and subscribe, but keep no consumers. `replicas` defaults as the fleet's streams do: 3
 * on a cluster, 1 on a lone server.
 */
export async function provisionOutsideFeed(
  nc: NatsConnection,
  namespace = "",
  replicas = defaultReplicas(nc),
): Promise<void> {
  const jsm = await jetstreamManager(nc, { apiPrefix: FEED_API_PREFIX, checkAPI: false });
  const cfg = feedConfig(namespace, replicas);
  const current = await jsm.streams.info(cfg.name).then(
    (info) => info.config,
    (err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
      throw err;
    },
  );
  if (!current) {
    try {
      await jsm.streams.add(cfg);
      return;
    } catch (err) {
      // Another caller created it between our info and add: bring it to this config instead.
      if (!(err instanceof JetStreamApiError)) throw err;
    }
  } else if (!current.sources?.length) {
    // A feed that captured the lent subjects itself already holds what was published until now:
    // its sources start here, or outside consumers would get those events a second time.
    const now = new Date().toISOString();
    cfg.sources = cfg.sources?.map((src) => ({ ...src, opt_start_time: now }));
  }
  await jsm.streams.update(cfg.name, cfg);
}
