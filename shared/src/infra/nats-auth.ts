import { randomBytes } from "node:crypto";
import { progressSubject, streamName, subjectFilter, subjectFor, type EventKind } from "../contracts/index.js";

/**
 * NATS users for the fleet, each allowed only the subjects it needs. Fleet services manage
 * streams and consumers (JetStream API) but publish only their own data subjects; the `outside`
 * user is what another system gets: publish session.requested, read session.log.>,
 * session.completed and session.failed through its own consumers, and nothing else.
 */
export type NatsRole = "api" | "spawner" | "poller" | "watchdog" | "outside";

export interface NatsPermissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
}

export function rolePermissions(role: NatsRole, namespace = ""): NatsPermissions {
  const s = (k: EventKind) => subjectFilter(namespace, k);
  const inbox = "_INBOX.>";
  if (role === "outside") {
    const logs = streamName(namespace, "logs");
    const events = streamName(namespace, "events");
    const readable = [s("completed"), s("failed")];
    return {
      publish: {
        allow: [
          s("requested"),
          "$JS.API.INFO",
          `$JS.API.STREAM.INFO.${logs}`,
          `$JS.API.STREAM.INFO.${events}`,
          // Consumers may be created only with a filter on what this user may read.
          `$JS.API.CONSUMER.CREATE.${logs}.*.${s("log")}`,
          `$JS.API.CONSUMER.CREATE.${logs}.*.${subjectFor(namespace, "log", "*")}`,
          ...readable.map((r) => `$JS.API.CONSUMER.CREATE.${events}.*.${r}`),
          `$JS.API.CONSUMER.INFO.${logs}.*`,
          `$JS.API.CONSUMER.INFO.${events}.*`,
          `$JS.API.CONSUMER.DELETE.${logs}.*`,
          `$JS.API.CONSUMER.DELETE.${events}.*`,
          `$JS.API.CONSUMER.MSG.NEXT.${logs}.*`,
          `$JS.API.CONSUMER.MSG.NEXT.${events}.*`,
          `$JS.ACK.${logs}.>`,
          `$JS.ACK.${events}.>`,
          "$JS.FC.>",
        ],
      },
      subscribe: { allow: [inbox, s("log"), ...readable] },
    };
  }
  const own: Record<Exclude<NatsRole, "outside">, EventKind[]> = {
    api: ["requested", "cancelled"],
    spawner: ["running", "log", "failed", "cancelled"],
    poller: ["log", "completed", "failed", "cancelled"],
    watchdog: ["failed", "cancelled", "completed"],
  };
  // Sandbox progress: the api asks, the poller watching the session answers on the asker's inbox.
  const progress = progressSubject(namespace, "*");
  const extraPublish = role === "api" ? [progress] : role === "poller" ? [inbox] : [];
  const extraSubscribe = role === "poller" ? [progress] : [];
  return {
    publish: { allow: [...own[role].map(s), ...extraPublish, "$JS.API.>", "$JS.ACK.>", "$JS.FC.>"] },
    subscribe: { allow: [inbox, ...extraSubscribe, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"] },
  };
}

export interface NatsUser {
  role: NatsRole;
  user: string;
  password: string;
}

export function generateNatsUsers(roles: readonly NatsRole[] = ["api", "spawner", "poller", "watchdog", "outside"]): NatsUser[] {
  return roles.map((role) => ({ role, user: `fleet-${role}`, password: randomBytes(24).toString("base64url") }));
}

const q = (v: string): string => JSON.stringify(v);

/** The `authorization` block of a nats-server config for these users. */
export function natsAuthConfig(users: readonly NatsUser[], namespace = ""): string {
  const lines = users.map((u) => {
    const p = rolePermissions(u.role, namespace);
    const list = (xs: string[]) => `[${xs.map(q).join(", ")}]`;
    return `    { user: ${q(u.user)}, password: ${q(u.password)}, permissions: { publish: { allow: ${list(p.publish.allow)} }, subscribe: { allow: ${list(p.subscribe.allow)} } } }`;
  });
  return `authorization {\n  users: [\n${lines.join(",\n")}\n  ]\n}\n`;
}
