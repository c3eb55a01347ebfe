import { z } from "zod";
import { FleetError } from "../errors/index.js";

/**
 * Config pieces shared by every service. Each service composes its own schema from these and calls
 * `loadConfig(schema, process.env)` in main.ts only; adapters receive their slice as plain objects.
 */
const namespace = z
  .string()
  .regex(/^[a-z0-9_-]*$/, "lower-case letters, digits, '_' and '-' only")
  .max(32)
  .default("");

export const logLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info");

export const busEnv = z.object({
  NATS_URL: z.string().min(1).default("nats://127.0.0.1:4222"),
  FLEET_NAMESPACE: namespace,
});

export const storeEnv = z.object({
  MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://").default("mongodb://127.0.0.1:27017/"),
  FLEET_DB: z.string().regex(/^[A-Za-z0-9_-]{1,63}$/).default("fleet"),
});

export const baseEnv = busEnv.extend(storeEnv.shape).extend({
  LOG_LEVEL: logLevel,
  FLEET_SHUTDOWN_MS: z.coerce.number().int().min(0).max(600_000).default(10_000),
});

export type BaseEnv = z.infer<typeof baseEnv>;

export function loadConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    throw new FleetError("config", `invalid configuration:\n${z.prettifyError(result.error)}`, {
      details: result.error.issues,
    });
  }
  return result.data;
}

/** For main.ts: print what is wrong with the environment and exit 1. */
export function loadConfigOrExit<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  try {
    return loadConfig(schema, env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}
