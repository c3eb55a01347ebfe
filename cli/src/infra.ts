import { join } from "node:path";
import { safeUrl } from "@fleet/shared";
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
  /** The project's root folder. */
  root: string;
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

export async function infraStatusCmd(ctx: CliContext, a: { json: boolean }): Promise<number> {
  const health = await infraStatus(infraDir(ctx));
  if (a.json) {
    ctx.out(
      JSON.stringify(
        health
          ? {
              running: true,
              nats: { ready: health.natsReady, url: health.state.natsUrl, kind: health.state.nats },
              store: { ready: health.storeReady, url: safeUrl(health.state.mongoUri), kind: health.state.store },
              processes: health.processes,
            }
          : { running: false },
      ),
    );
    return health?.natsReady && health.storeReady ? 0 : 1;
  }
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
