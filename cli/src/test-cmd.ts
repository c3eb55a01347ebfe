import { spawn, spawnSync } from "node:child_process";
import { ensureFerretDb, ensureNatsServer, defaultToolsDir } from "@fleet/shared/infra";
import type { CliContext } from "./infra.js";
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
  ensureDebianPackages(ctx);
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
 * Debian packages the suite uses: bubblewrap (the local sandbox provider isolates agents with it
 * when installed; the suite tests that mode only where it exists) and redis-server (the BullMQ
 * peer of the benchmarks; its test fails without it). As root with apt, install the missing ones
 * (once); otherwise say what is missing.
 */
const DEBIAN_PACKAGES = [
  { name: "bubblewrap", probe: ["bwrap", "--version"], without: "sandbox isolation tests run in plain mode only" },
  { name: "redis-server", probe: ["redis-server", "--version"], without: "test/bench-peer.test.ts (the BullMQ peer) fails" },
] as const;

function ensureDebianPackages(ctx: CliContext): void {
  const has = (probe: readonly string[]): boolean => spawnSync(probe[0] as string, probe.slice(1), { stdio: "ignore" }).status === 0;
  const missing = DEBIAN_PACKAGES.filter((p) => !has(p.probe));
  if (missing.length === 0) return;
  const canApt = process.getuid?.() === 0 && spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
  if (!canApt) {
    for (const p of missing) ctx.out(`${p.name} not found (Debian package ${p.name}): ${p.without}`);
    return;
  }
  const names = missing.map((p) => p.name);
  ctx.out(`installing ${names.join(", ")} (apt-get)`);
  const quiet = { stdio: "ignore" as const, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } };
  if (spawnSync("apt-get", ["install", "-y", "-q", ...names], quiet).status !== 0) {
    spawnSync("apt-get", ["update", "-q"], quiet);
    spawnSync("apt-get", ["install", "-y", "-q", ...names], quiet);
  }
  for (const p of missing) if (!has(p.probe)) ctx.out(`could not install ${p.name}: ${p.without}`);
}
