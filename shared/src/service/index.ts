import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { connectBus, type Bus } from "../bus/index.js";
import { storeReplicaSettings, type BaseEnv } from "../config/index.js";
import { createCloser, type Closer } from "../lifecycle/index.js";
import { createLogger, safeUrl, type Logger } from "../log/index.js";
import { createMetrics, type FleetMetrics } from "../metrics/index.js";
import { MongoSessionStore, type SessionStore } from "../store/index.js";
import { startTelemetry, type Telemetry } from "../telemetry/index.js";

export interface ServiceRuntime {
  name: string;
  instanceId: string;
  logger: Logger;
  store: SessionStore;
  bus: Bus;
  metrics: FleetMetrics;
  /** Traces of sessions (exported when OTEL_EXPORTER_OTLP_ENDPOINT is set). */
  telemetry: Telemetry;
  closer: Closer;
  /** Interval of progress heartbeats for long work: well inside the ack deadline. */
  heartbeatMs: number;
}

/**
 * What every service's main.ts needs first: a logger, the store (indexes ensured), the bus (streams
 * and consumers provisioned, dead letters going to the store), and one closer that undoes it all.
 */
export async function startRuntime(
  name: string,
  env: BaseEnv,
  options: {
    /** False for a service that only sends requests on the bus (the gateway): its NATS user may not manage streams. */
    provision?: boolean;
  } = {},
): Promise<ServiceRuntime> {
  const instanceId = `${name}-${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const logger = createLogger({ name, level: env.LOG_LEVEL });
  const closer = createCloser((step, err) => logger.error({ step, err }, "shutdown step failed"));
  const telemetry = startTelemetry(name, env);
  // Last to close: what the other steps record on the way down is still sent.
  closer.add("telemetry", () => telemetry.shutdown());
  const store = await MongoSessionStore.connect(
    {
      uri: env.MONGODB_URI,
      database: env.FLEET_DB,
      appName: name,
      maxPoolSize: env.FLEET_STORE_POOL,
      allowUnsafeStore: env.FLEET_STORE_ALLOW_UNPATCHED,
      replicaSet: storeReplicaSettings(env),
    },
    logger,
  );
  closer.add("store", () => store.close());
  await store.init();
  const bus = await connectBus(
    {
      servers: env.NATS_URL,
      replicas: env.FLEET_STREAM_REPLICAS,
      namespace: env.FLEET_NAMESPACE,
      name: instanceId,
      ...(env.NATS_USER ? { user: env.NATS_USER, pass: env.NATS_PASSWORD ?? "" } : {}),
      tuning: {
        ackWaitMs: env.FLEET_ACK_WAIT_MS,
        heldAckWaitMs: env.FLEET_WATCH_ACK_WAIT_MS,
        maxDeliver: env.FLEET_MAX_DELIVER,
      },
    },
    { logger, deadLetters: store },
  );
  closer.add("bus", () => bus.close());
  if (options.provision !== false) await bus.provision();
  logger.info(
    { nats: env.NATS_URL, store: safeUrl(env.MONGODB_URI), db: env.FLEET_DB, namespace: env.FLEET_NAMESPACE },
    `${name} connected`,
  );
  return {
    name,
    instanceId,
    logger,
    store,
    bus,
    metrics: createMetrics(name),
    telemetry,
    closer,
    heartbeatMs: Math.max(250, Math.floor(env.FLEET_ACK_WAIT_MS / 4)),
  };
}
export { createAgentRuntime, createSandboxProvider } from "./providers.js";
export {
  SIMULATED_MODULE,
  loadSimulated,
  type SimulatedTooling,
  type SimulatedProviderOptions,
  type SimulatedRuntimeOptions,
} from "./simulated.js";
export { createStage, type Stage, type StageDeps } from "./stage.js";
