import { CallbackKeys, baseEnv, modelEnv } from "@fleet/shared";
import { z } from "zod";
import { PriceTable, ProjectLimits } from "./prices.js";

export const GatewayConfig = baseEnv.extend(modelEnv.shape).extend({
  /** Keys that verify agents' tokens (`kid:secret,…`); the spawner signs with the first of the same list. */
  FLEET_GATEWAY_KEYS: CallbackKeys,
  GATEWAY_HOST: z.string().min(1).default("127.0.0.1"),
  /** 0 picks a free port (printed on start). */
  GATEWAY_PORT: z.coerce.number().int().min(0).max(65_535).default(8090),
  /** `model=in/out[/cached],…`: price per million tokens (input, output, cached input); `*` for any other model. */
  GATEWAY_PRICES: PriceTable,
  /** `project=tokens,…` (`*` for any other project): tokens (in + out) a project may use per UTC day. */
  GATEWAY_PROJECT_DAILY_TOKENS: ProjectLimits,
  /** `project=cost,…` (`*` for any other project): cost a project may spend per UTC day. */
  GATEWAY_PROJECT_DAILY_COST: ProjectLimits,
  /** Port of /metrics (not the agents' port: the counters name every project); 0 turns it off. */
  GATEWAY_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  /** How long a session's status and totals are trusted before the store is asked again. */
  GATEWAY_SESSION_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
  /** How long the upstream may take to answer a call's headers before the next model is tried. */
  GATEWAY_FIRST_BYTE_TIMEOUT_MS: z.coerce.number().int().min(100).max(900_000).default(120_000),
  /** Largest request body accepted from an agent. */
  GATEWAY_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1_024)
    .max(256 * 1024 * 1024)
    .default(32 * 1024 * 1024),
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;
