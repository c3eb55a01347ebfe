import { loadConfigOrExit, onSignals } from "@fleet/shared";
import { serveMetrics } from "@fleet/shared/metrics";
import { createAgentRuntime, createSandboxProvider, startRuntime } from "@fleet/shared/service";
import { createSpawner } from "./spawn.js";
import { SpawnerConfig } from "./config.js";

const config = loadConfigOrExit(SpawnerConfig, process.env);
const rt = await startRuntime("spawner", config);
const provider = await createSandboxProvider(config, rt.logger);
const spawner = createSpawner(
  {
    store: rt.store,
    bus: rt.bus,
    provider,
    runtime: await createAgentRuntime(config, rt.logger),
    logger: rt.logger,
    metrics: rt.metrics,
    settings: {
      admission: {
        global: config.FLEET_MAX_SANDBOXES,
        perProject: config.FLEET_MAX_SANDBOXES_PER_PROJECT,
        pollMs: 500,
      },
      ...(config.FLEET_CALLBACK_KEYS && config.FLEET_CALLBACK_URL
        ? { callbacks: { tokens: { keys: config.FLEET_CALLBACK_KEYS }, url: config.FLEET_CALLBACK_URL } }
        : {}),
      fleet: config.FLEET_NAME,
      projects: config.FLEET_PROJECTS,
      instanceId: rt.instanceId,
      agentSecret: config.FLEET_AGENT_SECRET,
      ...(config.FLEET_GATEWAY_URL && config.FLEET_GATEWAY_KEYS
        ? { gateway: { url: config.FLEET_GATEWAY_URL, tokens: { keys: config.FLEET_GATEWAY_KEYS } } }
        : {}),
      model: config.FLEET_GATEWAY_URL
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
          },
      agentReadyMs: config.FLEET_AGENT_READY_MS,
    },
  },
  { maxInFlight: config.SPAWNER_MAX_IN_FLIGHT, heartbeatMs: rt.heartbeatMs },
);
// Registered after the bus, so it runs before it: stop taking work, then drain the connection.
rt.closer.add("consumer", () => spawner.stop(config.FLEET_SHUTDOWN_MS));
if (config.SPAWNER_METRICS_PORT) {
  const server = await serveMetrics(rt.metrics.registry, config.SPAWNER_METRICS_PORT);
  rt.closer.add("metrics", () => new Promise<void>((r) => server.close(() => r())));
}
onSignals(() => rt.closer.close(), config.FLEET_SHUTDOWN_MS);
spawner.start();
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
