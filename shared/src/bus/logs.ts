import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type StoredMsg,
} from "@nats-io/jetstream";
import { STREAMS, SessionLog, lastSeqOf, logLines, streamName, subjectFor, type LogLine } from "../contracts/index.js";
import { FleetError, errorMessage } from "../errors/index.js";
import type { ArchiveBacklog } from "./port.js";

/** The log stream as one namespace sees it. */
export interface LogStream {
  js: JetStreamClient;
  jsm: JetStreamManager;
  namespace: string;
}

/** A read that found no end of the subject's lines within this long gives up (lines deleted under it). */
const READ_EXPIRES_MS = 5_000;

const unavailable = (what: string, err: unknown): FleetError =>
  new FleetError("bus_unavailable", `${what}: ${errorMessage(err)}`, { retryable: true, cause: err });

/** The stored message at `query`, or null when the stream holds none there. Reads go to the stream's leader. */
async function storedMessage(
  ls: LogStream,
  query: { seq: number } | { last_by_subj: string },
): Promise<StoredMsg | null> {
  try {
    return await ls.jsm.streams.getMessage(streamName(ls.namespace, "logs"), query);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
    throw unavailable("cannot read the log stream", err);
  }
}

/**
 * One session's lines from the first, then live as they come: an ordered consumer (no ack, no
 * durable state) on the session's subject, deleted when the follow ends.
 */
export async function* followLogs(ls: LogStream, sessionId: string, signal: AbortSignal): AsyncIterable<LogLine> {
  if (signal.aborted) return;
  const consumer = await ls.js.consumers.get(streamName(ls.namespace, "logs"), {
    // A single filter (not a list) puts it in the create subject, where NATS permissions can check it.
    filter_subjects: subjectFor(ls.namespace, "log", sessionId),
    deliver_policy: DeliverPolicy.All,
    // A follower whose process died leaves its consumer for 30 s, not the server's 5 minutes.
    inactive_threshold: 30_000,
  });
  const messages = await consumer.consume();
  const stop = (): void => void messages.stop();
  signal.addEventListener("abort", stop, { once: true });
  // An abort that came while the consumer was being made found no listener.
  if (signal.aborted) stop();
  try {
    for await (const m of messages) {
      const parsed = SessionLog.safeParse(m.json());
      // A message that breaks the contract is not shown.
      if (parsed.success) yield* logLines(parsed.data);
    }
  } finally {
    signal.removeEventListener("abort", stop);
    stop();
    // Gone at once: nothing keeps a server-side consumer for a follower that left.
    await consumer.delete().catch(() => undefined);
  }
}

export async function lastLogSeq(ls: LogStream, sessionId: string): Promise<number> {
  const m = await storedMessage(ls, { last_by_subj: subjectFor(ls.namespace, "log", sessionId) });
  const parsed = m ? SessionLog.safeParse(m.json()) : undefined;
  return parsed?.success ? lastSeqOf(parsed.data) : 0;
}

/**
 * One session's lines as the stream holds them now: an ordered consumer on the session's subject,
 * read to the subject's last message (looked up first, so a subject that holds nothing new costs
 * one request and no consumer), then deleted. Line by line in seq order, each seq once: a message
 * published again after the duplicate window would otherwise show its lines twice.
 */
export async function readLogs(ls: LogStream, sessionId: string, afterSeq: number, limit: number): Promise<LogLine[]> {
  const subject = subjectFor(ls.namespace, "log", sessionId);
  const last = await storedMessage(ls, { last_by_subj: subject });
  const lastBody = last ? SessionLog.safeParse(last.json()) : undefined;
  if (!last || (lastBody?.success && lastSeqOf(lastBody.data) <= afterSeq)) return [];
  const bySeq = new Map<number, LogLine>();
  try {
    const consumer = await ls.js.consumers.get(streamName(ls.namespace, "logs"), {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: 30_000,
    });
    try {
      const messages = await consumer.fetch({
        max_messages: STREAMS.logs.maxMsgsPerSubject ?? 10_000,
        expires: READ_EXPIRES_MS,
      });
      for await (const m of messages) {
        const parsed = SessionLog.safeParse(m.json());
        if (parsed.success && lastSeqOf(parsed.data) > afterSeq)
          for (const l of logLines(parsed.data)) if (l.seq > afterSeq && !bySeq.has(l.seq)) bySeq.set(l.seq, l);
        if (m.seq >= last.seq || m.info.pending === 0) break;
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  } catch (err) {
    throw unavailable(`cannot read the log of ${sessionId}`, err);
  }
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq).slice(0, limit);
}

/**
 * The archiver's backlog, from its durable consumer: messages not yet acknowledged (waiting or
 * held), and the age of the oldest. Every message of the stream is on the consumer's filter, so the
 * oldest unarchived one is right after the consumer's ack floor (or the stream's first, when age
 * removed that one: lines lost before they were archived, which the age then shows).
 */
export async function archiveBacklog(ls: LogStream, durable: string, now = Date.now()): Promise<ArchiveBacklog> {
  const stream = streamName(ls.namespace, "logs");
  try {
    const info = await ls.jsm.consumers.info(stream, durable);
    const pending = info.num_pending + info.num_ack_pending;
    if (pending === 0) return { pending, oldestAgeMs: 0 };
    let oldest = await storedMessage(ls, { seq: info.ack_floor.stream_seq + 1 });
    if (!oldest) {
      const first = (await ls.jsm.streams.info(stream)).state.first_seq;
      oldest = await storedMessage(ls, { seq: first });
    }
    return { pending, oldestAgeMs: oldest ? Math.max(0, now - oldest.time.getTime()) : 0 };
  } catch (err) {
    if (err instanceof FleetError) throw err;
    throw unavailable("cannot read the archiver's backlog", err);
  }
}
