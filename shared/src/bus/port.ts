import type {
  ConsumerEvent,
  ConsumerName,
  DeadLetter,
  EventInput,
  EventKind,
  ProgressReply,
  LogLine,
  SessionLog,
  SessionProgress,
} from "../contracts/index.js";

export interface PublishOptions {
  /** Overrides the catalog's deterministic Nats-Msg-Id. */
  msgId?: string;
  /** Extra headers, e.g. W3C traceparent. */
  headers?: Record<string, string>;
}

export interface PublishResult {
  seq: number;
  /** True when the server dropped it as a duplicate of a message with the same Nats-Msg-Id. */
  duplicate: boolean;
}

export interface MessageContext {
  subject: string;
  /** Stream sequence. */
  seq: number;
  /** 1 on first delivery. */
  deliveryCount: number;
  /**
   * When the stream stored the message (epoch ms, the bus server's clock): the fleet's own time of
   * taking it, the same on every delivery, whatever time the publisher wrote into the body.
   */
  storedAt: number;
  /** No redelivery follows if this one fails (max_deliver reached): settle the work for good. */
  finalDelivery: boolean;
  headers: Record<string, string>;
  /** Tells the server the work goes on, resetting the ack deadline. */
  working(): void;
  /**
   * Aborted when the instance shuts down and this message's time is up, or (exclusive consumers)
   * when this instance can no longer be sure it holds the message.
   */
  signal: AbortSignal;
  /**
   * Exclusive consumers: true while no other instance can have been given this message, i.e. a
   * heartbeat sent less than an ack wait ago (minus one heartbeat of margin) was confirmed by the
   * server. Checked before each action, since after a stalled event loop other callbacks may run
   * before the timer that aborts `signal`. Always true for other consumers.
   */
  holds(): boolean;
}

export type Handler<T> = (msg: T, ctx: MessageContext) => Promise<void>;

export interface ConsumeOptions<T> {
  handler: Handler<T>;
  /** Messages processed at once by this instance. */
  maxInFlight?: number;
  /** When set, `working()` is sent on this interval while the handler runs. */
  heartbeatMs?: number;
  /**
   * For messages held as long as their work lasts (a session's watch): the heartbeats of all held
   * messages go out together and each round is confirmed with a round trip to the server. A
   * message whose last confirmed heartbeat is older than the ack wait minus one heartbeat is
   * released (its handler aborted, no ack, no nak) before the server can hand it to another
   * instance, so at most one instance acts on it at a time. Needs `heartbeatMs`.
   */
  exclusive?: boolean;
}

/** Messages taken and settled in batches (the log archiver: one store write for many lines). */
export interface BatchConsumeOptions<T> {
  /** Settles a batch; its messages are acknowledged once this resolves, and handed to it again if it throws. */
  handler: (batch: T[]) => Promise<void>;
  /** Most in one call, counted by `weight` (a message whose weight alone is more goes alone). */
  maxBatch: number;
  /** What one message counts for against `maxBatch` (the lines it carries); 1 when not given. */
  weight?: (item: T) => number;
  /** Calls under way at once: a batch gathers while the previous ones are written. */
  concurrency?: number;
  /** `working()` interval for messages held this long (a handler retrying through a store outage). */
  heartbeatMs: number;
  /**
   * A batch short of `maxBatch` waits until its oldest message is this old before it is written, so
   * a trickle of messages makes a few large writes rather than many small ones. 0: at once.
   */
  lingerMs?: number;
}

export interface ArchiveBacklog {
  /** Messages (of one or more lines) the archiver has not acknowledged: waiting in the stream or held by an instance. */
  pending: number;
  /** Age of the oldest of them (0 when none). */
  oldestAgeMs: number;
}

/** One fleet consumer as the server sees it (a stage's queue depth and its deliveries so far). */
export interface ConsumerBacklog {
  consumer: ConsumerName;
  /** Messages not yet delivered. */
  pending: number;
  /** Messages delivered and not yet acknowledged (being handled, or held by a watch). */
  ackPending: number;
  /** Delivered messages that were delivered before. */
  redelivered: number;
  /** Deliveries the consumer has made (its delivered consumer sequence; redeliveries count). */
  delivered: number;
}

export interface Subscription {
  /** Stop taking work, wait for in-flight handlers up to `deadlineMs`, release the rest (nak). */
  stop(deadlineMs?: number): Promise<void>;
  /** Number of handlers running now. */
  readonly inFlight: number;
}

export interface DeadLetterSink {
  recordDead(letter: DeadLetter): Promise<void>;
}

/** The fleet's view of the bus; no driver type crosses it. */
export interface Bus {
  /** Creates or updates streams and durable consumers; safe to call from every instance at start. */
  provision(): Promise<void>;
  publish<K extends EventKind>(kind: K, msg: EventInput<K>, options?: PublishOptions): Promise<PublishResult>;
  consume<C extends ConsumerName>(consumer: C, options: ConsumeOptions<ConsumerEvent<C>>): Subscription;
  /**
   * One session's log lines as the stream holds them, from the first, then live as they come
   * (an ordered consumer: no ack, no durable state), line by line. Ends when `signal` aborts.
   */
  followLogs(sessionId: string, signal: AbortSignal): AsyncIterable<LogLine>;
  /**
   * Answers progress requests for one session (the stage that owns its log writer calls this).
   * Requests that break the contract are answered `bad_input` without reaching the handler.
   */
  serveProgress(sessionId: string, handler: (msg: SessionProgress) => Promise<ProgressReply>): { stop(): void };
  /**
   * Asks the owner of a session to store progress lines. Throws a retryable `bus_unavailable` when
   * nobody watches the session now or no answer comes within `timeoutMs`.
   */
  sendProgress(msg: SessionProgress, timeoutMs?: number): Promise<ProgressReply>;
  /** The seq of the last line of a session the log stream holds (0 when none): the subject's last message. */
  lastLogSeq(sessionId: string): Promise<number>;
  /**
   * One session's lines the log stream holds now with seq > `afterSeq`, in seq order, each once (at
   * most `limit`, default 10 000). Read from the stream's leader, so a line acknowledged to its
   * writer is in it. Lines past the stream's retention are not: the store has those.
   */
  readLogs(sessionId: string, options?: { afterSeq?: number; limit?: number }): Promise<LogLine[]>;
  /** Takes log messages in batches through the archiver's durable consumer, shared by every instance that calls this. */
  archiveLogs(options: BatchConsumeOptions<SessionLog>): Subscription;
  /** How far behind the archiver's consumer is (read from the server: the same figure on every instance). */
  archiveBacklog(): Promise<ArchiveBacklog>;
  /** Every fleet consumer's backlog and deliveries, read from the server (the same figures on every instance). */
  consumerBacklogs(): Promise<ConsumerBacklog[]>;
  /** Resolves when the server answers a round trip. */
  ping(): Promise<void>;
  /** Stops subscriptions, drains the connection. Idempotent. */
  close(): Promise<void>;
}
