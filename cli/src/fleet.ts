import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FleetError } from "@fleet/shared";
import {
  isAlive,
  logTail,
  ownLog,
  repoRoot,
  startProcess,
  startService,
  stopPid,
  type FleetProcessOptions,
  type ManagedProcess,
  type ServiceName,
} from "@fleet/devtools/infra";
import { ensureDebianPackages, SANDBOX_PACKAGES } from "./debian.js";
import { clearFleetState, readFleetState, writeFleetState } from "./fleet-state.js";
import { infraDown, infraDir, infraUp, type CliContext, type InfraUpOptions } from "./infra.js";
import { createKey, keyFile, openStoreFor, saveDevKey } from "./keys.js";
import { readInfraState } from "@fleet/devtools/infra";
import { reachableSandboxRoot } from "@fleet/shared/sandbox";
import { z } from "zod";

/** The secret agent passwords are derived from; made once per FLEET_HOME and kept private. */
export function agentSecret(home: string): string {
  const file = join(home, "agent-secret");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(home, { recursive: true });
  const secret = randomBytes(32).toString("base64url");
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return secret;
}

/**
 * Keys that sign tokens of one kind (`kid:secret`): sandbox callback tokens (kid k1) or model gateway
 * tokens (kid g1). Made once per FLEET_HOME and kept private.
 */
export function signingKeys(home: string, kind: "callback" | "gateway"): string {
  const file = join(home, `${kind}-keys`);
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(home, { recursive: true });
  const keys = `${kind === "callback" ? "k1" : "g1"}:${randomBytes(32).toString("base64url")}`;
  writeFileSync(file, `${keys}\n`, { mode: 0o600 });
  return keys;
}

/** The scripted model server as its own process; resolves with its base URL. */
export async function startModelProcess(
  logDir: string,
  persistent: boolean,
  scenario = "demo",
): Promise<{ url: string; process: ManagedProcess }> {
  mkdirSync(logDir, { recursive: true });
  const proc = startProcess({
    name: "scripted-model",
    command: process.execPath,
    args: [join(repoRoot(), "devtools", "dist", "model", "main.js"), "--port", "0", "--scenario-name", scenario],
    logFile: join(logDir, "scripted-model.log"),
    persistent,
  });
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    const m = /listening on (http\S+)/.exec(ownLog(proc));
    if (m?.[1]) return { url: m[1], process: proc };
    if (!proc.running) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  await proc.stop();
  throw new FleetError(
    "infra",
    `the scripted model server did not start; its log ends with:\n${logTail(proc.logFile)}`,
  );
}

export function modelEnvFor(ctx: CliContext): Record<string, string> {
  return {
    ...(ctx.env.FLEET_MODEL ? { FLEET_MODEL: ctx.env.FLEET_MODEL } : {}),
    ...(ctx.env.FLEET_FALLBACK_MODELS ? { FLEET_FALLBACK_MODELS: ctx.env.FLEET_FALLBACK_MODELS } : {}),
    // Passed on so that a developer can choose unisolated sandboxes; the services say so loudly.
    ...(ctx.env.FLEET_SANDBOX_ISOLATION ? { FLEET_SANDBOX_ISOLATION: ctx.env.FLEET_SANDBOX_ISOLATION } : {}),
  };
}

/** The gateway's own settings from the caller's environment: the model key (the gateway's alone), prices, budgets. */
export function gatewayEnvFor(ctx: CliContext): Record<string, string> {
  const names: ReadonlyArray<keyof CliContext["env"]> = [
    "FLEET_MODEL_API_KEY",
    "GATEWAY_PRICES",
    "GATEWAY_PROJECT_DAILY_TOKENS",
    "GATEWAY_PROJECT_DAILY_COST",
    "GATEWAY_SESSION_CACHE_MS",
    "GATEWAY_FIRST_BYTE_TIMEOUT_MS",
  ];
  return Object.fromEntries(names.flatMap((n) => (ctx.env[n] ? [[n, String(ctx.env[n])]] : [])));
}

/**
 * The environment of one service of `up` / `demo`: callbacks for all, the gateway's keys for the
 * gateway and the spawner, the model key for the gateway only, the gateway's URL for the spawner.
 */
export function serviceEnvFor(
  ctx: CliContext,
  name: ServiceName,
  urls: { api: string; gateway: string },
): Record<string, string> {
  return {
    ...modelEnvFor(ctx),
    FLEET_CALLBACK_KEYS: signingKeys(ctx.home, "callback"),
    ...(urls.api ? { FLEET_CALLBACK_URL: urls.api } : {}),
    ...(name === "gateway" ? { ...gatewayEnvFor(ctx), FLEET_GATEWAY_KEYS: signingKeys(ctx.home, "gateway") } : {}),
    ...(name === "spawner"
      ? { FLEET_GATEWAY_KEYS: signingKeys(ctx.home, "gateway"), FLEET_GATEWAY_URL: urls.gateway }
      : {}),
  };
}

/** Bubblewrap and socat, unless the developer chose unisolated sandboxes. */
export function ensureSandboxTools(ctx: CliContext): void {
  if (ctx.env.FLEET_SANDBOX_ISOLATION !== "none") ensureDebianPackages(ctx, SANDBOX_PACKAGES);
}

/** In this order: the spawner needs the api's URL (for callbacks) and the gateway's. */
export const SERVICES: ServiceName[] = ["api", "gateway", "spawner", "poller", "watchdog"];
/** The name `startFleetProcesses` gives the scripted model's process. */
export const SCRIPTED_MODEL = "scripted-model";

export interface FleetProcessesOptions {
  /** Where the processes write their logs. */
  logDir: string;
  sandboxDir: string;
  /** Outlive this process (`./fleet up`); otherwise they die with it. */
  persistent: boolean;
  /** More environment for every service. */
  env?: Record<string, string>;
  /** More environment for the spawner only (the warm pool of `up --pool`). */
  spawnerEnv?: Record<string, string>;
  /** Told of each process as soon as it runs (with the model's or the api's URL), so the caller can stop what did start. */
  started(name: string, process: ManagedProcess, url?: string): void;
}

/**
 * The scripted model (unless FLEET_MODEL_URL names a model) and one of each service, the api and the
 * model gateway first: the spawner is given their URLs (sandbox callbacks, the agents' model endpoint).
 */
export async function startFleetProcesses(
  ctx: CliContext,
  infra: Pick<FleetProcessOptions, "natsUrl" | "mongoUri" | "natsUsers">,
  options: FleetProcessesOptions,
): Promise<{ apiUrl: string; gatewayUrl: string; modelUrl: string }> {
  let modelUrl = ctx.env.FLEET_MODEL_URL;
  if (!modelUrl) {
    const model = await startModelProcess(options.logDir, options.persistent);
    options.started(SCRIPTED_MODEL, model.process, model.url);
    modelUrl = model.url;
  }
  const urls = { api: "", gateway: "" };
  for (const name of SERVICES) {
    const s = await startService(name, {
      natsUrl: infra.natsUrl,
      mongoUri: infra.mongoUri,
      dataDir: options.logDir,
      agentSecret: agentSecret(ctx.home),
      modelUrl,
      ...(options.persistent ? { persistent: true } : {}),
      ...(infra.natsUsers ? { natsUsers: infra.natsUsers } : {}),
      env: {
        ...serviceEnvFor(ctx, name, urls),
        FLEET_SANDBOX_DIR: options.sandboxDir,
        ...options.env,
        ...(name === "spawner" ? options.spawnerEnv : {}),
      },
    });
    options.started(name, s.process, s.url);
    if (s.url && (name === "api" || name === "gateway")) urls[name] = s.url;
  }
  return { apiUrl: urls.api, gatewayUrl: urls.gateway, modelUrl };
}

/** `--pool N`: ready agents the spawner keeps in its warm pool (at least and at most N). */
const PoolSize = z.number().int().min(1).max(1_000);

/** The spawner's environment for `up --pool N`: FLEET_POOL_MIN = FLEET_POOL_MAX = N; none without it. */
export function upSpawnerEnv(pool: number | undefined): Record<string, string> {
  if (pool === undefined) return {};
  const size = PoolSize.safeParse(pool);
  if (!size.success) throw new FleetError("bad_input", `--pool must be a whole number from 1 to 1000, not ${pool}`);
  return { FLEET_POOL_MAX: String(size.data), FLEET_POOL_MIN: String(size.data) };
}

/**
 * `./fleet up [--pool N] [--cluster N]`: infrastructure (NATS as one server or a local cluster), the
 * model (scripted unless FLEET_MODEL_URL), one of each service; with `--pool N` the spawner keeps a
 * warm pool of N ready agents.
 */
export async function upCmd(ctx: CliContext, pool?: number, infra: InfraUpOptions = {}): Promise<number> {
  const spawnerEnv = upSpawnerEnv(pool);
  const existing = readFleetState(ctx.home);
  if (existing?.processes.every((p) => isAlive(p.pid))) {
    ctx.out(`the fleet is already up: api ${existing.apiUrl}`);
    return 0;
  }
  if (existing) await downServices(ctx);
  ensureSandboxTools(ctx);
  await infraUp(ctx, infra);
  const state = readInfraState(infraDir(ctx));
  if (!state) throw new FleetError("infra", "infrastructure state missing after infra up");
  const logDir = join(ctx.home, "logs");
  mkdirSync(logDir, { recursive: true });
  const started: Array<{ name: string; pid: number; logFile: string }> = [];
  const { apiUrl, gatewayUrl, modelUrl } = await startFleetProcesses(ctx, state, {
    logDir,
    sandboxDir: reachableSandboxRoot(join(ctx.home, "sandboxes")),
    persistent: true,
    spawnerEnv,
    started: (name, proc, url) => {
      started.push({ name, pid: proc.pid, logFile: proc.logFile });
      ctx.out(
        name === SCRIPTED_MODEL
          ? `scripted model server: ${url}`
          : `${name.padEnd(8)} pid ${proc.pid}  log ${proc.logFile}`,
      );
    },
  });
  writeFleetState(ctx.home, { apiUrl, modelUrl, processes: started, startedAt: Date.now() });
  const store = await openStoreFor(ctx);
  const dev = await createKey(store, ["*"], "local development").finally(() => store.close());
  saveDevKey(ctx, dev.key);
  ctx.out(`the fleet is up: api ${apiUrl}, model gateway ${gatewayUrl}`);
  if (spawnerEnv.FLEET_POOL_MAX)
    ctx.out(`warm pool: ${spawnerEnv.FLEET_POOL_MAX} ready agent(s) kept; see ./fleet pool`);
  ctx.out(`development API key (all projects; also in ${keyFile(ctx)}): ${dev.key}`);
  ctx.out(`try: ./fleet submit -f "write a hello file"`);
  return 0;
}

async function downServices(ctx: CliContext): Promise<void> {
  const state = readFleetState(ctx.home);
  if (!state) return;
  // Services first, so none of them sees its bus or store vanish while it still works.
  await Promise.all(state.processes.filter((p) => p.name !== "scripted-model").map((p) => stopPid(p.pid, 15_000)));
  await Promise.all(state.processes.filter((p) => p.name === "scripted-model").map((p) => stopPid(p.pid)));
  clearFleetState(ctx.home);
  ctx.out(`stopped ${state.processes.map((p) => p.name).join(", ")}`);
}

/** `./fleet down`: everything `up` started. */
export async function downCmd(ctx: CliContext): Promise<number> {
  await downServices(ctx);
  return infraDown(ctx);
}
