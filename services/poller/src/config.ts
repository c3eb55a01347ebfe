import { agentEnv, baseEnv, sandboxEnv } from "@fleet/shared";
import { z } from "zod";

export const PollerConfig = baseEnv
  .extend(sandboxEnv.shape)
  .extend(agentEnv.shape)
  .extend({
    /** Sessions this instance watches at once. */
    POLLER_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(100_000).default(500),
    /** Safety-net status check while the event stream is quiet or cut. */
    POLLER_STATUS_INTERVAL_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
    /** How often each watch re-reads its session from the store (a backstop for ends decided elsewhere). */
    POLLER_STORE_CHECK_MS: z.coerce.number().int().min(50).max(600_000).default(2_000),
    /** How long an unreachable agent is tolerated before the session fails. */
    POLLER_UNREACHABLE_MS: z.coerce.number().int().min(1_000).max(600_000).default(15_000),
    /** A busy agent silent for this long is stuck: abort, kill its process, fail the session `stalled`. */
    POLLER_QUIET_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(180_000),
    /** Bound on each escalation step. */
    POLLER_ESCALATION_STEP_MS: z.coerce.number().int().min(500).max(120_000).default(5_000),
    /** 1: this instance also runs the log archiver (stream -> store), sharing its consumer with every other instance that does. */
    POLLER_ARCHIVER: z
      .enum(["0", "1"])
      .default("1")
      .transform((v) => v === "1"),
    /** Most log lines in one archive write (one insertMany). */
    POLLER_ARCHIVE_BATCH: z.coerce.number().int().min(1).max(5_000).default(500),
    /**
     * How long a short archive batch waits for more lines: fewer, larger store writes (and no later
     * for viewers, who read the stream). Lines reach the store this much later at most.
     */
    POLLER_ARCHIVE_LINGER_MS: z.coerce.number().int().min(0).max(5_000).default(50),
    /** Archive writes under way at once per instance. */
    POLLER_ARCHIVE_CONCURRENCY: z.coerce.number().int().min(1).max(16).default(2),
    /** Port of the /metrics endpoint; 0 turns it off. */
    POLLER_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  });
export type PollerConfig = z.infer<typeof PollerConfig>;
