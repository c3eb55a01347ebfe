import { z } from "zod";

/** What the CLI reads from the environment; absent URLs mean "start local servers". */
export const CliEnv = z.object({
  NATS_URL: z.string().min(1).optional(),
  MONGODB_URI: z.string().regex(/^mongodb(\+srv)?:\/\//, "must start with mongodb:// or mongodb+srv://").optional(),
  DOCKER_HOST: z.string().optional(),
  FLEET_HOME: z.string().min(1).optional().describe("where ./fleet keeps state and logs (default <root>/.fleet)"),
});
export type CliEnv = z.infer<typeof CliEnv>;
