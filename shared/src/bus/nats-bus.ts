import {
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { activeTraceparent } from "../telemetry/index.js";
import {
  RequestError,
  TimeoutError,
  connect,
  headers as natsHeaders,
  type MsgHdrs,
  type NatsConnection,
} from "@nats-io/transport-node";
import { z } from "zod";
import {
  CONSUMERS,
  EVENTS,
  STREAMS,
  ProgressReply,
  SessionLog,
  SessionProgress,
  type LogLine,
  progressSubject,
  streamName,
  subjectFor,
  type ConsumerEvent,
  type ConsumerName,
  type EventInput,
  type EventKind,
  type EventOf,
} from "../contracts/index.js";
import { FleetError, errorMessage } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import { backoffMs, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import { startBatchLoop } from "./batch-consume.js";
import { startConsumeLoop } from "./consume.js";
import { archiveBacklog, followLogs, lastLogSeq, readLogs, type LogStream } from "./logs.js";
import type {
  ArchiveBacklog,
  BatchConsumeOptions,
  Bus,
  ConsumerBacklog,
  ConsumeOptions,
  DeadLetterSink,
  PublishOptions,
  PublishResult,
  Subscription,
} from "./port.js";
import { consumerName, DEFAULT_TUNING, provision, type ConsumerTuning } from "./provision.js";
import { natsServers } from "./servers.js";

export interface NatsBusConfig {
  /** One URL, several, or a comma-separated list (NATS_URL of a cluster). */
  servers: string | string[];
  /**
   * Replicas of every stream and consumer provisioned (FLEET_STREAM_REPLICAS). Unset: 3 when the
   * server is part of a cluster, 1 otherwise.
   */
  replicas?: number | undefined;
  /** Prefix of every subject, stream and durable; "" in production. */
  namespace: string;
  /** Connection name shown by the server (e.g. "spawner-<pid>"). */
  name: string;
  user?: string;
  pass?: string;
  tuning?: Partial<ConsumerTuning>;
  backoff?: BackoffOptions;
  publishTimeoutMs?: number;
}

export interface NatsBusDeps {
  logger: Logger;
  /** Where terminated and exhausted messages are recorded. */
  deadLetters?: DeadLetterSink;
}

const PROVISION_TRIES = 5;

/** A timeout, or JetStream saying it is unavailable for now (503: no leader yet). */
function isPassing(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof JetStreamApiError && err.status === 503);
}

/** A JetStream publish ack, as a stream sends it. */
const PubAckReply = z.object({ stream: z.string(), seq: z.number(), duplicate: z.boolean().default(false) });

class NatsBus implements Bus {
  private readonly subs = new Set<Subscription>();
  private closing: Promise<void> | undefined;
  private readonly tuning: ConsumerTuning;
  private readonly logStream: LogStream;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly config: NatsBusConfig,
    private readonly deps: NatsBusDeps,
  ) {
    this.tuning = { ...DEFAULT_TUNING, ...config.tuning };
    this.logStream = { js, jsm, namespace: config.namespace };
  }

  async provision(): Promise<void> {
    // On a cluster each stream and consumer change goes through its group's consensus: during an
    // election, or on a loaded machine, a call can time out. Provisioning is idempotent: try again.
    for (let attempt = 1; ; attempt++) {
      try {
        await provision(this.jsm, this.config.namespace, this.tuning, this.replicas());
        return;
      } catch (err) {
        if (attempt >= PROVISION_TRIES || !isPassing(err)) throw err;
        const delay = backoffMs(attempt, { baseMs: 500, maxMs: 5_000 });
        this.deps.logger.warn({ err: errorMessage(err), attempt, delay }, "provisioning failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** What this bus provisions with: the configured count, or what the server it reached suggests. */
  private replicas(): number {
    return this.config.replicas ?? defaultReplicas(this.nc);
  }

  async publish<K extends EventKind>(
    kind: K,
    msg: EventInput<K>,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    const spec = EVENTS[kind];
    const parsed = spec.schema.safeParse(msg);
    if (!parsed.success) {
      throw new FleetError("bad_input", `refusing to publish an invalid ${spec.subject}: ${parsed.error.message}`);
    }
    const body = parsed.data as EventOf<K>;
    const sessionId = (body as { sessionId: string }).sessionId;
    const h = natsHeaders();
    // A message sent while a span runs carries its trace, so the next stage's spans join it.
    const traceparent = activeTraceparent();
    if (traceparent) h.set("traceparent", traceparent);
    for (const [k, v] of Object.entries(options.headers ?? {})) h.set(k, v);
    const subject = subjectFor(this.config.namespace, kind, sessionId);
    const msgID = options.msgId ?? (spec.msgId as (m: EventOf<K>) => string)(body);
    const stream = streamName(this.config.namespace, spec.stream);
    const timeout = this.config.publishTimeoutMs ?? 5_000;
    try {
      const ack = await this.js.publish(subject, JSON.stringify(body), { msgID, headers: h, timeout });
      if (ack.stream === stream) return { seq: ack.seq, duplicate: ack.duplicate };
      // Another stream answered first: the outside account's feed also captures the requests its
      // users send, and it answers a duplicate even while the fleet's stream is away (no quorum, an
      // election). Only the fleet's own stream's ack means the message is in the fleet's hands.
      h.set("Nats-Msg-Id", msgID);
      return await this.ackFrom(stream, subject, JSON.stringify(body), h, timeout);
    } catch (err) {
      throw new FleetError("bus_unavailable", `publish to ${spec.subject} failed: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    }
  }

  /** Publishes again (deduplicated by its id) and waits for the ack of `stream` among the replies. */
  private async ackFrom(
    stream: string,
    subject: string,
    payload: string,
    headers: MsgHdrs,
    timeoutMs: number,
  ): Promise<PublishResult> {
    const replies = await this.nc.requestMany(subject, payload, { strategy: "timer", maxWait: timeoutMs, headers });
    for await (const m of replies) {
      const ack = PubAckReply.safeParse(m.json());
      if (ack.success && ack.data.stream === stream) return { seq: ack.data.seq, duplicate: ack.data.duplicate };
    }
    throw new FleetError("bus_unavailable", `no ack from ${stream} within ${timeoutMs} ms`, { retryable: true });
  }

  consume<C extends ConsumerName>(consumer: C, options: ConsumeOptions<ConsumerEvent<C>>): Subscription {
    const spec = CONSUMERS[consumer];
    const sub = startConsumeLoop(
      {
        nc: this.nc,
        js: this.js,
        jsm: this.jsm,
        stream: streamName(this.config.namespace, spec.stream),
        durable: consumerName(this.config.namespace, consumer),
        schema: EVENTS[spec.event].schema as never,
        maxDeliver: this.tuning.maxDeliver,
        workQueue: STREAMS[spec.stream].retention === "workqueue",
        backoff: this.config.backoff ?? DEFAULT_BACKOFF,
        logger: this.deps.logger,
        ...(this.deps.deadLetters ? { deadLetters: this.deps.deadLetters } : {}),
      },
      options,
    );
    this.subs.add(sub);
    return sub;
  }

  followLogs(sessionId: string, signal: AbortSignal): AsyncIterable<LogLine> {
    return followLogs(this.logStream, sessionId, signal);
  }

  readLogs(sessionId: string, options: { afterSeq?: number; limit?: number } = {}): Promise<LogLine[]> {
    return readLogs(this.logStream, sessionId, options.afterSeq ?? 0, options.limit ?? 10_000);
  }

  archiveLogs(options: BatchConsumeOptions<SessionLog>): Subscription {
    const sub = startBatchLoop(
      {
        js: this.js,
        stream: streamName(this.config.namespace, "logs"),
        durable: consumerName(this.config.namespace, "archiver"),
        schema: SessionLog,
        logger: this.deps.logger,
        ...(this.deps.deadLetters ? { deadLetters: this.deps.deadLetters } : {}),
      },
      options,
    );
    this.subs.add(sub);
    return sub;
  }

  archiveBacklog(): Promise<ArchiveBacklog> {
    return archiveBacklog(this.logStream, consumerName(this.config.namespace, "archiver"));
  }

  async consumerBacklogs(): Promise<ConsumerBacklog[]> {
    const ns = this.config.namespace;
    try {
      return await Promise.all(
        (Object.keys(CONSUMERS) as ConsumerName[]).map(async (consumer) => {
          const info = await this.jsm.consumers.info(
            streamName(ns, CONSUMERS[consumer].stream),
            consumerName(ns, consumer),
          );
          return {
            consumer,
            pending: info.num_pending,
            ackPending: info.num_ack_pending,
            redelivered: info.num_redelivered,
            delivered: info.delivered.consumer_seq,
          };
        }),
      );
    } catch (err) {
      throw new FleetError("bus_unavailable", `cannot read the fleet's consumers: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    }
  }

  serveProgress(sessionId: string, handler: (msg: SessionProgress) => Promise<ProgressReply>): { stop(): void } {
    const answer = async (data: string): Promise<ProgressReply> => {
      let raw: unknown;
      try {
        raw = JSON.parse(data);
      } catch {
        return { ok: false, code: "bad_input", message: "not JSON" };
      }
      const parsed = SessionProgress.safeParse(raw);
      if (!parsed.success || parsed.data.sessionId !== sessionId) {
        return {
          ok: false,
          code: "bad_input",
          message: parsed.success ? "session id does not match the subject" : parsed.error.message,
        };
      }
      return handler(parsed.data).catch((err: unknown) => ({
        ok: false as const,
        code: "unavailable" as const,
        message: errorMessage(err),
      }));
    };
    const sub = this.nc.subscribe(progressSubject(this.config.namespace, sessionId), {
      callback: (err, m) => {
        if (err) return;
        void answer(m.string()).then((reply) => m.respond(JSON.stringify(reply)));
      },
    });
    return { stop: () => sub.unsubscribe() };
  }

  async sendProgress(msg: SessionProgress, timeoutMs = 5_000): Promise<ProgressReply> {
    const body = SessionProgress.parse(msg);
    try {
      const m = await this.nc.request(progressSubject(this.config.namespace, body.sessionId), JSON.stringify(body), {
        timeout: timeoutMs,
      });
      const reply = ProgressReply.safeParse(m.json());
      if (!reply.success) throw new FleetError("internal", `a malformed progress reply: ${reply.error.message}`);
      return reply.data;
    } catch (err) {
      if (err instanceof FleetError) throw err;
      const nobody = err instanceof RequestError && err.isNoResponders();
      const message = nobody
        ? "no poller watches this session right now"
        : err instanceof TimeoutError
          ? `no answer within ${timeoutMs} ms`
          : errorMessage(err);
      throw new FleetError("bus_unavailable", `progress not delivered: ${message}`, { retryable: true, cause: err });
    }
  }

  lastLogSeq(sessionId: string): Promise<number> {
    return lastLogSeq(this.logStream, sessionId);
  }

  async ping(): Promise<void> {
    await this.nc.rtt();
  }

  close(deadlineMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.subs].map((s) => s.stop(deadlineMs)));
      await this.nc.drain().catch(() => this.nc.close());
    })();
    return this.closing;
  }
}

/** 3 on a cluster (the server reports the cluster it belongs to), 1 on a lone server. */
export function defaultReplicas(nc: NatsConnection): number {
  return nc.info?.cluster ? 3 : 1;
}

/** Connects (retrying in the background if the server goes away later) and returns the Bus. */
export async function connectBus(config: NatsBusConfig, deps: NatsBusDeps): Promise<Bus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: natsServers(config.servers),
      name: config.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // Every JetStream publish is a request; a call-site stack captured for each one cost about a
      // tenth of a busy poller's CPU. Errors still say what failed.
      noAsyncTraces: true,
      ...(config.user ? { user: config.user, pass: config.pass ?? "" } : {}),
    });
  } catch (err) {
    throw new FleetError("bus_unavailable", `cannot reach NATS at ${String(config.servers)}: ${errorMessage(err)}`, {
      retryable: true,
      cause: err,
    });
  }
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect")
        deps.logger.warn({ status: s.type }, "nats connection status");
    }
  })();
  const jsm = await jetstreamManager(nc);
  return new NatsBus(nc, jetstream(nc), jsm, config, deps);
}
