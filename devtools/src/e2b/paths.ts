import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const E2B_HOME_PATH = "/home/user";
export const E2B_USER = "user";

/**
 * envd runs inside each sandbox from the built tooling (devtools/dist): build first. Its folder and
 * zod's are readable inside the sandbox, nothing else of the repository.
 */
export function envdScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // From src (tests run the sources) or dist, the built script is in dist.
  return join(here, "..", "..", "dist", "e2b", "envd", "main.js");
}

export function envdReadable(): string[] {
  const require = createRequire(import.meta.url);
  const zod = dirname(require.resolve("zod/package.json"));
  return [join(dirname(envdScript()), ".."), zod];
}
