import type { z } from "zod";
import { LIMITS } from "./common.js";
import {
  SessionCancel,
  SessionCancelled,
  SessionCompleted,
  SessionFailed,
  SessionLog,
  SessionRequested,
  SessionRunning,
} from "./events.js";

/**
 * The bus contract: every subject, its stream, its schema and how its Nats-Msg-Id is formed.
 * Subjects are public (outside systems publish and subscribe to them); a namespace prefix exists
 * only so that tests and benchmarks can share one server without seeing each other.
 */
export type StreamKey = "work" | "events" | "logs";

export interface StreamSpec {
  key: StreamKey;
  /** Name without namespace. */
  name: string;
  description: string;
  retention: "workqueue" | "limits";
  maxAgeMs: number;
  maxMsgsPerSubject?: number;
  duplicateWindowMs: number;
}

export const STREAMS: Record<StreamKey, StreamSpec> = {
  work: {
    key: "work",
    name: "FLEET_WORK",
    description: "work for the stages: each message is taken by one instance of one stage",
    retention: "workqueue",
    maxAgeMs: 7 * 24 * 3600_000,
    duplicateWindowMs: 10 * 60_000,
  },
  events: {
    key: "events",
    name: "FLEET_EVENTS",
    description: "terminal events and cancel requests, readable by any number of durable consumers",
    retention: "limits",
    maxAgeMs: 7 * 24 * 3600_000,
    duplicateWindowMs: 10 * 60_000,
  },
  logs: {
    key: "logs",
    name: "FLEET_LOGS",
    description: "progress lines, one subject per session: where lines live first, archived to the store after",
    retention: "limits",
    // A line leaves the stream only by age, and it must not leave before the archiver stored it: 3 days
    // is the longest session (4 h deadline) plus 68 h of archiver lag (a store down over a weekend).
    maxAgeMs: 3 * 24 * 3600_000,
    // Twice the lines one session may write, so a whole session always fits (with room for lines
    // published again after a failed write), and nothing is discarded for count before it is archived.
    maxMsgsPerSubject: 2 * LIMITS.logLinesPerSession,
    duplicateWindowMs: 2 * 60_000,
  },
};

export interface EventSpec<S extends z.ZodType> {
  /** Subject without namespace; `*` stands for the session id (logs only). */
  subject: string;
  stream: StreamKey;
  schema: S;
  /** Nats-Msg-Id: the same logical message always gets the same id, so a retried publish is dropped. */
  msgId(msg: z.infer<S>): string;
  description: string;
}

function spec<S extends z.ZodType>(s: EventSpec<S>): EventSpec<S> {
  return s;
}

export const EVENTS = {
  requested: spec({
    subject: "session.requested",
    stream: "work",
    schema: SessionRequested,
    msgId: (m) => `requested:${m.sessionId}`,
    description: "run a prompt in a new sandbox (api or outside system -> spawner)",
  }),
  running: spec({
    subject: "session.running",
    stream: "work",
    schema: SessionRunning,
    // A republish after a lapsed watch lease is a new message: `running:<id>:<attempt>:<round>`.
    msgId: (m) => `running:${m.sessionId}:${m.attempt}${m.rewatch ? `:${m.rewatch}` : ""}`,
    description: "the agent has the prompt; watch it (spawner -> poller)",
  }),
  log: spec({
    subject: "session.log.*",
    stream: "logs",
    schema: SessionLog,
    msgId: (m) => `log:${m.sessionId}:${m.seq}`,
    description: "consecutive progress lines of one session, up to 64 (spawner, poller -> viewers)",
  }),
  cancel: spec({
    subject: "session.cancel",
    stream: "events",
    schema: SessionCancel,
    msgId: (m) => `cancel:${m.sessionId}`,
    description: "cancel a session (api or outside system -> watchdog); its end follows on session.cancelled",
  }),
  // The three terminal subjects share one id per session: within its duplicate window the stream
  // keeps one terminal event per session, whichever stage paid it and however often.
  completed: spec({
    subject: "session.completed",
    stream: "events",
    schema: SessionCompleted,
    msgId: (m) => `ended:${m.sessionId}`,
    description: "the session completed (terminal)",
  }),
  failed: spec({
    subject: "session.failed",
    stream: "events",
    schema: SessionFailed,
    msgId: (m) => `ended:${m.sessionId}`,
    description: "the session failed (terminal)",
  }),
  cancelled: spec({
    subject: "session.cancelled",
    stream: "events",
    schema: SessionCancelled,
    msgId: (m) => `ended:${m.sessionId}`,
    description: "the session was cancelled (terminal)",
  }),
} as const;

export type EventKind = keyof typeof EVENTS;
export type EventOf<K extends EventKind> = z.infer<(typeof EVENTS)[K]["schema"]>;
/** What a publisher may hand over: defaults (config, files) are filled in before it is sent. */
export type EventInput<K extends EventKind> = z.input<(typeof EVENTS)[K]["schema"]>;

/**
 * Durable pull consumers of the fleet's own stages. `maxDeliver` overrides the fleet's setting:
 * the archiver's lines are never given up on (-1, unlimited), since a line only waits for the store.
 * `held`: a message held for a session's whole life, with the short ack wait `heldAckWaitMs`.
 */
export const CONSUMERS = {
  spawner: { stream: "work", event: "requested" },
  poller: { stream: "work", event: "running", held: true },
  watchdog: { stream: "events", event: "cancel" },
  archiver: { stream: "logs", event: "log", maxDeliver: -1 },
} as const satisfies Record<string, { stream: StreamKey; event: EventKind; maxDeliver?: number; held?: boolean }>;
export type ConsumerName = keyof typeof CONSUMERS;

/** Subject of a message in a namespace; logs take the session id as their last token. */
export function subjectFor(namespace: string, kind: EventKind, sessionId?: string): string {
  const base = EVENTS[kind].subject;
  const concrete = base.endsWith(".*") ? `${base.slice(0, -1)}${sessionId ?? "*"}` : base;
  return namespace ? `${namespace}.${concrete}` : concrete;
}

/** The filter that covers all subjects of a kind (for logs: every session). */
export function subjectFilter(namespace: string, kind: EventKind): string {
  const base = EVENTS[kind].subject;
  const filter = base.endsWith(".*") ? `${base.slice(0, -1)}>` : base;
  return namespace ? `${namespace}.${filter}` : filter;
}

export function streamName(namespace: string, key: StreamKey): string {
  return namespacedStream(namespace, STREAMS[key].name);
}

function namespacedStream(namespace: string, base: string): string {
  return namespace ? `${namespace.toUpperCase().replace(/-/g, "_")}_${base}` : base;
}

/**
 * The one stream of the outside account (docs/bus.md, Authorization), where outside systems keep
 * their own consumers. It sources what the fleet lends that account (`lent`) from the fleet's own
 * streams, so it holds every such message even if it had no leader when it was published, and
 * captures the outside's own requests (`requests`): a push consumer may not deliver into its own
 * stream's subjects, so holding session.requested and session.cancel keeps every consumer of the
 * feed from delivering into the fleet. It never acks (a publisher's ack comes from the fleet's
 * stream), and one age and per-subject cap serve all: 7 days like the events, 100 000 per subject
 * like a session's log. It takes messages as large as the fleet's streams do: a sourced message
 * the feed refused would stop its source.
 */
const FEED_LENT = ["completed", "failed", "cancelled", "log"] as const satisfies readonly EventKind[];
const FEED_REQUESTS = ["requested", "cancel"] as const satisfies readonly EventKind[];

export const FEED = {
  name: "FLEET_FEED",
  description: "the fleet's events and logs for outside systems, and their own requests",
  lent: FEED_LENT,
  requests: FEED_REQUESTS,
  kinds: [...FEED_LENT, ...FEED_REQUESTS],
  maxAgeMs: STREAMS.events.maxAgeMs,
  maxMsgsPerSubject: 100_000,
  duplicateWindowMs: STREAMS.events.duplicateWindowMs,
} as const satisfies { kinds: readonly EventKind[] } & Record<string, unknown>;

export function feedStreamName(namespace: string): string {
  return namespacedStream(namespace, FEED.name);
}

export function streamSubjects(namespace: string, key: StreamKey): string[] {
  return (Object.keys(EVENTS) as EventKind[])
    .filter((k) => EVENTS[k].stream === key)
    .map((k) => subjectFilter(namespace, k));
}

export type ConsumerEvent<C extends ConsumerName> = EventOf<(typeof CONSUMERS)[C]["event"]>;

/** Where the poller watching a session answers progress requests (core NATS, no stream). */
export function progressSubject(namespace: string, sessionId: string): string {
  const subject = `session.progress.${sessionId}`;
  return namespace ? `${namespace}.${subject}` : subject;
}
