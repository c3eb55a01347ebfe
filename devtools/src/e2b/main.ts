import { createLogger } from "@fleet/shared/log";
import { z } from "zod";
import { startLocalE2B } from "./index.js";

/**
 * A local E2B on its own: `node devtools/dist/e2b/main.js` (as root, for bubblewrap). Prints the
 * environment that points the fleet's e2b provider at it, then runs until SIGINT/SIGTERM.
 * LOCAL_E2B_API_PORT, LOCAL_E2B_SANDBOX_PORT, LOCAL_E2B_API_KEY, LOCAL_E2B_EGRESS (comma-separated
 * URLs) and LOCAL_E2B_READABLE (comma-separated folders) configure it.
 */
const list = z
  .string()
  .optional()
  .transform((s) => (s ? s.split(",").filter(Boolean) : []));
const Env = z.object({
  LOCAL_E2B_API_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  LOCAL_E2B_SANDBOX_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  LOCAL_E2B_API_KEY: z.string().min(1).optional(),
  LOCAL_E2B_EGRESS: list,
  LOCAL_E2B_READABLE: list,
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

const env = Env.safeParse(process.env);
if (!env.success) {
  console.error(z.prettifyError(env.error));
  process.exit(1);
}
const logger = createLogger({ name: "local-e2b", level: env.data.LOG_LEVEL });
const e2b = await startLocalE2B(
  {
    apiPort: env.data.LOCAL_E2B_API_PORT,
    sandboxPort: env.data.LOCAL_E2B_SANDBOX_PORT,
    ...(env.data.LOCAL_E2B_API_KEY ? { apiKey: env.data.LOCAL_E2B_API_KEY } : {}),
    egress: env.data.LOCAL_E2B_EGRESS,
    readable: env.data.LOCAL_E2B_READABLE,
  },
  logger,
);
for (const [k, v] of Object.entries(e2b.env)) console.log(`${k}=${v}`);
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    void e2b.stop().then(() => process.exit(0));
  });
