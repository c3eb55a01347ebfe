import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import type { z } from "zod";
import { errorMessage, isFleetError } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import { backoffMs, type BackoffOptions } from "./backoff.js";
import { recordDeadMessage } from "./consume.js";
import type { BatchConsumeOptions, DeadLetterSink, Subscription } from "./port.js";

export interface BatchLoopDeps<T> {
  js: JetStreamClient;
  stream: string;
  durable: string;
  schema: z.ZodType<T>;
  deadLetters?: DeadLetterSink;
  logger: Logger;
}

interface Held<T> {
  msg: JsMsg;
  body: T;
  /** What it counts for against the batch size and the room to fetch. */
  weight: number;
  /** When it was taken, or last told the server the work goes on. */
  since: number;
}

interface Batch<T> {
  items: Held<T>[];
  /** Handed back to the server (shutdown): nothing of it is acknowledged here any more. */
  released: boolean;
  done: Promise<void>;
}

const FETCH_EXPIRES_MS = 2_000;
/** Retries of a failed write: short steps, so a store that comes back is caught up within seconds. */
const RETRY: BackoffOptions = { baseMs: 200, maxMs: 5_000 };

/** Only an outage is waited out: any other failure is looked at line by line, so one bad line cannot block the rest. */
const isOutage = (err: unknown): boolean => isFleetError(err) && err.retryable;

/**
 * Pulls as many messages as it has room for and hands them to the handler in batches, acking each
 * batch once the handler resolves. A batch whose handler fails for an outage is retried in place
 * (its messages kept alive with `working()`) until it succeeds or the instance stops, so a store
 * outage costs no redelivery and loses nothing; any other failure splits the batch into lines.
 */
export function startBatchLoop<T>(deps: BatchLoopDeps<T>, options: BatchConsumeOptions<T>): Subscription {
  const concurrency = Math.max(1, options.concurrency ?? 2);
  // One batch gathers while the others are written. Held and waiting are counted by weight.
  const maxHeld = options.maxBatch * (concurrency + 1);
  const weigh = options.weight ?? (() => 1);
  const log = deps.logger.child({ consumer: deps.durable });
  const waiting: Held<T>[] = [];
  let waitingWeight = 0;
  const writing = new Set<Batch<T>>();
  let held = 0;
  let stopping = false;
  let current: ConsumerMessages | undefined;
  let wake: (() => void) | undefined;
  const lingerMs = Math.max(0, options.lingerMs ?? 0);
  let lingering: NodeJS.Timeout | undefined;

  const heartbeat = setInterval(() => {
    const due = Date.now() - options.heartbeatMs;
    for (const h of [...waiting, ...[...writing].flatMap((b) => b.items)]) {
      if (h.since > due) continue;
      h.msg.working();
      h.since = Date.now();
    }
  }, options.heartbeatMs);
  heartbeat.unref();

  const release = (batch: Batch<T>): void => {
    if (batch.released) return;
    batch.released = true;
    for (const h of batch.items) h.msg.nak();
  };

  /** Line by line after a failure that is not an outage: what still fails for good is dead-lettered. */
  const oneByOne = async (batch: Batch<T>, cause: unknown): Promise<void> => {
    log.warn({ err: errorMessage(cause), lines: batch.items.length }, "batch refused; trying its messages one by one");
    for (const h of batch.items) {
      try {
        await options.handler([h.body]);
        h.msg.ack();
      } catch (err) {
        if (isOutage(err)) {
          h.msg.nak(backoffMs(h.msg.info.deliveryCount, RETRY));
          continue;
        }
        await recordDeadMessage(deps, log, h.msg, `refused: ${errorMessage(err)}`);
        h.msg.term(errorMessage(err).slice(0, 200));
      }
    }
  };

  const write = async (batch: Batch<T>): Promise<void> => {
    for (let attempt = 1; !batch.released; attempt++) {
      try {
        await options.handler(batch.items.map((h) => h.body));
        if (!batch.released) for (const h of batch.items) h.msg.ack();
        return;
      } catch (err) {
        if (batch.released) return;
        if (!isOutage(err)) return oneByOne(batch, err);
        if (stopping) return release(batch);
        // An outage fails every write: one warning when it starts and one a minute, not one per retry.
        if (attempt === 1 || attempt % 20 === 0)
          log.warn({ err: errorMessage(err), attempt, lines: batch.items.length }, "batch not written; retrying");
        await new Promise((r) => setTimeout(r, backoffMs(attempt, RETRY)));
      }
    }
  };

  const flush = (): void => {
    while (!stopping && waiting.length > 0 && writing.size < concurrency) {
      // A short batch waits for company, up to the linger of its oldest line.
      const wait = waitingWeight < options.maxBatch ? lingerMs - (Date.now() - (waiting[0] as Held<T>).since) : 0;
      if (wait > 0) {
        lingering ??= setTimeout(() => {
          lingering = undefined;
          flush();
        }, wait);
        return;
      }
      let take = 0;
      let weight = 0;
      for (const h of waiting) {
        if (take > 0 && weight + h.weight > options.maxBatch) break;
        take++;
        weight += h.weight;
      }
      waitingWeight -= weight;
      const batch: Batch<T> = { items: waiting.splice(0, take), released: false, done: Promise.resolve() };
      writing.add(batch);
      batch.done = write(batch)
        .catch((err: unknown) => log.error({ err: errorMessage(err) }, "unexpected error in a batch write"))
        .finally(() => {
          writing.delete(batch);
          held -= weight;
          wake?.();
          flush();
        });
    }
  };

  const accept = async (msg: JsMsg): Promise<void> => {
    let raw: unknown;
    try {
      raw = msg.json();
    } catch {
      raw = undefined;
    }
    const parsed = deps.schema.safeParse(raw);
    if (parsed.success) {
      const weight = Math.max(1, weigh(parsed.data));
      held += weight;
      waitingWeight += weight;
      waiting.push({ msg, body: parsed.data, weight, since: Date.now() });
      flush();
      return;
    }
    const reason = `malformed message: ${parsed.error.message.slice(0, 1_000)}`;
    log.warn({ seq: msg.seq, subject: msg.subject }, "terminating malformed message");
    await recordDeadMessage(deps, log, msg, reason);
    msg.term(reason.slice(0, 200));
  };

  const loop = async (): Promise<void> => {
    let consumer: Consumer | undefined;
    let failures = 0;
    while (!stopping) {
      try {
        consumer ??= await deps.js.consumers.get(deps.stream, deps.durable);
        const free = maxHeld - held;
        if (free <= 0) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        current = await consumer.fetch({ max_messages: free, expires: FETCH_EXPIRES_MS });
        for await (const msg of current) {
          if (stopping) msg.nak();
          else
            await accept(msg).catch((err: unknown) =>
              log.error({ err: errorMessage(err) }, "could not settle a message"),
            );
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
      return held;
    },
    stop(deadlineMs = 10_000) {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(heartbeat);
        clearTimeout(lingering);
        current?.stop();
        wake?.();
        await running;
        // Not started yet: straight back to the server, for another instance to take.
        for (const h of waiting.splice(0)) h.msg.nak();
        const all = Promise.all([...writing].map((b) => b.done));
        const timedOut = await Promise.race([
          all.then(() => false),
          new Promise<boolean>((r) => setTimeout(() => r(true), deadlineMs).unref()),
        ]);
        if (timedOut) for (const b of writing) release(b);
      })();
      return stopped;
    },
  };
}
