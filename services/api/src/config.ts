import { baseEnv, callbackEnv, projectsEnv, sandboxEnv } from "@fleet/shared";
import { z } from "zod";

export const ApiConfig = baseEnv
  .extend(sandboxEnv.shape)
  .extend(callbackEnv.shape)
  .extend(projectsEnv.shape)
  .extend({
    API_HOST: z.string().min(1).default("127.0.0.1"),
    API_PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
    /** "keys": every /v1 route needs an API key (./fleet keys create); "off": a trusted network only. */
    API_AUTH: z.enum(["keys", "off"]).default("keys"),
    /** Submits per minute per API key; more are answered 429 with Retry-After. */
    API_SUBMITS_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(60),
    /** Open log streams (server-sent events) one API key may hold; more are answered 429. */
    API_FOLLOWERS_PER_KEY: z.coerce.number().int().min(1).max(100_000).default(50),
    /** Open log streams one api process serves, all keys together; more are answered 429. */
    API_FOLLOWERS_MAX: z.coerce.number().int().min(1).max(100_000).default(1_000),
  });
export type ApiConfig = z.infer<typeof ApiConfig>;
