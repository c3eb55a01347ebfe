import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { inject } from "vitest";
import {
  LOG_SCHEMA_VERSION,
  streamName,
  subjectFor,
  type LogEntry,
  type SessionLog,
  type StreamKey,
} from "../../shared/src/index.js";

/** A session.log message as a writer publishes it: consecutive lines from `seq` (a plain string is a tool line). */
export function logMessage(sessionId: string, seq: number, ...lines: Array<string | LogEntry>): SessionLog {
  return {
    v: LOG_SCHEMA_VERSION,
    sessionId,
    seq,
    at: Date.now(),
    lines: lines.map((l) => (typeof l === "string" ? { kind: "tool", line: l } : l)),
  };
}

export interface ConsumerState {
  name: string;
  /** Pull requests the server holds for it: > 0 while some client is still pulling. */
  waiting: number;
}

/** The consumers the server has on one of the namespace's streams, read with a JetStream manager of the test's own. */
export async function streamConsumers(namespace: string, stream: StreamKey): Promise<ConsumerState[]> {
  const nc = await connect({ servers: inject("natsUrl") });
  try {
    const jsm = await jetstreamManager(nc);
    const out: ConsumerState[] = [];
    for await (const ci of jsm.consumers.list(streamName(namespace, stream)))
      out.push({ name: ci.name, waiting: ci.num_waiting });
    return out;
  } finally {
    await nc.close();
  }
}

/** How many messages the namespace's log stream holds for one session (every copy, duplicates included). */
export async function logMessages(namespace: string, sessionId: string): Promise<number> {
  const nc = await connect({ servers: inject("natsUrl") });
  try {
    const jsm = await jetstreamManager(nc);
    const subject = subjectFor(namespace, "log", sessionId);
    const info = await jsm.streams.info(streamName(namespace, "logs"), { subjects_filter: subject });
    return info.state.subjects?.[subject] ?? 0;
  } finally {
    await nc.close();
  }
}

/** Removes a session's oldest lines from the log stream, keeping the newest `keep`: what retention does to old lines. */
export async function expireOldestLines(namespace: string, sessionId: string, keep: number): Promise<void> {
  const nc = await connect({ servers: inject("natsUrl") });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(streamName(namespace, "logs"), { filter: subjectFor(namespace, "log", sessionId), keep });
  } finally {
    await nc.close();
  }
}

/** The kinds of terminal event (completed, failed, cancelled) the namespace's events stream holds for one session, in order. */
export async function terminalEvents(namespace: string, sessionId: string): Promise<string[]> {
  const nc = await connect({ servers: inject("natsUrl") });
  try {
    const consumer = await jetstream(nc).consumers.get(streamName(namespace, "events"), {
      filter_subjects: (["completed", "failed", "cancelled"] as const).map((k) => subjectFor(namespace, k)),
      deliver_policy: DeliverPolicy.All,
    });
    const seen: string[] = [];
    for (let m = await consumer.next({ expires: 1_000 }); m; m = await consumer.next({ expires: 1_000 }))
      if (m.json<{ sessionId: string }>().sessionId === sessionId) seen.push(m.subject.split(".").at(-1) ?? m.subject);
    return seen;
  } finally {
    await nc.close();
  }
}
