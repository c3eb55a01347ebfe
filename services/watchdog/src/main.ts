import { loadConfigOrExit, onSignals } from "@fleet/shared";
import { serveMetrics } from "@fleet/shared/metrics";
import { createSandboxProvider, startRuntime } from "@fleet/shared/service";
import { createWatchdog } from "./app.js";
import { WatchdogConfig } from "./config.js";

const config = loadConfigOrExit(WatchdogConfig, process.env);
const rt = await startRuntime("watchdog", config);
const provider = await createSandboxProvider(config, rt.logger);
const watchdog = createWatchdog(
  { store: rt.store, bus: rt.bus, provider, logger: rt.logger, metrics: rt.metrics },
  {
    fleet: config.FLEET_NAME,
    graceMs: config.REAPER_GRACE_MS,
    poolStaleMs: config.REAPER_POOL_STALE_MS,
    intervalMs: config.WATCHDOG_INTERVAL_MS,
    reaperIntervalMs: config.REAPER_INTERVAL_MS,
    debtGraceMs: config.WATCHDOG_DEBT_GRACE_MS,
    lease: { leaseMs: config.FLEET_WATCH_LEASE_MS, graceMs: config.WATCHDOG_LEASE_GRACE_MS },
  },
);
rt.closer.add("watchdog", () => watchdog.stop(config.FLEET_SHUTDOWN_MS));
if (config.WATCHDOG_METRICS_PORT) {
  const server = await serveMetrics(rt.metrics.registry, config.WATCHDOG_METRICS_PORT, config.FLEET_METRICS_HOST);
  rt.closer.add("metrics", () => new Promise<void>((r) => server.close(() => r())));
}
onSignals(() => rt.closer.close(), config.FLEET_SHUTDOWN_MS);
watchdog.start();
process.stdout.write(`watchdog ready (${provider.name} sandboxes)\n`);
