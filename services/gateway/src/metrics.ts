import { Counter, Histogram, type Registry } from "prom-client";

/** The gateway's Prometheus metrics: the ledger as counters, plus refusals, fallbacks and upstream latency. */
export interface GatewayMetrics {
  calls: Counter<"project" | "model" | "status">;
  tokens: Counter<"project" | "model" | "kind">;
  cost: Counter<"project" | "model">;
  refusals: Counter<"reason">;
  fallbacks: Counter<"from" | "to" | "status">;
  ledgerWrites: Counter<"result">;
  firstByte: Histogram<"model">;
}

export function gatewayMetrics(registry: Registry): GatewayMetrics {
  const registers = [registry];
  return {
    calls: new Counter({
      name: "fleet_gateway_calls_total",
      help: "Model calls answered through the gateway, by project, the model that answered and its HTTP status",
      labelNames: ["project", "model", "status"],
      registers,
    }),
    tokens: new Counter({
      name: "fleet_gateway_tokens_total",
      help: "Model tokens measured by the gateway (kind: in, out, cached; cached ones are also counted in)",
      labelNames: ["project", "model", "kind"],
      registers,
    }),
    cost: new Counter({
      name: "fleet_gateway_cost_total",
      help: "Model cost by the gateway's price table",
      labelNames: ["project", "model"],
      registers,
    }),
    refusals: new Counter({
      name: "fleet_gateway_refusals_total",
      help: "Calls the gateway refused (token, session_ended, model, session_budget, project_budget, bad_request)",
      labelNames: ["reason"],
      registers,
    }),
    fallbacks: new Counter({
      name: "fleet_gateway_fallbacks_total",
      help: "Calls moved to the next model after the upstream answered 429 / 5xx (or nothing) before the first byte",
      labelNames: ["from", "to", "status"],
      registers,
    }),
    ledgerWrites: new Counter({
      name: "fleet_gateway_ledger_writes_total",
      help: "Ledger writes (one store operation per model call), by result",
      labelNames: ["result"],
      registers,
    }),
    firstByte: new Histogram({
      name: "fleet_gateway_upstream_first_byte_seconds",
      help: "Time from a call reaching the gateway to the upstream's first byte",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    }),
  };
}
