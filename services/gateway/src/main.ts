import { loadConfigOrExit, onSignals } from "@fleet/shared";
import { serveMetrics } from "@fleet/shared/metrics";
import { startRuntime } from "@fleet/shared/service";
import { createGateway } from "./app.js";
import { GatewayConfig } from "./config.js";

const config = loadConfigOrExit(GatewayConfig, process.env);
// The gateway only asks pollers to log a model switch: it provisions nothing on the bus.
const rt = await startRuntime("gateway", config, { provision: false });
const gateway = createGateway({
  store: rt.store,
  bus: rt.bus,
  logger: rt.logger,
  registry: rt.metrics.registry,
  settings: {
    tokens: { keys: config.FLEET_GATEWAY_KEYS },
    upstream: {
      baseUrl: config.FLEET_MODEL_URL,
      apiKey: config.FLEET_MODEL_API_KEY,
      firstByteTimeoutMs: config.GATEWAY_FIRST_BYTE_TIMEOUT_MS,
    },
    prices: config.GATEWAY_PRICES,
    budgets: { dailyTokens: config.GATEWAY_PROJECT_DAILY_TOKENS, dailyCost: config.GATEWAY_PROJECT_DAILY_COST },
    sessionCacheMs: config.GATEWAY_SESSION_CACHE_MS,
    maxBodyBytes: config.GATEWAY_MAX_BODY_BYTES,
  },
});
rt.closer.add("http", () => gateway.close());
if (config.GATEWAY_METRICS_PORT) {
  const server = await serveMetrics(rt.metrics.registry, config.GATEWAY_METRICS_PORT, config.FLEET_METRICS_HOST);
  rt.closer.add("metrics", () => new Promise<void>((r) => server.close(() => r())));
}
onSignals(() => rt.closer.close(), config.FLEET_SHUTDOWN_MS);
const url = await gateway.listen(config.GATEWAY_HOST, config.GATEWAY_PORT);
rt.logger.info({ url, prices: config.GATEWAY_PRICES.size }, "gateway listening");
// One line on stdout for whoever started us (./fleet up, tests) to find the address.
process.stdout.write(`gateway listening on ${url}\n`);
