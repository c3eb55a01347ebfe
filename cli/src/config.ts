import { z } from "zod";

/** What the CLI reads from the environment; absent URLs mean "start local servers". */
export const CliEnv = z.object({
  NATS_URL: z.string().min(1).optional(),
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://")
    .optional(),
  DOCKER_HOST: z.string().optional(),
  FLEET_NATS_SYNC_INTERVAL: z
    .string()
    .regex(/^(always|\d+(ms|s|m|h))$/, "always, or a duration such as 10s")
    .optional()
    .describe(
      "JetStream's sync_interval on the local NATS servers (default: nats-server's, lazy; always: fsync each write)",
    ),
  FLEET_HOME: z.string().min(1).optional().describe("where ./fleet keeps state and logs (default <root>/.fleet)"),
  FLEET_API_KEY: z
    .string()
    .min(1)
    .optional()
    .describe("the API key for submit, logs, ls, show (default: the development key of ./fleet up)"),
  FLEET_DB: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/)
    .optional(),
  FLEET_NAME: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/)
    .optional()
    .describe("the fleet whose warm pool ./fleet pool shows (default fleet)"),
  FLEET_API_URL: z
    .url()
    .optional()
    .describe("the api for submit, logs, ls, show (default: the one ./fleet up started)"),
  FLEET_MODEL_URL: z.url().optional().describe("an OpenAI-compatible model endpoint; unset: the scripted model server"),
  FLEET_MODEL: z.string().min(1).optional(),
  FLEET_MODEL_API_KEY: z.string().min(1).optional().describe("the model's key: given to the model gateway only"),
  FLEET_FALLBACK_MODELS: z.string().optional(),
  GATEWAY_PRICES: z.string().optional().describe("the gateway's price table (see the README)"),
  GATEWAY_PROJECT_DAILY_TOKENS: z.string().optional(),
  GATEWAY_PROJECT_DAILY_COST: z.string().optional(),
  GATEWAY_SESSION_CACHE_MS: z.string().optional(),
  GATEWAY_FIRST_BYTE_TIMEOUT_MS: z.string().optional(),
  FLEET_SANDBOX_ISOLATION: z
    .enum(["bubblewrap", "none"])
    .optional()
    .describe(
      "none: agents run unisolated, as the fleet's user on the host's network (development only; default bubblewrap)",
    ),
});
export type CliEnv = z.infer<typeof CliEnv>;
