import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createMetrics, poolMetrics } from "@fleet/shared/metrics";
import { startLogArchiver } from "@fleet/shared/sessions";
import type { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { gatewayMetrics } from "../services/gateway/src/metrics.js";
import { useApi } from "./support/api-fixture.js";
import { eventually, logger } from "./support/fixtures.js";

/**
 * deploy/grafana/fleet.json queries only metrics the code registers: each PromQL expression's
 * metric names are checked against the registries the services build (the fleet's metrics, the
 * warm pool's, the gateway's, the log archiver's) and what a real api serves on /metrics, so the
 * dashboard cannot drift from the code.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DASHBOARD = join(ROOT, "deploy/grafana/fleet.json");

/** PromQL words that are not metric names: functions, aggregations, keywords. */
const PROMQL_WORDS = new Set(
  [
    "sum avg min max count stddev stdvar topk bottomk quantile count_values group",
    "by without on ignoring group_left group_right bool offset and or unless",
    "rate irate increase delta idelta deriv histogram_quantile clamp_min clamp_max abs ceil floor round",
    "time vector scalar label_replace label_join sort sort_desc absent predict_linear resets changes",
    "avg_over_time max_over_time min_over_time sum_over_time count_over_time last_over_time inf nan",
  ]
    .join(" ")
    .split(" "),
);

/** The metric names an expression reads. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, "") // label matchers
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "") // label lists
    .replace(/\[[^\]]*\]/g, ""); // ranges
  const names = [...bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .filter((m) => !/^\s*\(/.test(bare.slice((m.index ?? 0) + m[0].length)))
    .map((m) => m[0])
    .filter((w) => !PROMQL_WORDS.has(w.toLowerCase()));
  return [...new Set(names)];
}

type Panel = { title: string; type: string; targets?: Array<{ expr: string }>; panels?: Panel[] };

function exprs(panels: Panel[]): Array<{ title: string; expr: string }> {
  return panels.flatMap((p) => [
    ...(p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })),
    ...exprs(p.panels ?? []),
  ]);
}

/** Series names a registry exposes: histograms also as _bucket, _sum and _count, summaries as _sum and _count. */
async function seriesNames(registry: Registry): Promise<string[]> {
  const metrics = await registry.getMetricsAsJSON();
  return metrics.flatMap((m) => {
    const type = String(m.type);
    if (type === "histogram") return [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`];
    if (type === "summary") return [m.name, `${m.name}_sum`, `${m.name}_count`];
    return [m.name];
  });
}

/** `# TYPE name type` lines of a Prometheus text exposition, as series names. */
function exposedNames(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) =>
    type === "histogram" ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name as string],
  );
}

describe("Grafana dashboard", () => {
  const api = useApi({ prefix: "grafana" });
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { panels: Panel[]; uid: string };

  it("reads metric names out of PromQL", () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le, step) (rate(fleet_setup_step_seconds_bucket{step!~"total|queued"}[5m])))',
      ),
    ).toEqual(["fleet_setup_step_seconds_bucket"]);
    expect(metricNames("sum(rate(a_total[1m])) / on (x) group_left sum(b_count) * 60")).toEqual(["a_total", "b_count"]);
    expect(metricNames('max by (service) (nodejs_eventloop_lag_p99_seconds{service="api"})')).toEqual([
      "nodejs_eventloop_lag_p99_seconds",
    ]);
  });

  it("queries only metrics the code registers", async () => {
    const registry = createMetrics("dashboard-test").registry;
    poolMetrics(registry);
    gatewayMetrics(registry);
    const archiver = startLogArchiver(
      { bus: api.bus, store: api.store, logger, registry },
      { maxBatch: 10, concurrency: 1, heartbeatMs: 1_000 },
    );
    await archiver.stop(1_000);
    const served = await fetch(`${api.base}/metrics`).then((r) => r.text());
    const registered = new Set([...(await seriesNames(registry)), ...exposedNames(served)]);
    expect(registered).toContain("fleet_api_log_followers");

    const queries = exprs(dashboard.panels);
    expect(queries.length).toBeGreaterThan(20);
    const unknown = queries.flatMap(({ title, expr }) =>
      metricNames(expr)
        .filter((n) => !registered.has(n))
        .map((n) => `${title}: ${n}`),
    );
    expect(unknown).toEqual([]);
    // Every query names at least one metric, so nothing slips past the check unread.
    expect(queries.filter(({ expr }) => metricNames(expr).length === 0)).toEqual([]);
    // A panel naming a metric the code does not register is caught.
    expect(metricNames("sum(rate(fleet_sessions_endd_total[5m]))").filter((n) => !registered.has(n))).toEqual([
      "fleet_sessions_endd_total",
    ]);
  });

  it("reads the stages' queues from the bus", async () => {
    const sessionId = `grafana-${Date.now()}`;
    await api.bus.publish("requested", {
      v: 1,
      sessionId,
      projectId: "p-grafana",
      prompt: "nobody takes this: no spawner runs here",
      requestedAt: Date.now(),
    });
    // Scrapes within a second share one read of the consumers: poll until the request shows.
    const text = await eventually(async () => {
      const body = await fetch(`${api.base}/metrics`).then((r) => r.text());
      return /^fleet_bus_consumer_pending\{consumer="spawner"[^}]*\} 1$/m.test(body) ? body : undefined;
    });
    expect(text).toMatch(/^fleet_bus_consumer_pending\{consumer="spawner"[^}]*\} 1$/m);
    expect(text).toMatch(/^fleet_bus_consumer_ack_pending\{consumer="poller"[^}]*\} 0$/m);
    expect(text).toMatch(/^fleet_bus_consumer_delivered_total\{consumer="archiver"[^}]*\} \d+$/m);
  });

  it("covers every stage's throughput, queue depth, setup, hops, sandboxes and usage", () => {
    const used = new Set(exprs(dashboard.panels).flatMap(({ expr }) => metricNames(expr)));
    for (const name of [
      "fleet_bus_consumer_delivered_total",
      "fleet_bus_consumer_pending",
      "fleet_bus_consumer_ack_pending",
      "fleet_setup_step_seconds_count",
      "fleet_sessions_ended_total",
      "fleet_execution_seconds_count",
      "fleet_log_archive_pending",
      "fleet_setup_step_seconds_bucket",
      "fleet_gateway_upstream_first_byte_seconds_bucket",
      "fleet_sandbox_seconds_total",
      "fleet_pool_ready",
      "fleet_gateway_tokens_total",
      "fleet_gateway_cost_total",
    ]) {
      expect(used).toContain(name);
    }
    expect(dashboard.uid).toBe("session-fleet");
  });
});
