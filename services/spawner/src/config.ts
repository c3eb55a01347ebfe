import { agentEnv, baseEnv, callbackEnv, gatewayClientEnv, modelEnv, projectsEnv, sandboxEnv } from "@fleet/shared";
import { z } from "zod";

export const SpawnerConfig = baseEnv
  .extend(sandboxEnv.shape)
  .extend(agentEnv.shape)
  .extend(modelEnv.shape)
  // With the gateway, the spawner needs neither the model's URL nor its key: agents call the gateway.
  .extend({ FLEET_MODEL_URL: modelEnv.shape.FLEET_MODEL_URL.optional() })
  .extend(gatewayClientEnv.shape)
  .extend(callbackEnv.shape)
  .extend(projectsEnv.shape)
  .extend({
    /** Requests this instance holds at once: setting up, or waiting in the admission queue. */
    SPAWNER_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(1_000).default(16),
    /**
     * Sandboxes running at once across the fleet (about 4 per 2 cores for local OpenCode); 0 = no cap
     * configured. Either way the provider's quota answers teach the fleet a lower cap when there is one.
     */
    FLEET_MAX_SANDBOXES: z.coerce.number().int().min(0).max(100_000).default(4),
    /** A cap learned from quota answers goes up by one after this long without another answer. */
    FLEET_ADMISSION_RAISE_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(60_000),
    /** Sandboxes running at once per project; 0 = no cap. */
    FLEET_MAX_SANDBOXES_PER_PROJECT: z.coerce.number().int().min(0).max(100_000).default(0),
    /** How long an agent server may take to answer its health route. */
    FLEET_AGENT_READY_MS: z.coerce.number().int().min(1_000).max(600_000).default(90_000),
    /** Warm pool: the most ready agents kept per pool key; 0 = no pool (every session starts cold). */
    FLEET_POOL_MAX: z.coerce.number().int().min(0).max(1_000).default(0),
    /** Warm pool: kept ready even without demand; 0 lets the pool shrink to nothing when idle. */
    FLEET_POOL_MIN: z.coerce.number().int().min(0).max(1_000).default(0),
    /** A warm sandbox older than this is replaced. */
    FLEET_POOL_MAX_AGE_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(900_000),
    /** How long a session looks for a ready agent before it starts cold. */
    FLEET_POOL_CLAIM_WAIT_MS: z.coerce.number().int().min(0).max(10_000).default(200),
    /** Demand (claims and misses) is counted over this window; none in it, and the pool shrinks to its minimum. */
    FLEET_POOL_WINDOW_MS: z.coerce.number().int().min(1_000).max(3_600_000).default(300_000),
    /** About how long a pooled agent takes to become ready: the demand during one refill is kept warm. */
    FLEET_POOL_REFILL_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
    /** Ready agents kept on top of the expected demand, for bursts. */
    FLEET_POOL_BURST: z.coerce.number().int().min(0).max(100).default(1),
    /** Pooled sandboxes this instance makes at once. */
    FLEET_POOL_MAX_CREATING: z.coerce.number().int().min(1).max(100).default(1),
    /** How often the pool checks, tops up and reaps. */
    FLEET_POOL_TICK_MS: z.coerce.number().int().min(100).max(60_000).default(1_000),
    /** Port of the /metrics endpoint; 0 turns it off. */
    SPAWNER_METRICS_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  })
  .superRefine((c, ctx) => {
    if (c.FLEET_GATEWAY_URL && !c.FLEET_GATEWAY_KEYS)
      ctx.addIssue({ code: "custom", path: ["FLEET_GATEWAY_KEYS"], message: "required with FLEET_GATEWAY_URL" });
    if (!c.FLEET_GATEWAY_URL && !c.FLEET_MODEL_URL)
      ctx.addIssue({
        code: "custom",
        path: ["FLEET_MODEL_URL"],
        message: "required unless FLEET_GATEWAY_URL names the model gateway",
      });
  });
export type SpawnerConfig = z.infer<typeof SpawnerConfig>;
