import { DeliverPolicy, jetstream, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/nats-core";
import { z } from "zod";
import { EVENTS, feedStreamName, streamName, subjectFor, type EventKind } from "./contracts/catalog.js";
import { SCHEMA_VERSION } from "./contracts/common.js";
import {
  SessionCancel,
  SessionCancelled,
  SessionCompleted,
  SessionFailed,
  SessionLog,
  SessionRequested,
  logLines,
} from "./contracts/events.js";
import type { LogLine } from "./contracts/session.js";
import { FleetUnreachable } from "./errors.js";

export interface FleetBusClientOptions {
  /** A connection as the fleet's outside user (docs/bus.md, Authorization). */
  nc: NatsConnection;
  /** The fleet's namespace: a prefix of every subject and stream (default: none). */
  namespace?: string;
}

/** What `submit` publishes on `session.requested`: `v` and `requestedAt` are filled in when left out. */
export type BusSubmitInput = Omit<z.input<typeof SessionRequested>, "v" | "requestedAt"> & { requestedAt?: number };

/** The terminal event of a session, whichever of the three subjects carried it. */
export type TerminalEvent =
  | { status: "completed"; event: SessionCompleted }
  | { status: "failed"; event: SessionFailed }
  | { status: "cancelled"; event: SessionCancelled };

const PUBLISH_TIMEOUT_MS = 5_000;
/** A JetStream publish ack, as a stream sends it. */
const PubAck = z.object({ stream: z.string(), seq: z.number(), duplicate: z.boolean().default(false) });

const TERMINAL = {
  completed: SessionCompleted,
  failed: SessionFailed,
  cancelled: SessionCancelled,
} as const satisfies Partial<Record<EventKind, z.ZodType>>;
type TerminalKind = keyof typeof TERMINAL;

/**
 * The fleet over NATS JetStream, as an outside system uses it: requests go to the fleet's subjects
 * (deduplicated by their `Nats-Msg-Id`, so a retried publish is one request), and everything is read
 * from the outside account's feed stream with consumers of the reader's own.
 */
export class FleetBusClient {
  private readonly js: JetStreamClient;
  private readonly nc: NatsConnection;
  private readonly namespace: string;

  constructor(options: FleetBusClientOptions) {
    this.nc = options.nc;
    this.js = jetstream(options.nc);
    this.namespace = options.namespace ?? "";
  }

  /**
   * Publishes a session request; the stream's ack is the fleet's acceptance. Publishing the same
   * `sessionId` again within the duplicate window is answered `duplicate: true` and starts nothing.
   */
  async submit(input: BusSubmitInput): Promise<{ sessionId: string; duplicate: boolean; requestedAt: number }> {
    const message = SessionRequested.parse({ v: SCHEMA_VERSION, requestedAt: Date.now(), ...input });
    const ack = await this.publish("requested", JSON.stringify(message), `requested:${message.sessionId}`);
    return { sessionId: message.sessionId, duplicate: ack.duplicate, requestedAt: message.requestedAt };
  }

  /** Asks the fleet to cancel a session; its end arrives as a terminal event like any other. */
  async cancel(sessionId: string, reason?: string): Promise<void> {
    const message = SessionCancel.parse({ v: SCHEMA_VERSION, sessionId, at: Date.now(), reason });
    await this.publish("cancel", JSON.stringify(message), `cancel:${sessionId}`);
  }

  /**
   * Publishes a request and returns the fleet's own stream's ack. The outside feed also captures
   * requests and may answer first (a duplicate, even while the fleet's stream has no leader on a
   * cluster): only the fleet's stream's ack means the request is in the fleet's hands, so another
   * answer is followed by the same publish again (deduplicated by its id), waiting for that ack.
   */
  private async publish(kind: "requested" | "cancel", payload: string, msgID: string): Promise<{ duplicate: boolean }> {
    const subject = this.subject(kind);
    const fleetStream = streamName(this.namespace, EVENTS[kind].stream);
    const unconfirmed = () =>
      new FleetUnreachable(`the fleet's stream ${fleetStream} did not confirm ${msgID}: publish it again`);
    const ack = await this.js
      .publish(subject, payload, { msgID, timeout: PUBLISH_TIMEOUT_MS })
      .catch((err: unknown) => {
        // No stream answered in time (or none listens): the request may or may not be stored.
        throw Object.assign(unconfirmed(), { cause: err });
      });
    if (ack.stream === fleetStream) return { duplicate: ack.duplicate };
    const headers = natsHeaders();
    headers.set("Nats-Msg-Id", msgID);
    const replies = await this.nc.requestMany(subject, payload, {
      strategy: "timer",
      maxWait: PUBLISH_TIMEOUT_MS,
      headers,
    });
    for await (const reply of replies) {
      const parsed = PubAck.safeParse(reply.json());
      if (parsed.success && parsed.data.stream === fleetStream) return { duplicate: parsed.data.duplicate };
    }
    throw unconfirmed();
  }

  /**
   * A session's log lines from the feed, line by line (a message carries several), each once and
   * in `seq` order, from the first after `afterSeq`, live as they are published. Runs until the
   * signal aborts: pair it with `awaitEnd` to stop once the session has ended and its last line came.
   */
  async *follow(sessionId: string, options: { afterSeq?: number; signal?: AbortSignal } = {}): AsyncGenerator<LogLine> {
    let lastSeq = options.afterSeq ?? 0;
    for await (const msg of this.read([this.subject("log", sessionId)], {}, options.signal)) {
      const parsed = SessionLog.safeParse(msg.json());
      if (!parsed.success || parsed.data.sessionId !== sessionId) continue;
      // Messages are copied into the feed as published: one published again after a failed write is skipped here.
      for (const line of logLines(parsed.data)) {
        if (line.seq <= lastSeq) continue;
        lastSeq = line.seq;
        yield line;
      }
    }
  }

  /**
   * Resolves with the session's terminal event. `since` (epoch ms, e.g. `submit`'s `requestedAt`)
   * skips older events; without it the whole feed (7 days) is searched.
   */
  async awaitEnd(sessionId: string, options: { since?: number; signal?: AbortSignal } = {}): Promise<TerminalEvent> {
    const kinds = Object.keys(TERMINAL) as TerminalKind[];
    const subjects = kinds.map((k) => this.subject(k));
    // A minute of slack: the feed stamps events with the nats-server's clock, not this machine's.
    const start = options.since !== undefined ? { opt_start_time: new Date(options.since - 60_000).toISOString() } : {};
    for await (const msg of this.read(subjects, start, options.signal)) {
      const kind = kinds[subjects.indexOf(msg.subject)];
      if (kind === undefined) continue;
      const parsed = TERMINAL[kind].safeParse(msg.json());
      if (parsed.success && parsed.data.sessionId === sessionId)
        return { status: kind, event: parsed.data } as TerminalEvent;
    }
    throw options.signal?.reason ?? new Error("the feed closed before the session ended");
  }

  private subject(kind: EventKind, sessionId?: string): string {
    return subjectFor(this.namespace, kind, sessionId);
  }

  /** An ordered consumer of the feed on the given subjects, ended by the signal. */
  private async *read(
    subjects: string[],
    start: { opt_start_time?: string },
    signal?: AbortSignal,
  ): AsyncGenerator<JsMsg> {
    if (signal?.aborted) return;
    const consumer = await this.js.consumers.get(feedStreamName(this.namespace), {
      filter_subjects: subjects,
      ...(start.opt_start_time
        ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: start.opt_start_time }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume();
    const stop = () => void messages.close();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      for await (const msg of messages) yield msg;
    } finally {
      signal?.removeEventListener("abort", stop);
      await messages.close();
    }
  }
}
