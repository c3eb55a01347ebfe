import { createServer, type Server } from "node:http";
import type { ConsumerBacklog } from "../bus/port.js";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** The fleet's Prometheus metrics; each service registers the same names and fills what it does. */
export interface FleetMetrics {
  registry: Registry;
  setupStep: Histogram<"step">;
  sessionsEnded: Counter<"status" | "code">;
  tokens: Counter<"project" | "direction">;
  cost: Counter<"project">;
  sandboxSeconds: Counter<"project">;
  logLines: Counter;
  executionSeconds: Histogram;
}

export function createMetrics(service: string): FleetMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    setupStep: new Histogram({
      name: "fleet_setup_step_seconds",
      help: "Duration of each session setup step (sandbox_create, restore, server_start, auth, session_create, prompt_send, total)",
      labelNames: ["step"],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    sessionsEnded: sessionsEndedCounter(registry),
    tokens: new Counter({
      name: "fleet_tokens_total",
      help: "Model tokens as the agent reported them",
      labelNames: ["project", "direction"],
      registers: [registry],
    }),
    cost: new Counter({
      name: "fleet_cost_total",
      help: "Model cost as the agent reported it",
      labelNames: ["project"],
      registers: [registry],
    }),
    sandboxSeconds: new Counter({
      name: "fleet_sandbox_seconds_total",
      help: "Seconds sandboxes were alive",
      labelNames: ["project"],
      registers: [registry],
    }),
    logLines: new Counter({ name: "fleet_log_lines_total", help: "Session log lines written", registers: [registry] }),
    executionSeconds: new Histogram({
      name: "fleet_execution_seconds",
      help: "Agent execution time from prompt to result",
      buckets: [1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
  };
}

/**
 * fleet_sessions_ended_total of a registry, registered there if it is not yet: counted once per
 * session, by the winning terminal transition (endSession), in whichever service that runs.
 */
export function sessionsEndedCounter(registry: Registry): Counter<"status" | "code"> {
  const found = registry.getSingleMetric("fleet_sessions_ended_total");
  if (found instanceof Counter) return found;
  return new Counter({
    name: "fleet_sessions_ended_total",
    help: "Sessions ended, by status and error code",
    labelNames: ["status", "code"],
    registers: [registry],
  });
}

/** A bare /metrics endpoint for services without an HTTP server of their own. */
export function serveMetrics(registry: Registry, port: number, host = "127.0.0.1"): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": registry.contentType }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

/** The warm pool's metrics (spawner, when its pool is on). */
export interface PoolMetrics {
  ready: Gauge<"key">;
  target: Gauge<"key">;
  claims: Counter<"key" | "result">;
  claimSeconds: Histogram<"key">;
  warmAgeSeconds: Histogram<"key">;
  reaps: Counter<"key" | "reason">;
  idleWarmSeconds: Counter<"key">;
}

export function poolMetrics(registry: Registry): PoolMetrics {
  const registers = [registry];
  return {
    ready: new Gauge({
      name: "fleet_pool_ready",
      help: "Warm, unclaimed pooled sandboxes this instance owns",
      labelNames: ["key"],
      registers,
    }),
    target: new Gauge({
      name: "fleet_pool_target",
      help: "Pooled sandboxes this instance aims to keep ready",
      labelNames: ["key"],
      registers,
    }),
    claims: new Counter({
      name: "fleet_pool_claims_total",
      help: "Sessions that looked for a pooled sandbox: result hit (claimed one) or miss (started cold)",
      labelNames: ["key", "result"],
      registers,
    }),
    claimSeconds: new Histogram({
      name: "fleet_pool_claim_seconds",
      help: "Time a session spent claiming a pooled sandbox (hits and misses)",
      labelNames: ["key"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1],
      registers,
    }),
    warmAgeSeconds: new Histogram({
      name: "fleet_pool_warm_age_seconds",
      help: "How long a claimed sandbox had been ready",
      labelNames: ["key"],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800],
      registers,
    }),
    reaps: new Counter({
      name: "fleet_pool_reaps_total",
      help: "Pooled sandboxes killed unclaimed, by reason (max_age, health, idle, make_room, shutdown)",
      labelNames: ["key", "reason"],
      registers,
    }),
    idleWarmSeconds: new Counter({
      name: "fleet_pool_idle_warm_sandbox_seconds_total",
      help: "Sandbox-seconds pooled sandboxes spent warm and unclaimed (the pool's idle cost)",
      labelNames: ["key"],
      registers,
    }),
  };
}

/** How long one read of the consumers serves scrapes (several metrics, and several scrapers, share it). */
const BACKLOG_TTL_MS = 1_000;

/**
 * Each fleet consumer's queue depth and deliveries, read from the server when scraped: the stages'
 * queues (pending, held) and throughput (rate of deliveries). The same figures on every instance
 * that registers them (aggregate with max, not sum); the api does.
 */
export function consumerMetrics(registry: Registry, read: () => Promise<ConsumerBacklog[]>): void {
  // Registered once per registry (a second app over the same registry reads the same figures).
  if (registry.getSingleMetric("fleet_bus_consumer_pending")) return;
  let cached: { at: number; value: Promise<ConsumerBacklog[]> } | undefined;
  const backlogs = (): Promise<ConsumerBacklog[]> => {
    if (!cached || Date.now() - cached.at > BACKLOG_TTL_MS) {
      cached = { at: Date.now(), value: read() };
      // A failed read is reported as no series, and tried again at the next scrape.
      cached.value.catch(() => {
        cached = undefined;
      });
    }
    return cached.value;
  };
  const gauge = (name: string, help: string, pick: (b: ConsumerBacklog) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["consumer"],
      registers: [registry],
      async collect() {
        this.reset();
        for (const b of await backlogs().catch(() => [])) this.set({ consumer: b.consumer }, pick(b));
      },
    });
  gauge("fleet_bus_consumer_pending", "Messages waiting for a fleet consumer (not yet delivered)", (b) => b.pending);
  gauge(
    "fleet_bus_consumer_ack_pending",
    "Messages a fleet consumer has delivered and not had acknowledged (being handled, or held by a watch)",
    (b) => b.ackPending,
  );
  gauge(
    "fleet_bus_consumer_redelivered",
    "Messages of a fleet consumer delivered more than once",
    (b) => b.redelivered,
  );
  new Counter({
    name: "fleet_bus_consumer_delivered_total",
    help: "Deliveries a fleet consumer has made, redeliveries included (its rate is the stage's throughput)",
    labelNames: ["consumer"],
    registers: [registry],
    async collect() {
      const read = await backlogs().catch(() => []);
      this.reset();
      for (const b of read) this.inc({ consumer: b.consumer }, b.delivered);
    },
  });
}

/** Admission's metrics (spawner): the cap it admits under, and the provider's quota answers. */
export interface AdmissionMetrics {
  /** The fleet-wide cap in force (the configured one, or lower as learned); +Inf when there is none. */
  cap: Gauge;
  /** The cap learned from quota answers; absent until the first. */
  learnedCap: Gauge;
  quotaAnswers: Counter<"kind">;
  /** Sessions this instance holds waiting for admission or backing off after a quota answer. */
  waiting: Gauge;
}

/** Registered once per registry, whichever caller asks first. */
export function admissionMetrics(registry: Registry): AdmissionMetrics {
  const gauge = (name: string, help: string): Gauge => {
    const found = registry.getSingleMetric(name);
    return found instanceof Gauge ? found : new Gauge({ name, help, registers: [registry] });
  };
  const found = registry.getSingleMetric("fleet_provider_quota_answers_total");
  return {
    cap: gauge(
      "fleet_admission_cap",
      "Sandboxes the fleet admits at once: the configured cap, or the learned one below it",
    ),
    learnedCap: gauge("fleet_admission_learned_cap", "The cap learned from the provider's quota answers (AIMD)"),
    quotaAnswers:
      found instanceof Counter
        ? (found as Counter<"kind">)
        : new Counter({
            name: "fleet_provider_quota_answers_total",
            help: "Sandbox creates the provider refused for its quota: kind concurrency (its limit) or rate (429)",
            labelNames: ["kind"],
            registers: [registry],
          }),
    waiting: gauge("fleet_admission_waiting", "Sessions this instance holds in the admission queue"),
  };
}
