/**
 * The BullMQ peer's contract (benchmark peer, not part of the fleet): queue names, job data, job
 * options, the stored documents and the worker processes' environment. The peer runs the fleet's
 * stages (request -> spawn -> watch -> complete) on BullMQ over Redis with the same SIMULATED
 * sandbox provider and agent, so the benchmark can set the fleet beside the queue most teams would
 * reach for instead.
 */
import type { ConnectionOptions, JobsOptions } from "bullmq";
import type { Collection, Db } from "mongodb";
import { z } from "zod";
import { sandboxEnv, type SessionOutput } from "@fleet/shared";

export const REQUESTED_QUEUE = "peer-requested";
export const RUNNING_QUEUE = "peer-running";

/** Documents and log lines live in the peer's own database, in collections named like the fleet's. */
export const SESSIONS = "sessions";
export const LOGS = "session_logs";

/**
 * Retry parity with the fleet's redeliveries (FLEET_MAX_DELIVER 10; backoff from 500 ms, doubling,
 * half of it jitter); a completed job is deleted like an acked message of a work-queue stream.
 * Failed jobs stay, the peer's counterpart of the fleet's dead letters.
 */
export const JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: "exponential", delay: 500, jitter: 0.5 },
  removeOnComplete: true,
} as const satisfies JobsOptions;

// BullMQ refuses custom job ids with a ':' (its key separator) or made of digits only.
const SessionId = z.string().regex(/^[A-Za-z][\w.-]{0,127}$/);

export const RequestedJob = z.object({
  sessionId: SessionId,
  projectId: z.string().min(1).max(128),
  prompt: z.string().min(1).max(100_000),
  requestedAt: z.number().int().nonnegative(),
});
export type RequestedJob = z.infer<typeof RequestedJob>;

export const RunningJob = z.object({
  sessionId: SessionId,
  sandboxId: z.string().min(1),
  agentSessionId: z.string().min(1),
  attempt: z.number().int().positive(),
});
export type RunningJob = z.infer<typeof RunningJob>;

export type PeerStatus = "pending" | "running" | "completed" | "failed";

/** Per-session timestamps are Date.now() ms, taken where the fleet takes its own. */
export interface PeerSessionDoc {
  _id: string;
  projectId: string;
  prompt: string;
  status: PeerStatus;
  attempt: number;
  requestedAt: number;
  /** When the spawn worker took the job (its latest attempt). */
  claimedAt?: number;
  /** When the prompt had reached the agent. */
  runningAt?: number;
  /** When the document was marked completed (or failed). */
  completedAt?: number;
  sandboxId?: string;
  agentSessionId?: string;
  output?: SessionOutput;
  error?: { code: string; message: string };
}

export interface PeerLogDoc {
  _id: string;
  sessionId: string;
  seq: number;
  at: number;
  kind: "tool" | "error" | "system";
  line: string;
  key: string;
}

/** The peer's documents and log lines in its database. */
export function peerCollections(db: Db): { sessions: Collection<PeerSessionDoc>; logs: Collection<PeerLogDoc> } {
  return { sessions: db.collection<PeerSessionDoc>(SESSIONS), logs: db.collection<PeerLogDoc>(LOGS) };
}

export const PeerRole = z.enum(["spawn", "watch"]);
export type PeerRole = z.infer<typeof PeerRole>;

/** A worker process's environment: its role and servers, and the fleet's FLEET_SIM_* settings. */
export const PeerEnv = z
  .object({
    PEER_ROLE: PeerRole,
    PEER_REDIS_URL: z.string().regex(/^redis:\/\/[^/]+(\/\d+)?\/?$/, "a redis://host:port URL"),
    PEER_MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, "a mongodb:// URI"),
    PEER_DATABASE: z.string().regex(/^[\w-]{1,63}$/),
    /** Jobs one worker process runs at once; high enough that the process, not this, is the limit. */
    PEER_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(64),
    /** Derives each session's agent password, as FLEET_AGENT_SECRET does for the fleet. */
    PEER_AGENT_SECRET: z.string().min(16),
    PEER_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "silent"]).default("warn"),
  })
  .extend(
    sandboxEnv.pick({
      FLEET_SIM_DIR: true,
      FLEET_SIM_CREATE_MS: true,
      FLEET_SIM_EVENTS: true,
      FLEET_SIM_EVENT_MS: true,
    }).shape,
  );
export type PeerEnv = z.infer<typeof PeerEnv>;

/** The line a worker process prints once it can take jobs. */
export const READY_LINE = "peer worker ready";

/**
 * ioredis options for a redis:// URL. Workers need `maxRetriesPerRequest: null` (BullMQ requires it
 * for their blocking commands); a producer keeps ioredis's default so an unreachable Redis fails an
 * add instead of hanging it.
 */
export function redisConnection(url: string, role: "worker" | "producer"): ConnectionOptions {
  const u = new URL(url);
  const db = Number(u.pathname.replace(/^\//, "") || "0");
  return {
    host: u.hostname,
    port: Number(u.port || "6379"),
    db,
    ...(role === "worker" ? { maxRetriesPerRequest: null } : {}),
  };
}
