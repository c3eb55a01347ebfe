import { baseEnv } from "@fleet/shared";
import { z } from "zod";

export const PollerConfig = baseEnv.extend({
  /** Sessions this instance watches at once. */
  POLLER_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(100_000).default(500),
});
export type PollerConfig = z.infer<typeof PollerConfig>;
