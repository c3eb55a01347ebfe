import { loadConfigOrExit, onSignals } from "@fleet/shared";
import { serveMetrics } from "@fleet/shared/metrics";
import { createAgentRuntime, createSandboxProvider, startRuntime } from "@fleet/shared/service";
import { startLogArchiver } from "@fleet/shared/sessions";
import { createPoller } from "./watch.js";
import { PollerConfig } from "./config.js";

const config = loadConfigOrExit(PollerConfig, process.env);
const rt = await startRuntime("poller", config);
const watchHeartbeatMs = Math.max(250, Math.floor(config.FLEET_WATCH_ACK_WAIT_MS / 4));
const poller = createPoller(
  {
    store: rt.store,
    bus: rt.bus,
    provider: await createSandboxProvider(config, rt.logger),
    runtime: await createAgentRuntime(config, rt.logger),
    logger: rt.logger,
    metrics: rt.metrics,
    settings: {
      agentSecret: config.FLEET_AGENT_SECRET,
      statusIntervalMs: config.POLLER_STATUS_INTERVAL_MS,
      storeCheckMs: config.POLLER_STORE_CHECK_MS,
      unreachableMs: config.POLLER_UNREACHABLE_MS,
      quietMs: config.POLLER_QUIET_MS,
      escalationStepMs: config.POLLER_ESCALATION_STEP_MS,
      leaseMs: config.FLEET_WATCH_LEASE_MS,
    },
  },
  // Four heartbeats per watch ack wait: a watch survives a stall of up to two of them.
  { maxInFlight: config.POLLER_MAX_IN_FLIGHT, heartbeatMs: watchHeartbeatMs },
);
// Added before the watches so that it closes after them (the closer runs backwards): their last lines are stored too.
if (config.POLLER_ARCHIVER) {
  const archiver = startLogArchiver(
    { bus: rt.bus, store: rt.store, logger: rt.logger, registry: rt.metrics.registry },
    {
      maxBatch: config.POLLER_ARCHIVE_BATCH,
      concurrency: config.POLLER_ARCHIVE_CONCURRENCY,
      lingerMs: config.POLLER_ARCHIVE_LINGER_MS,
      heartbeatMs: rt.heartbeatMs,
    },
  );
  rt.closer.add("archiver", () => archiver.stop(Math.min(config.FLEET_SHUTDOWN_MS, 2_000)));
}
// A watch lasts as long as its session, so waiting for it is pointless: release it at once (the
// next poller re-attaches); only a result collection already under way gets a moment to finish.
rt.closer.add("consumer", () => poller.stop(Math.min(config.FLEET_SHUTDOWN_MS, 2_000)));
if (config.POLLER_METRICS_PORT) {
  const server = await serveMetrics(rt.metrics.registry, config.POLLER_METRICS_PORT, config.FLEET_METRICS_HOST);
  rt.closer.add("metrics", () => new Promise<void>((r) => server.close(() => r())));
}
onSignals(() => rt.closer.close(), config.FLEET_SHUTDOWN_MS);
poller.start();
rt.logger.info(
  {
    maxInFlight: config.POLLER_MAX_IN_FLIGHT,
    heartbeatMs: watchHeartbeatMs,
    watchAckWaitMs: config.FLEET_WATCH_ACK_WAIT_MS,
  },
  "poller started",
);
process.stdout.write("poller ready\n");
