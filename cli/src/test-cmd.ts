import { spawn, spawnSync } from "node:child_process";
import { ensureFerretDb, ensureNatsServer, defaultToolsDir } from "@fleet/shared/infra";
import type { CliContext } from "./infra.js";
import { ensureSchemathesis } from "./schemathesis.js";

/**
 * Builds the server binaries the suite needs (unless given URLs), installs bubblewrap and the API
 * fuzzer (schemathesis, into .tools/venv), then runs `npm test`.
 */
export async function testCmd(ctx: CliContext, args: string[], root: string): Promise<number> {
  const tools = defaultToolsDir();
  const started = Date.now();
  await Promise.all([
    ctx.env.NATS_URL ? undefined : ensureNatsServer(tools, ctx.out),
    ctx.env.MONGODB_URI ? undefined : ensureFerretDb(tools, ctx.out),
  ]);
  ensureBubblewrap(ctx);
  // Without it test/schemathesis.test.ts fails (saying so); the rest of the suite still runs.
  ensureSchemathesis(tools, ctx.out);
  const code = await new Promise<number>((resolve) => {
    const child = spawn("npm", ["test", ...(args.length ? ["--", ...args] : [])], { cwd: root, stdio: "inherit" });
    child.once("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
  ctx.out(`fleet test finished in ${((Date.now() - started) / 1000).toFixed(1)} s with exit code ${code}`);
  return code;
}

/**
 * The local sandbox provider isolates agents with bubblewrap when it is installed; the suite tests
 * that mode only where it exists. As root with apt, install it (once); otherwise say it is missing.
 */
function ensureBubblewrap(ctx: CliContext): void {
  const has = (): boolean => spawnSync("bwrap", ["--version"], { stdio: "ignore" }).status === 0;
  if (has()) return;
  const canApt = process.getuid?.() === 0 && spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
  if (!canApt) {
    ctx.out("bubblewrap not found (Debian package bubblewrap): sandbox isolation tests run in plain mode only");
    return;
  }
  ctx.out("installing bubblewrap for sandbox isolation (apt-get)");
  const quiet = { stdio: "ignore" as const, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } };
  if (spawnSync("apt-get", ["install", "-y", "-q", "bubblewrap"], quiet).status !== 0) {
    spawnSync("apt-get", ["update", "-q"], quiet);
    spawnSync("apt-get", ["install", "-y", "-q", "bubblewrap"], quiet);
  }
  if (!has()) ctx.out("could not install bubblewrap: sandbox isolation tests run in plain mode only");
}
