import { Counter, Gauge, type Registry } from "prom-client";
import type { ArchiveBacklog, Bus } from "../bus/index.js";
import { logLines } from "../contracts/index.js";
import { errorMessage } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import type { SessionStore } from "../store/index.js";

export interface LogArchiverDeps {
  bus: Bus;
  /** Its one use of the store: idempotent on (sessionId, seq), so a batch written twice is stored once. */
  store: Pick<SessionStore, "appendLogs">;
  logger: Logger;
  /** Where its metrics go (the process's /metrics). */
  registry: Registry;
}

export interface LogArchiverOptions {
  /** Most lines in one store write (one insertMany); a message is never split between two. */
  maxBatch: number;
  /** Store writes under way at once. */
  concurrency?: number;
  /** `working()` interval for lines held through a store outage: well inside the ack deadline. */
  heartbeatMs: number;
  /** How long a batch short of `maxBatch` waits for more lines before it is written. */
  lingerMs?: number;
}

export interface LogArchiver {
  stop(deadlineMs?: number): Promise<void>;
}

/** The backlog as last read: a scrape reads it once for both gauges, and two scrapes close together once. */
const BACKLOG_TTL_MS = 1_000;

/**
 * Stores log lines from the stream: the `archiver` durable consumer, shared by every instance that
 * runs one, takes messages in batches of up to `maxBatch` lines and stores each batch with one insertMany
 * (idempotent on sessionId and seq, so a batch handed over twice is stored once), then acks it.
 * While the store is down, lines wait in the stream and the batch in hand is retried.
 */
export function startLogArchiver(deps: LogArchiverDeps, options: LogArchiverOptions): LogArchiver {
  const archived = new Counter({
    name: "fleet_log_lines_archived_total",
    help: "Log lines this instance's archiver stored (lines already stored count too)",
    registers: [deps.registry],
  });
  const failures = new Counter({
    name: "fleet_log_archive_failures_total",
    help: "Batch writes of this instance's archiver that failed (each is retried)",
    registers: [deps.registry],
  });
  let backlog: { at: number; value: Promise<ArchiveBacklog> } | undefined;
  const readBacklog = (): Promise<ArchiveBacklog> => {
    if (!backlog || Date.now() - backlog.at > BACKLOG_TTL_MS)
      backlog = { at: Date.now(), value: deps.bus.archiveBacklog() };
    return backlog.value;
  };
  // Read from the server when scraped: the same for every instance (aggregate with max, not sum).
  new Gauge({
    name: "fleet_log_archive_pending",
    help: "Log messages (one or more lines each) in the stream the archiver has not stored yet (waiting or held), for all instances",
    registers: [deps.registry],
    async collect() {
      this.set(
        await readBacklog().then(
          (b) => b.pending,
          () => Number.NaN,
        ),
      );
    },
  });
  new Gauge({
    name: "fleet_log_archive_oldest_seconds",
    help: "Age of the oldest log message the archiver has not stored yet (0 when none), for all instances",
    registers: [deps.registry],
    async collect() {
      this.set(
        await readBacklog().then(
          (b) => b.oldestAgeMs / 1000,
          () => Number.NaN,
        ),
      );
    },
  });

  const sub = deps.bus.archiveLogs({
    maxBatch: options.maxBatch,
    weight: (m) => m.lines.length,
    heartbeatMs: options.heartbeatMs,
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...(options.lingerMs !== undefined ? { lingerMs: options.lingerMs } : {}),
    handler: async (messages) => {
      const lines = messages.flatMap(logLines);
      try {
        await deps.store.appendLogs(lines);
      } catch (err) {
        failures.inc();
        deps.logger.debug({ err: errorMessage(err), lines: lines.length }, "archive write failed");
        throw err;
      }
      archived.inc(lines.length);
    },
  });
  return { stop: (deadlineMs) => sub.stop(deadlineMs) };
}
