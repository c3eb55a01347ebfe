import { z } from "zod";

/**
 * Fault knobs of the local E2B, settable at any time by a test (or at start). Counted faults apply
 * to the next N creates, in this order: slow create, rate limit (429 with Retry-After), 5xx (set-timeout has a 5xx count of its own); the
 * concurrent-sandbox quota answers 429 like E2B's own limit whenever it would be exceeded.
 */
export const LocalE2BFaults = z.object({
  /** Every create waits this long before it is answered. */
  createDelayMs: z.number().int().min(0).max(600_000).default(0),
  /** The next N creates answer 429 with Retry-After. */
  rateLimitCreates: z.number().int().min(0).default(0),
  retryAfterSeconds: z.number().int().min(0).max(3_600).default(1),
  /** The next N creates answer `failStatus`. */
  failCreates: z.number().int().min(0).default(0),
  failStatus: z.number().int().min(500).max(599).default(500),
  /** The next N set-timeout calls answer `failStatus` (the sandbox keeps the end it had). */
  failSetTimeouts: z.number().int().min(0).default(0),
  /** Concurrent sandboxes allowed (running plus being created); unset: no limit. */
  maxConcurrent: z.number().int().min(1).optional(),
});
export type LocalE2BFaults = z.output<typeof LocalE2BFaults>;
export type LocalE2BFaultsInput = z.input<typeof LocalE2BFaults>;

/** What the local E2B counted, for tests to check what the fleet saw. */
export interface LocalE2BStats {
  created: number;
  rateLimited: number;
  quotaRejected: number;
  failed: number;
  expired: number;
  /** Set-timeout calls answered, and those failed by `failSetTimeouts`. */
  timeoutsSet: number;
  timeoutsFailed: number;
  running: number;
  peakRunning: number;
}
