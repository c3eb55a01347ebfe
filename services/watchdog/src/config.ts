import { baseEnv } from "@fleet/shared";
import { z } from "zod";

export const WatchdogConfig = baseEnv.extend({
  /** How often deadlines are checked. */
  WATCHDOG_INTERVAL_MS: z.coerce.number().int().min(100).max(600_000).default(5_000),
});
export type WatchdogConfig = z.infer<typeof WatchdogConfig>;
