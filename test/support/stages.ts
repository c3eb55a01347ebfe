import type { WatchDeps, WatchSettings } from "../../services/poller/src/watch.js";
import { DEFAULT_CAP_POLICY } from "../../services/spawner/src/admission-cap.js";
import type { SpawnDeps } from "../../services/spawner/src/spawn.js";
import type { AgentRuntime, EndDeps, MessageContext } from "../../shared/src/index.js";
import { createMetrics, type FleetMetrics } from "../../shared/src/metrics/index.js";

/** A message as a stage's consume loop hands it over: delivery `n` of stream message `seq`, still held. */
export function delivered(
  subject: string,
  n: number,
  options: { storedAt?: number; seq?: number } = {},
): MessageContext {
  return {
    subject,
    seq: options.seq ?? 1,
    deliveryCount: n,
    storedAt: options.storedAt ?? Date.now(),
    finalDelivery: false,
    headers: {},
    working: () => undefined,
    signal: new AbortController().signal,
    holds: () => true,
  };
}

/** What a spawner's handler runs on in-process: no admission cap, a model no test calls. */
export function spawnerDeps(
  base: Omit<EndDeps, "metrics"> & { runtime: AgentRuntime },
  settings: { fleet: string; agentSecret: string; agentReadyMs?: number },
): SpawnDeps {
  return {
    ...base,
    metrics: createMetrics(`${settings.fleet}-spawner`),
    settings: {
      admission: { global: 0, perProject: 0, pollMs: 100, policy: DEFAULT_CAP_POLICY },
      fleet: settings.fleet,
      projects: "*",
      instanceId: `${settings.fleet}-test`,
      agentSecret: settings.agentSecret,
      model: { baseUrl: "http://127.0.0.1:9/v1", apiKey: "none", models: ["scripted"] },
      agentReadyMs: settings.agentReadyMs ?? 60_000,
    },
  };
}

/** What a poller's handler runs on in-process: a quick status check, the rest long. */
export function pollerDeps(
  base: Omit<EndDeps, "metrics"> & { runtime: AgentRuntime; metrics?: FleetMetrics },
  settings: Partial<WatchSettings> & { agentSecret: string },
): WatchDeps {
  return {
    ...base,
    metrics: base.metrics ?? createMetrics("poller-test"),
    settings: {
      statusIntervalMs: 500,
      storeCheckMs: 500,
      unreachableMs: 5_000,
      quietMs: 60_000,
      escalationStepMs: 1_000,
      leaseMs: 60_000,
      ...settings,
    },
  };
}
