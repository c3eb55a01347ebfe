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
import { FEED, feedStreamName, progressSubject, subjectFilter, type EventKind } from "../contracts/index.js";

/**
 * NATS users for the fleet, in two accounts. The services share the FLEET account, each user
 * allowed only the subjects it needs. The `outside` user (what another system gets) lives in the
 * OUTSIDE account, which holds of the fleet only what FLEET lends it: session.requested and
 * session.cancel as services (so the JetStream ack comes back), and session.completed,
 * session.failed, session.cancelled and session.log.> as streams, captured there by one stream, the
 * feed, on which the outside keeps its own consumers.
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
  const fleet = [
    `  ${FLEET_ACCOUNT}: {`,
    "    jetstream: enabled",
    `    users: ${list(
      userLines((u) => !isOutside(u)),
      "    ",
    )}`,
    `    exports: ${list([...REQUESTS.map((k) => `{ service: ${q(s(k))}, accounts: [${OUTSIDE_ACCOUNT}] }`), ...LENT.map((k) => `{ stream: ${q(s(k))}, accounts: [${OUTSIDE_ACCOUNT}] }`)], "    ")}`,
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
    `    imports: ${list([...REQUESTS.map((k) => `{ service: { account: ${FLEET_ACCOUNT}, subject: ${q(s(k))} } }`), ...LENT.map((k) => `{ stream: { account: ${FLEET_ACCOUNT}, subject: ${q(s(k))} } }`)], "    ")}`,
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
    subjects: FEED.kinds.map((k) => subjectFilter(namespace, k)),
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    no_ack: true,
    max_age: nanos(FEED.maxAgeMs),
    max_msgs_per_subject: FEED.maxMsgsPerSubject,
    max_msg_size: FEED.maxMsgBytes,
    duplicate_window: nanos(FEED.duplicateWindowMs),
  };
}

/**
 * Creates or updates the outside account's feed, through the FLEET account's import of its stream
 * API (`nc` is a fleet user's connection). Idempotent. Before it runs, outside systems can send
 * requests and subscribe, but keep no consumers.
 */
export async function provisionOutsideFeed(nc: NatsConnection, namespace = "", replicas = 1): Promise<void> {
  const jsm = await jetstreamManager(nc, { apiPrefix: FEED_API_PREFIX, checkAPI: false });
  const cfg = feedConfig(namespace, replicas);
  const exists = await jsm.streams.info(cfg.name).then(
    () => true,
    (err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return false;
      throw err;
    },
  );
  if (!exists) {
    try {
      await jsm.streams.add(cfg);
      return;
    } catch (err) {
      // Another caller created it between our info and add: bring it to this config instead.
      if (!(err instanceof JetStreamApiError)) throw err;
    }
  }
  await jsm.streams.update(cfg.name, cfg);
}
