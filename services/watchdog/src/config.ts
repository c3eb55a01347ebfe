import { baseEnv, sandboxEnv } from "@fleet/shared";
import { z } from "zod";

export const WatchdogConfig = baseEnv.extend(sandboxEnv.shape).extend({
  /** How often deadlines are checked. */
  WATCHDOG_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(5_000),
  /** A terminal event still owed after this long is published by the watchdog (checked with the deadlines). */
  WATCHDOG_DEBT_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(3_000),
  /**
   * A running session's watch lease (FLEET_WATCH_LEASE_MS) lapsed this long ago before session.running
   * is published again for it: covers clocks that differ between hosts and a renewal on its way.
   */
  WATCHDOG_LEASE_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
  /** How often the provider's sandboxes are matched against their sessions. */
  REAPER_INTERVAL_MS: z.coerce.number().int().min(500).max(3_600_000).default(30_000),
  /** A sandbox younger than this is left alone by the reaper (its session may not record it yet). */
  REAPER_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(30_000),
  /** An unclaimed warm-pool sandbox whose owner has not refreshed its record for this long is reaped. */
  REAPER_POOL_STALE_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(30_000),
  /** Serves /metrics (timeouts and cancels are counted here) when set. */
  WATCHDOG_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
});
export type WatchdogConfig = z.infer<typeof WatchdogConfig>;
