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
    /** Sandboxes running at once across the fleet (about 4 per 2 cores for local OpenCode); 0 = no cap. */
    FLEET_MAX_SANDBOXES: z.coerce.number().int().min(0).max(100_000).default(4),
    /** Sandboxes running at once per project; 0 = no cap. */
    FLEET_MAX_SANDBOXES_PER_PROJECT: z.coerce.number().int().min(0).max(100_000).default(0),
    /** How long an agent server may take to answer its health route. */
    FLEET_AGENT_READY_MS: z.coerce.number().int().min(1_000).max(600_000).default(90_000),
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
