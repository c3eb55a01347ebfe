import { loadConfigOrExit, onSignals } from "@fleet/shared";
import { poolMetrics, serveMetrics } from "@fleet/shared/metrics";
import { createAgentRuntime, createSandboxProvider, startRuntime } from "@fleet/shared/service";
import { createSpawner } from "./spawn.js";
import { PoolManager } from "./pool.js";
import { SpawnerConfig } from "./config.js";
import { DEFAULT_CAP_POLICY } from "./admission-cap.js";

const config = loadConfigOrExit(SpawnerConfig, process.env);
const rt = await startRuntime("spawner", config);
const provider = await createSandboxProvider(config, rt.logger);
const gateway =
  config.FLEET_GATEWAY_URL && config.FLEET_GATEWAY_KEYS
    ? { url: config.FLEET_GATEWAY_URL, tokens: { keys: config.FLEET_GATEWAY_KEYS } }
    : undefined;
const model = config.FLEET_GATEWAY_URL
  ? // Agents reach the model through the gateway only; this spawner holds no model key.
    {
      baseUrl: config.FLEET_GATEWAY_URL,
      apiKey: "none",
      models: [config.FLEET_MODEL, ...config.FLEET_FALLBACK_MODELS],
    }
  : {
      baseUrl: config.FLEET_MODEL_URL ?? "",
      apiKey: config.FLEET_MODEL_API_KEY,
      models: [config.FLEET_MODEL, ...config.FLEET_FALLBACK_MODELS],
    };
const runtime = await createAgentRuntime(config, rt.logger);
const pool =
  config.FLEET_POOL_MAX > 0
    ? new PoolManager(
        {
          store: rt.store,
          provider,
          runtime,
          logger: rt.logger.child({ component: "pool" }),
          metrics: poolMetrics(rt.metrics.registry),
        },
        {
          fleet: config.FLEET_NAME,
          instanceId: rt.instanceId,
          agentSecret: config.FLEET_AGENT_SECRET,
          model,
          ...(gateway ? { gateway } : {}),
          egress: [gateway?.url ?? model.baseUrl, ...(config.FLEET_CALLBACK_URL ? [config.FLEET_CALLBACK_URL] : [])],
          agentReadyMs: config.FLEET_AGENT_READY_MS,
          maxAgeMs: config.FLEET_POOL_MAX_AGE_MS,
          claimWaitMs: config.FLEET_POOL_CLAIM_WAIT_MS,
          globalCap: config.FLEET_MAX_SANDBOXES,
          tickMs: config.FLEET_POOL_TICK_MS,
          min: config.FLEET_POOL_MIN,
          max: config.FLEET_POOL_MAX,
          windowMs: config.FLEET_POOL_WINDOW_MS,
          refillMs: config.FLEET_POOL_REFILL_MS,
          burst: config.FLEET_POOL_BURST,
          maxCreating: config.FLEET_POOL_MAX_CREATING,
        },
      )
    : undefined;
const spawner = createSpawner(
  {
    store: rt.store,
    bus: rt.bus,
    provider,
    runtime,
    logger: rt.logger,
    metrics: rt.metrics,
    settings: {
      admission: {
        global: config.FLEET_MAX_SANDBOXES,
        perProject: config.FLEET_MAX_SANDBOXES_PER_PROJECT,
        pollMs: 500,
        policy: {
          raiseEveryMs: config.FLEET_ADMISSION_RAISE_MS,
          decreaseGapMs: DEFAULT_CAP_POLICY.decreaseGapMs,
          limitMemoryMs: DEFAULT_CAP_POLICY.limitMemoryMs,
        },
      },
      ...(config.FLEET_CALLBACK_KEYS && config.FLEET_CALLBACK_URL
        ? { callbacks: { tokens: { keys: config.FLEET_CALLBACK_KEYS }, url: config.FLEET_CALLBACK_URL } }
        : {}),
      fleet: config.FLEET_NAME,
      projects: config.FLEET_PROJECTS,
      instanceId: rt.instanceId,
      agentSecret: config.FLEET_AGENT_SECRET,
      ...(gateway ? { gateway } : {}),
      model,
      ...(pool ? { pool } : {}),
      agentReadyMs: config.FLEET_AGENT_READY_MS,
    },
  },
  { maxInFlight: config.SPAWNER_MAX_IN_FLIGHT, heartbeatMs: rt.heartbeatMs },
);
// Registered after the bus, so it runs before it: stop taking work, then drain the connection.
// Registered before the consumer, so it runs after it: no setup is left claiming while the warm sandboxes go.
if (pool) rt.closer.add("pool", () => pool.stop());
rt.closer.add("consumer", () => spawner.stop(config.FLEET_SHUTDOWN_MS));
if (config.SPAWNER_METRICS_PORT) {
  const server = await serveMetrics(rt.metrics.registry, config.SPAWNER_METRICS_PORT, config.FLEET_METRICS_HOST);
  rt.closer.add("metrics", () => new Promise<void>((r) => server.close(() => r())));
}
onSignals(() => rt.closer.close(), config.FLEET_SHUTDOWN_MS);
spawner.start();
pool?.start();
rt.logger.info(
  {
    provider: provider.name,
    maxInFlight: config.SPAWNER_MAX_IN_FLIGHT,
    model: config.FLEET_GATEWAY_URL
      ? `gateway ${config.FLEET_GATEWAY_URL}`
      : "direct (the model key reaches sandboxes)",
  },
  "spawner started",
);
process.stdout.write(`spawner ready (${provider.name} sandboxes)\n`);
