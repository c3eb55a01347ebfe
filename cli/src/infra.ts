import { join } from "node:path";
import { FleetError, safeUrl } from "@fleet/shared";
import {
  infraStatus,
  isAlive,
  readInfraState,
  startInfra,
  stopInfraFromState,
  writeInfraState,
} from "@fleet/devtools/infra";
import type { CliEnv } from "./config.js";

export interface CliContext {
  env: CliEnv;
  home: string;
  out: (line: string) => void;
}

export function infraDir(ctx: CliContext): string {
  return join(ctx.home, "infra");
}

function printExports(
  ctx: CliContext,
  natsUrl: string,
  mongoUri: string,
  users?: ReadonlyArray<{ role: string; user: string; password: string }>,
): void {
  ctx.out(`  NATS_URL=${natsUrl}`);
  ctx.out(`  MONGODB_URI=${safeUrl(mongoUri)}`);
  const outside = users?.find((u) => u.role === "outside");
  if (outside)
    ctx.out(`  NATS user for outside systems: ${outside.user} (password in ${join(infraDir(ctx), "infra.json")})`);
  ctx.out(`use them with: eval "$(./fleet infra env)"`);
}

export interface InfraUpOptions {
  /** Nodes of the local NATS cluster; unset: one server. */
  cluster?: number;
}

/** `--cluster N` among a command's arguments (N from 3 to 7: a majority survives the loss of a node). */
export function clusterArg(args: readonly string[]): InfraUpOptions {
  const at = args.indexOf("--cluster");
  if (at < 0) return {};
  const n = Number(args[at + 1]);
  if (!Number.isInteger(n) || n < 3 || n > 7)
    throw new FleetError("config", "--cluster takes a node count from 3 to 7");
  return { cluster: n };
}

export async function infraUp(ctx: CliContext, options: InfraUpOptions = {}): Promise<number> {
  const dir = infraDir(ctx);
  const existing = readInfraState(dir);
  if (existing?.processes.every((p) => isAlive(p.pid))) {
    ctx.out(`infrastructure already running (since ${new Date(existing.startedAt).toISOString()})`);
    printExports(ctx, existing.natsUrl, existing.mongoUri, existing.natsUsers);
    return 0;
  }
  if (existing) await stopInfraFromState(dir);
  const infra = await startInfra({
    dataDir: dir,
    persistent: true,
    natsUrl: ctx.env.NATS_URL,
    mongoUri: ctx.env.MONGODB_URI,
    dockerHost: ctx.env.DOCKER_HOST,
    natsAuth: true,
    natsCluster: options.cluster,
    natsSyncInterval: ctx.env.FLEET_NATS_SYNC_INTERVAL,
    progress: (m) => ctx.out(m),
  });
  writeInfraState(dir, infra);
  const nodes = options.cluster && infra.nats === "local" ? ` (${options.cluster}-node cluster)` : "";
  ctx.out(`infrastructure up: nats ${infra.nats}${nodes}, store ${infra.store}; data and logs in ${dir}`);
  printExports(ctx, infra.natsUrl, infra.mongoUri, infra.natsUsers);
  return 0;
}

export async function infraDown(ctx: CliContext): Promise<number> {
  const state = await stopInfraFromState(infraDir(ctx));
  ctx.out(
    state
      ? `stopped ${state.processes.map((p) => `${p.name} (${p.pid})`).join(", ") || "nothing local"}`
      : "nothing to stop",
  );
  return 0;
}

export async function infraStatusCmd(ctx: CliContext): Promise<number> {
  const health = await infraStatus(infraDir(ctx));
  if (!health) {
    ctx.out("infrastructure is not running (start it with ./fleet infra up)");
    return 1;
  }
  ctx.out(`nats   ${health.natsReady ? "ready" : "NOT ANSWERING"}  ${health.state.natsUrl} (${health.state.nats})`);
  ctx.out(
    `store  ${health.storeReady ? "ready" : "NOT ANSWERING"}  ${safeUrl(health.state.mongoUri)} (${health.state.store})`,
  );
  for (const p of health.processes) ctx.out(`  ${p.name.padEnd(12)} pid ${p.pid} ${p.alive ? "alive" : "gone"}`);
  return health.natsReady && health.storeReady ? 0 : 1;
}

/** Prints shell exports for the running infrastructure. */
export function infraEnv(ctx: CliContext): number {
  const state = readInfraState(infraDir(ctx));
  if (!state) {
    process.stderr.write("infrastructure is not running (start it with ./fleet infra up)\n");
    return 1;
  }
  ctx.out(`export NATS_URL='${state.natsUrl}'`);
  ctx.out(`export MONGODB_URI='${state.mongoUri}'`);
  const outside = state.natsUsers?.find((u) => u.role === "outside");
  // The outside role: publish requests, read logs and results (what another system would get).
  if (outside) ctx.out(`export NATS_USER='${outside.user}' NATS_PASSWORD='${outside.password}'`);
  return 0;
}
