import { baseEnv } from "@fleet/shared";
import { z } from "zod";

export const SpawnerConfig = baseEnv.extend({
  /** Sessions this instance sets up at once; each holds a sandbox that is starting. */
  SPAWNER_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(1_000).default(4),
});
export type SpawnerConfig = z.infer<typeof SpawnerConfig>;
