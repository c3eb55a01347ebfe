import { chmodSync, rmSync } from "node:fs";
import { z } from "zod";
import { createEnvdServer } from "./server.js";

/**
 * envd's entry point inside a local E2B sandbox: `node envd/main.js <socket> <options JSON>`,
 * started by the local E2B as the sandbox's first background process.
 */
const Args = z.tuple([
  z.string().min(1),
  z.string().transform((s, ctx) => {
    try {
      return z
        .object({
          sandboxId: z.string().min(1),
          home: z.string().startsWith("/"),
          user: z.string().min(1),
          sandboxEnvNames: z.array(z.string()),
          markerVar: z.string().min(1),
        })
        .parse(JSON.parse(s));
    } catch (err) {
      ctx.addIssue({ code: "custom", message: `bad options: ${(err as Error).message}` });
      return z.NEVER;
    }
  }),
]);

const parsed = Args.safeParse(process.argv.slice(2));
if (!parsed.success) {
  console.error(`envd: ${z.prettifyError(parsed.error)}`);
  process.exit(2);
}
const [socket, options] = parsed.data;
rmSync(socket, { force: true });
const { server, shutdown } = createEnvdServer(options);
server.listen(socket, () => {
  chmodSync(socket, 0o600);
  console.log(`envd listening on ${socket}`);
});
for (const signal of ["SIGTERM", "SIGINT"] as const)
  process.once(signal, () => {
    shutdown();
    process.exit(0);
  });
