import { loadConfigOrExit, onSignals } from "@fleet/shared";
import { createSandboxProvider, startRuntime } from "@fleet/shared/service";
import { createWatchdog } from "./app.js";
import { WatchdogConfig } from "./config.js";

const config = loadConfigOrExit(WatchdogConfig, process.env);
const rt = await startRuntime("watchdog", config);
const provider = await createSandboxProvider(config, rt.logger);
const watchdog = createWatchdog(
  { store: rt.store, bus: rt.bus, provider, logger: rt.logger },
  { fleet: config.FLEET_NAME, graceMs: config.REAPER_GRACE_MS, intervalMs: config.WATCHDOG_INTERVAL_MS, reaperIntervalMs: config.REAPER_INTERVAL_MS },
);
rt.closer.add("watchdog", () => watchdog.stop(config.FLEET_SHUTDOWN_MS));
onSignals(() => rt.closer.close(), config.FLEET_SHUTDOWN_MS);
watchdog.start();
process.stdout.write(`watchdog ready (${provider.name} sandboxes)\n`);
