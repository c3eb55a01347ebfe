import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import type { NatsConnection, Subscription as CoreSubscription } from "@nats-io/transport-node";
import type { z } from "zod";
import type { Logger } from "../log/index.js";
import { Superseded, errorMessage, isRetryable } from "../errors/index.js";
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
  /** Exclusive consumers: until when no other instance can have been given this message. */
  heldUntil: number;
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
  const hold =
    options.exclusive && options.heartbeatMs ? startHolding(deps, log, inFlight, options.heartbeatMs) : undefined;

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
    // Exclusive consumers heartbeat all their messages together (startHolding).
    const heartbeat = options.heartbeatMs && !hold ? setInterval(() => msg.working(), options.heartbeatMs) : undefined;
    const ctx: MessageContext = {
      subject: msg.subject,
      seq: msg.seq,
      deliveryCount: msg.info.deliveryCount,
      storedAt: msg.time.getTime(),
      finalDelivery: msg.info.deliveryCount >= maxDeliver,
      headers: headersOf(msg),
      working: () => msg.working(),
      signal: entry.abort.signal,
      holds: hold ? () => !entry.released && Date.now() < entry.heldUntil : () => !entry.released,
    };
    try {
      await options.handler(body, ctx);
      // An exclusive message whose hold lapsed may be another instance's by now: no verdict of ours.
      if (hold?.lapsed(entry)) return;
      settle(entry, () => msg.ack());
    } catch (err) {
      if (entry.released || hold?.lapsed(entry)) return;
      const reason = errorMessage(err);
      if (err instanceof Superseded) {
        log.info({ seq: msg.seq, delivery: msg.info.deliveryCount, err: reason }, "taken over by a later delivery");
        return;
      }
      if (isRetryable(err) && msg.info.deliveryCount < maxDeliver) {
        const delay = backoffMs(msg.info.deliveryCount, deps.backoff);
        log.warn({ seq: msg.seq, delivery: msg.info.deliveryCount, delay, err: reason }, "handler failed; retrying");
        msg.nak(delay);
      } else {
        const why = isRetryable(err) ? `exhausted ${maxDeliver} deliveries: ${reason}` : reason;
        log.error(
          { seq: msg.seq, delivery: msg.info.deliveryCount, err: reason },
          "handler failed for good; dead-lettering",
        );
        await recordDead(msg, why);
        msg.term(why.slice(0, 200));
      }
    } finally {
      if (heartbeat) clearInterval(heartbeat);
    }
  };

  const dispatch = (msg: JsMsg, fetchedAt: number): void => {
    // The server delivered it after the pull was sent: its ack deadline runs from no earlier than that.
    const heldUntil = hold ? fetchedAt + hold.holdMs() : Infinity;
    const entry: InFlight = { msg, abort: new AbortController(), released: false, done: Promise.resolve(), heldUntil };
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
          const { config } = await consumer.info(true);
          if (config.max_deliver && config.max_deliver > 0) maxDeliver = config.max_deliver;
          if (config.ack_wait) hold?.setAckWait(config.ack_wait / 1e6);
        }
        const free = maxInFlight - inFlight.size;
        if (free <= 0) {
          await waitForSlot();
          continue;
        }
        const fetchedAt = Date.now();
        current = await consumer.fetch({ max_messages: free, expires: FETCH_EXPIRES_MS });
        for await (const msg of current) {
          if (stopping) msg.nak();
          else dispatch(msg, fetchedAt);
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
          let released = 0;
          for (const entry of inFlight) {
            // One let go already (its hold lapsed) may be another instance's by now: a nak would take it away.
            if (entry.released) continue;
            entry.released = true;
            entry.abort.abort(new Error("shutting down"));
            entry.msg.nak();
            released++;
          }
          log.warn({ released }, "released unfinished messages to other instances");
        }
        hold?.stop();
      })();
      return stopped;
    },
  };
}

/**
 * The heartbeats of an exclusive consumer. Each round sends `working()` for every held message and
 * then a PING on the same connection: its PONG proves the server has read those heartbeats, so
 * none of the messages can be redelivered before the round's start plus the ack wait. A message is
 * held until then minus one heartbeat of margin; past that (the event loop stalled, or the server
 * was out of reach) it is released before the server could give it to another instance.
 * A dropped connection releases every message at once: a restarted server may have lost the last
 * heartbeats it had not written down, and a server this instance cannot reach may be reachable
 * from another instance.
 */
function startHolding(deps: { nc: NatsConnection }, log: Logger, inFlight: Set<InFlight>, heartbeatMs: number) {
  // Until the consumer's own ack wait is read, nothing is dispatched; this only keeps holdMs() sane.
  let ackWaitMs = 4 * heartbeatMs;
  const holdMs = (): number => ackWaitMs - heartbeatMs;
  const release = (now: number, why = "heartbeats were not confirmed in time"): void => {
    let released = 0;
    for (const entry of inFlight) {
      if (entry.released || now < entry.heldUntil) continue;
      entry.released = true;
      entry.abort.abort(new Error("hold lapsed"));
      released++;
    }
    if (released > 0)
      log.warn({ released, heldForMs: holdMs() }, `released messages: their ${why}; another instance takes them over`);
  };
  /** Whether the entry's hold is gone; one that lapsed is released now (its handler may have finished first). */
  const lapsed = (entry: InFlight): boolean => {
    if (entry.released) return true;
    if (Date.now() < entry.heldUntil) return false;
    release(Date.now());
    return true;
  };
  const round = (): void => {
    const t = Date.now();
    // Released first: a heartbeat for a message let go would only delay its redelivery.
    release(t);
    const held = [...inFlight].filter((e) => !e.released);
    if (held.length === 0) return;
    for (const e of held) e.msg.working();
    void withTimeout(deps.nc.flush(), ackWaitMs).then(
      () => {
        for (const e of held) e.heldUntil = Math.max(e.heldUntil, t + holdMs());
      },
      () => undefined,
    );
  };
  const rounds = setInterval(round, heartbeatMs);
  // Checked more often than heartbeats go out: a lapse is acted on well before the redelivery.
  const checks = setInterval(() => release(Date.now()), Math.max(50, Math.floor(heartbeatMs / 4)));
  let stopped = false;
  void (async () => {
    // Ends when the connection closes; after stop() it only ignores what comes.
    for await (const s of deps.nc.status())
      if (!stopped && s.type === "disconnect") release(Infinity, "connection to the bus dropped");
  })();
  return {
    holdMs,
    lapsed,
    setAckWait(ms: number): void {
      if (ms <= 2 * heartbeatMs)
        log.warn(
          { ackWaitMs: ms, heartbeatMs },
          "ack wait leaves little room for heartbeats; messages will be released often",
        );
      ackWaitMs = ms;
    },
    stop(): void {
      clearInterval(rounds);
      clearInterval(checks);
      stopped = true;
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("timed out")), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Records a message given up on (malformed, or failed for good) in the dead-letter sink, if there is one. */
export async function recordDeadMessage(
  deps: { stream: string; durable: string; deadLetters?: DeadLetterSink },
  log: Logger,
  msg: JsMsg,
  reason: string,
): Promise<void> {
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
        if (stored && deps.workQueue)
          await deps.jsm.streams.deleteMessage(deps.stream, advisory.stream_seq, false).catch(() => undefined);
      })().catch((e: unknown) => log.error({ err: errorMessage(e) }, "could not record max-deliveries advisory"));
    },
  });
}
