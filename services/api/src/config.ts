import { baseEnv } from "@fleet/shared";
import { z } from "zod";

export const ApiConfig = baseEnv.extend({
  API_HOST: z.string().min(1).default("127.0.0.1"),
  API_PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
});
export type ApiConfig = z.infer<typeof ApiConfig>;
