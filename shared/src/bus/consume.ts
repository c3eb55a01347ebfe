import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { NatsConnection, Subscription as CoreSubscription } from "@nats-io/transport-node";
import type { z } from "zod";
import type { Logger } from "../log/index.js";
import { errorMessage, isRetryable } from "../errors/index.js";
import { LIMITS } from "../contracts/index.js";
import { backoffMs, type BackoffOptions } from "./backoff.js";
import type { ConsumeOptions, DeadLetterSink, MessageContext, Subscription } from "./port.js";

export interface ConsumeLoopDeps<T> {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  stream: string;
  durable: string;
  schema: z.ZodType<T>;
  /** Used until the consumer's own max_deliver is read from the server. */
  maxDeliver: number;
  /** The stream is a work queue: a message that ran out of deliveries is removed once recorded. */
  workQueue: boolean;
  backoff: BackoffOptions;
  deadLetters?: DeadLetterSink;
  logger: Logger;
}

interface InFlight {
  msg: JsMsg;
  abort: AbortController;
  released: boolean;
  done: Promise<void>;
}

const FETCH_EXPIRES_MS = 2_000;
const EXCERPT_CHARS = 500;

/**
 * Pulls with `fetch` sized to the free slots, so this instance never holds more than
 * `maxInFlight` messages: nothing waits in a local buffer while its ack deadline runs.
 */
export function startConsumeLoop<T>(deps: ConsumeLoopDeps<T>, options: ConsumeOptions<T>): Subscription {
  const maxInFlight = Math.max(1, options.maxInFlight ?? 16);
  const log = deps.logger.child({ consumer: deps.durable });
  const inFlight = new Set<InFlight>();
  let stopping = false;
  let current: ConsumerMessages | undefined;
  let wake: (() => void) | undefined;
  // The server's max_deliver decides when retries end; instances must agree with it, not with their own config.
  let maxDeliver = deps.maxDeliver;
  const advisory = watchMaxDeliveries(deps, log);

  const settle = (entry: InFlight, action: () => void): void => {
    if (!entry.released) action();
  };

  const recordDead = (msg: JsMsg, reason: string): Promise<void> => recordDeadMessage(deps, log, msg, reason);

  const handle = async (entry: InFlight): Promise<void> => {
    const { msg } = entry;
    let body: T;
    try {
      // Checked before parsing: a message past the documented limit is refused whatever it holds.
      if (msg.data.length > LIMITS.requestMessageBytes) {
        throw new Error(`oversized: ${msg.data.length} bytes, at most ${LIMITS.requestMessageBytes}`);
      }
      body = deps.schema.parse(msg.json());
    } catch (err) {
      const reason = `malformed message: ${errorMessage(err).slice(0, 1_000)}`;
      log.warn({ seq: msg.seq, subject: msg.subject }, "terminating malformed message");
      await recordDead(msg, reason);
      settle(entry, () => msg.term(reason.slice(0, 200)));
      return;
    }
    const heartbeat = options.heartbeatMs ? setInterval(() => msg.working(), options.heartbeatMs) : undefined;
    const ctx: MessageContext = {
      subject: msg.subject,
      seq: msg.seq,
      deliveryCount: msg.info.deliveryCount,
      storedAt: msg.time.getTime(),
      finalDelivery: msg.info.deliveryCount >= maxDeliver,
      headers: headersOf(msg),
      working: () => msg.working(),
      signal: entry.abort.signal,
    };
    try {
      await options.handler(body, ctx);
      settle(entry, () => msg.ack());
    } catch (err) {
      if (entry.released) return;
      const reason = errorMessage(err);
      if (isRetryable(err) && msg.info.deliveryCount < maxDeliver) {
        const delay = backoffMs(msg.info.deliveryCount, deps.backoff);
        log.warn({ seq: msg.seq, delivery: msg.info.deliveryCount, delay, err: reason }, "handler failed; retrying");
        msg.nak(delay);
      } else {
        const why = isRetryable(err) ? `exhausted ${maxDeliver} deliveries: ${reason}` : reason;
        log.error({ seq: msg.seq, delivery: msg.info.deliveryCount, err: reason }, "handler failed for good; dead-lettering");
        await recordDead(msg, why);
        msg.term(why.slice(0, 200));
      }
    } finally {
      if (heartbeat) clearInterval(heartbeat);
    }
  };

  const dispatch = (msg: JsMsg): void => {
    const entry: InFlight = { msg, abort: new AbortController(), released: false, done: Promise.resolve() };
    inFlight.add(entry);
    entry.done = handle(entry)
      .catch((err: unknown) => log.error({ err }, "unexpected error in message handling"))
      .finally(() => {
        inFlight.delete(entry);
        wake?.();
      });
  };

  const waitForSlot = (): Promise<void> =>
    new Promise((resolve) => {
      wake = () => {
        wake = undefined;
        resolve();
      };
    });

  const loop = async (): Promise<void> => {
    let consumer: Consumer | undefined;
    let failures = 0;
    while (!stopping) {
      try {
        if (!consumer) {
          consumer = await deps.js.consumers.get(deps.stream, deps.durable);
          const configured = (await consumer.info(true)).config.max_deliver;
          if (configured && configured > 0) maxDeliver = configured;
        }
        const free = maxInFlight - inFlight.size;
        if (free <= 0) {
          await waitForSlot();
          continue;
        }
        current = await consumer.fetch({ max_messages: free, expires: FETCH_EXPIRES_MS });
        for await (const msg of current) {
          if (stopping) msg.nak();
          else dispatch(msg);
        }
        failures = 0;
      } catch (err) {
        if (stopping) break;
        failures += 1;
        consumer = undefined;
        const delay = backoffMs(failures, { baseMs: 200, maxMs: 5_000 });
        log.warn({ err: errorMessage(err), delay }, "fetch failed; retrying");
        await new Promise((r) => setTimeout(r, delay));
      } finally {
        current = undefined;
      }
    }
  };

  const running = loop();

  let stopped: Promise<void> | undefined;
  return {
    get inFlight() {
      return inFlight.size;
    },
    stop(deadlineMs = 10_000) {
      stopped ??= (async () => {
        stopping = true;
        current?.stop();
        wake?.();
        advisory?.unsubscribe();
        await running;
        const all = Promise.all([...inFlight].map((e) => e.done));
        const timedOut = await Promise.race([
          all.then(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(true), deadlineMs).unref()),
        ]);
        if (timedOut) {
          for (const entry of inFlight) {
            entry.released = true;
            entry.abort.abort(new Error("shutting down"));
            entry.msg.nak();
          }
          log.warn({ released: inFlight.size }, "released unfinished messages to other instances");
        }
      })();
      return stopped;
    },
  };
}

/** Records a message given up on (malformed, or failed for good) in the dead-letter sink, if there is one. */
export async function recordDeadMessage(deps: { stream: string; durable: string; deadLetters?: DeadLetterSink }, log: Logger, msg: JsMsg, reason: string): Promise<void> {
  if (!deps.deadLetters) return;
  await deps.deadLetters
    .recordDead({
      id: `${deps.stream}:${msg.seq}`,
      stream: deps.stream,
      consumer: deps.durable,
      subject: msg.subject,
      seq: msg.seq,
      reason: reason.slice(0, 4_000),
      excerpt: msg.string().slice(0, EXCERPT_CHARS),
      deliveries: msg.info.deliveryCount,
      at: Date.now(),
    })
    .catch((err: unknown) => log.error({ err, seq: msg.seq }, "could not record dead letter"));
}

function headersOf(msg: JsMsg): Record<string, string> {
  const out: Record<string, string> = {};
  if (!msg.headers) return out;
  for (const key of msg.headers.keys()) out[key] = msg.headers.get(key);
  return out;
}

/**
 * The server tells (once, on core NATS) when a message ran out of deliveries without a verdict from
 * a handler, e.g. because its holders crashed. One instance per consumer (queue group) records it.
 */
function watchMaxDeliveries<T>(deps: ConsumeLoopDeps<T>, log: Logger): CoreSubscription | undefined {
  if (!deps.deadLetters) return undefined;
  const sink = deps.deadLetters;
  const subject = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${deps.stream}.${deps.durable}`;
  return deps.nc.subscribe(subject, {
    queue: `${deps.durable}-dead`,
    callback: (err, msg) => {
      if (err) return;
      void (async () => {
        const advisory = msg.json<{ stream_seq: number; deliveries: number }>();
        const stored = await deps.jsm.streams.getMessage(deps.stream, { seq: advisory.stream_seq }).catch(() => null);
        await sink.recordDead({
          id: `${deps.stream}:${advisory.stream_seq}`,
          stream: deps.stream,
          consumer: deps.durable,
          subject: stored?.subject ?? "",
          seq: advisory.stream_seq,
          reason: `exhausted ${advisory.deliveries} deliveries without an answer from a handler`,
          excerpt: stored ? stored.string().slice(0, EXCERPT_CHARS) : "",
          deliveries: advisory.deliveries,
          at: Date.now(),
        });
        if (stored && deps.workQueue) await deps.jsm.streams.deleteMessage(deps.stream, advisory.stream_seq, false).catch(() => undefined);
      })().catch((e: unknown) => log.error({ err: errorMessage(e) }, "could not record max-deliveries advisory"));
    },
  });
}
