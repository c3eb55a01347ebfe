import { spawn } from "node:child_process";
import { join } from "node:path";
import { ensureFerretDb, ensureNatsServer, ensureUpstreamFerretDb, defaultToolsDir } from "@fleet/devtools/infra";
import type { CliContext } from "./infra.js";
import { ensureDebianPackages, SANDBOX_PACKAGES, SUITE_PACKAGES } from "./debian.js";
import { ensureSchemathesis } from "./schemathesis.js";

/**
 * Builds the server binaries the suite needs (unless given URLs), installs bubblewrap, redis-server
 * and the API fuzzer (schemathesis, into .tools/venv), then runs `npm test`.
 */
export async function testCmd(ctx: CliContext, args: string[], root: string): Promise<number> {
  const tools = defaultToolsDir();
  const started = Date.now();
  await Promise.all([
    ctx.env.NATS_URL ? undefined : ensureNatsServer(tools, ctx.out),
    ctx.env.MONGODB_URI ? undefined : ensureFerretDb(tools, ctx.out),
  ]);
  // The conformance suite shows that the store refuses upstream FerretDB: built here, not under a test's clock.
  await ensureUpstreamFerretDb(join(tools, "upstream"), ctx.out);
  ensureDebianPackages(ctx, [...SANDBOX_PACKAGES, ...SUITE_PACKAGES]);
  // Without it test/schemathesis.test.ts fails (saying so); the rest of the suite still runs.
  ensureSchemathesis(tools, ctx.out);
  const code = await new Promise<number>((resolve) => {
    const child = spawn("npm", ["test", ...(args.length ? ["--", ...args] : [])], { cwd: root, stdio: "inherit" });
    child.once("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  ctx.out(`fleet test finished in ${((Date.now() - started) / 1000).toFixed(1)} s with exit code ${code}`);
  return code;
}
