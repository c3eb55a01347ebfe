import { z } from "zod";
import {
  CONSUMERS,
  EVENTS,
  FEED,
  STREAMS,
  feedStreamName,
  streamName,
  subjectFilter,
  type EventKind,
} from "../contracts/index.js";
import { FLEET_ACCOUNT, OUTSIDE_ACCOUNT, rolePermissions, type NatsRole } from "./nats-auth.js";

/**
 * The bus as an AsyncAPI 3 document, generated from the zod catalog (subjects, streams, payloads,
 * Nats-Msg-Id) and the NATS users' rights (nats-auth.ts): served by the api at /asyncapi.json and
 * written to docs/asyncapi.json by `npm run schemas`. Operations are per role: what each user may
 * publish (send) and what each consumes or may read (receive). Production subjects (no namespace).
 */
const ROLES: readonly NatsRole[] = ["outside", "api", "spawner", "poller", "watchdog", "gateway"];
/** The stage whose durable consumer takes each kind (the archiver runs in the poller). */
const CONSUMED_BY: Partial<Record<EventKind, readonly NatsRole[]>> = {
  requested: ["spawner"],
  running: ["poller"],
  cancel: ["watchdog"],
  log: ["poller"],
};

const camel = (kind: EventKind): string => `session${kind[0]?.toUpperCase()}${kind.slice(1)}`;

/** The Nats-Msg-Id a kind's messages carry, as a template: the id function run on field names. */
function msgIdTemplate(kind: EventKind): string {
  const fields = new Proxy({}, { get: (_t, key) => `{${String(key)}}` });
  return (EVENTS[kind].msgId as (m: unknown) => string)(fields);
}

/** The NATS address of a kind; a log's last token is the session id, a channel parameter. */
function address(kind: EventKind): string {
  const subject = EVENTS[kind].subject;
  return subject.endsWith(".*") ? `${subject.slice(0, -1)}{sessionId}` : subject;
}

/** Whether NATS subject permissions `allowed` cover the subject filter `subject` (tokens, `*` and `>`). */
export function subjectAllowed(allowed: readonly string[], subject: string): boolean {
  const want = subject.split(".");
  return allowed.some((pattern) => {
    const have = pattern.split(".");
    for (let i = 0; i < have.length; i++) {
      if (have[i] === ">") return want.length > i;
      if (i >= want.length) return false;
      if (have[i] !== "*" && have[i] !== want[i]) return false;
      if (have[i] === "*" && want[i] === ">") return false;
    }
    return have.length === want.length;
  });
}

function payloadSchema(kind: EventKind): Record<string, unknown> {
  // draft-07, which AsyncAPI's default schema format extends; what a publisher may send (defaults optional).
  const { $schema: _drop, ...schema } = z.toJSONSchema(EVENTS[kind].schema, {
    io: "input",
    target: "draft-7",
    unrepresentable: "any",
  }) as Record<string, unknown>;
  return schema;
}

type Operation = {
  action: "send" | "receive";
  channel: { $ref: string };
  messages: Array<{ $ref: string }>;
  summary: string;
  security: Array<{ $ref: string }>;
  tags: Array<{ name: string }>;
};

export function asyncApiDocument(): Record<string, unknown> {
  const kinds = Object.keys(EVENTS) as EventKind[];
  const channels: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  for (const kind of kinds) {
    const e = EVENTS[kind];
    const s = STREAMS[e.stream];
    const id = camel(kind);
    messages[id] = {
      name: id,
      title: e.subject,
      summary: e.description,
      contentType: "application/json",
      headers: {
        type: "object",
        properties: {
          "Nats-Msg-Id": {
            type: "string",
            description: `JetStream deduplication id, the same for the same logical message: ${msgIdTemplate(kind)}`,
          },
          traceparent: { type: "string", description: "W3C trace context, carried through to the fleet's handlers" },
        },
        required: ["Nats-Msg-Id"],
      },
      payload: payloadSchema(kind),
    };
    const lentToOutside = (FEED.kinds as readonly EventKind[]).includes(kind);
    channels[id] = {
      address: address(kind),
      title: e.subject,
      description:
        `${e.description}. Stream ${streamName("", e.stream)} (${s.retention}, kept ${s.maxAgeMs / 3_600_000} h, ` +
        `duplicate window ${s.duplicateWindowMs / 1000} s)` +
        (lentToOutside ? `; in the outside account, also in its stream ${feedStreamName("")}.` : "."),
      messages: { [id]: { $ref: `#/components/messages/${id}` } },
      ...(kind === "log"
        ? { parameters: { sessionId: { description: "the session's id: one subject token per session" } } }
        : {}),
    };
  }
  const operations: Record<string, Operation> = {};
  const op = (role: NatsRole, action: "send" | "receive", kind: EventKind, summary: string) => {
    const id = camel(kind);
    operations[`${role}.${action}.${id}`] = {
      action,
      channel: { $ref: `#/channels/${id}` },
      messages: [{ $ref: `#/channels/${id}/messages/${id}` }],
      summary,
      security: [{ $ref: `#/components/securitySchemes/${role === "outside" ? "outside" : "fleet"}` }],
      tags: [{ name: role }],
    };
  };
  for (const role of ROLES) {
    const rights = rolePermissions(role);
    for (const kind of kinds) {
      const subject = subjectFilter("", kind);
      if (subjectAllowed(rights.publish.allow, subject)) op(role, "send", kind, `${role} may publish ${subject}`);
      const consumer = Object.entries(CONSUMERS).find(([, c]) => c.event === kind)?.[0];
      if (CONSUMED_BY[kind]?.includes(role) && consumer) {
        op(role, "receive", kind, `${role} consumes ${subject} (durable ${consumer})`);
      } else if (role === "outside" && subjectAllowed(rights.subscribe.allow, subject)) {
        op(role, "receive", kind, `outside may subscribe to ${subject} and read it from ${feedStreamName("")}`);
      }
    }
  }
  return {
    asyncapi: "3.0.0",
    info: {
      title: "session fleet bus",
      version: "1.0.0",
      description:
        "Subjects, streams and message bodies of the fleet's NATS JetStream bus: a public, versioned contract " +
        "(every body carries v). Publish with a JetStream publish and the Nats-Msg-Id shown per message. " +
        "Operations are tagged with the NATS user (role) allowed to do them; outside systems are the `outside` role.",
    },
    defaultContentType: "application/json",
    servers: {
      nats: {
        host: "127.0.0.1:4222",
        protocol: "nats",
        description: "any node of the fleet's NATS cluster (NATS_URL)",
        security: [{ $ref: "#/components/securitySchemes/fleet" }, { $ref: "#/components/securitySchemes/outside" }],
      },
    },
    channels,
    operations,
    components: {
      messages,
      securitySchemes: {
        fleet: {
          type: "userPassword",
          description: `the services' users (fleet-api, fleet-spawner, …) in account ${FLEET_ACCOUNT}, each allowed only its subjects`,
        },
        outside: {
          type: "userPassword",
          description: `the fleet-outside user in account ${OUTSIDE_ACCOUNT}: what another system gets`,
        },
      },
    },
  };
}
