import { describe, expect, it } from "vitest";
import { ApiConfig } from "../services/api/src/config.js";
import { GatewayConfig } from "../services/gateway/src/config.js";
import { PollerConfig } from "../services/poller/src/config.js";
import { SpawnerConfig } from "../services/spawner/src/config.js";
import { WatchdogConfig } from "../services/watchdog/src/config.js";
import { loadConfig } from "../shared/src/index.js";

const secrets = { FLEET_AGENT_SECRET: "x".repeat(32), FLEET_MODEL_URL: "http://127.0.0.1:9/v1" };

describe("service config schemas", () => {
  it("start from the shared base and their own defaults", () => {
    expect(loadConfig(ApiConfig, {})).toMatchObject({
      API_PORT: 8080,
      NATS_URL: "nats://127.0.0.1:4222",
      FLEET_DB: "fleet",
    });
    const spawner = loadConfig(SpawnerConfig, {
      ...secrets,
      SPAWNER_MAX_IN_FLIGHT: "8",
      FLEET_FALLBACK_MODELS: "b, c",
    });
    expect(spawner).toMatchObject({
      SPAWNER_MAX_IN_FLIGHT: 8,
      SANDBOX_PROVIDER: "local",
      FLEET_MODEL: "scripted-demo",
      FLEET_FALLBACK_MODELS: ["b", "c"],
    });
    expect(loadConfig(PollerConfig, secrets).POLLER_MAX_IN_FLIGHT).toBe(500);
    expect(loadConfig(WatchdogConfig, {}).WATCHDOG_INTERVAL_MS).toBe(5_000);
    const gateway = loadConfig(GatewayConfig, {
      FLEET_MODEL_URL: "https://models.example/v1",
      FLEET_GATEWAY_KEYS: `g1:${"s".repeat(32)}`,
      GATEWAY_PROJECT_DAILY_TOKENS: "p1=1000",
    });
    expect(gateway).toMatchObject({ GATEWAY_PORT: 8090, GATEWAY_SESSION_CACHE_MS: 1_000, GATEWAY_METRICS_PORT: 0 });
    expect(gateway.GATEWAY_PROJECT_DAILY_TOKENS.get("p1")).toBe(1_000);
    // With the gateway, the spawner needs no model URL (nor key); without it, it does.
    const viaGateway = loadConfig(SpawnerConfig, {
      FLEET_AGENT_SECRET: "x".repeat(32),
      FLEET_GATEWAY_URL: "http://127.0.0.1:8090/v1",
      FLEET_GATEWAY_KEYS: `g1:${"s".repeat(32)}`,
    });
    expect(viaGateway.FLEET_MODEL_URL).toBeUndefined();
  });

  it("reject bad values with the variable's name", () => {
    expect(() => loadConfig(ApiConfig, { API_PORT: "70000" })).toThrow(/API_PORT/);
    expect(() => loadConfig(SpawnerConfig, { ...secrets, SPAWNER_MAX_IN_FLIGHT: "0" })).toThrow(
      /SPAWNER_MAX_IN_FLIGHT/,
    );
    expect(() => loadConfig(SpawnerConfig, { FLEET_MODEL_URL: "http://m/v1", FLEET_AGENT_SECRET: "short" })).toThrow(
      /FLEET_AGENT_SECRET/,
    );
    expect(() => loadConfig(PollerConfig, { ...secrets, SANDBOX_PROVIDER: "docker" })).toThrow(/SANDBOX_PROVIDER/);
    expect(() => loadConfig(WatchdogConfig, { WATCHDOG_INTERVAL_MS: "soon" })).toThrow(/WATCHDOG_INTERVAL_MS/);
    expect(() => loadConfig(SpawnerConfig, { FLEET_AGENT_SECRET: "x".repeat(32) })).toThrow(/FLEET_MODEL_URL/);
    expect(() =>
      loadConfig(SpawnerConfig, { FLEET_AGENT_SECRET: "x".repeat(32), FLEET_GATEWAY_URL: "http://127.0.0.1:1/v1" }),
    ).toThrow(/FLEET_GATEWAY_KEYS/);
    expect(() => loadConfig(GatewayConfig, { FLEET_MODEL_URL: "https://m/v1" })).toThrow(/FLEET_GATEWAY_KEYS/);
    expect(() =>
      loadConfig(GatewayConfig, {
        FLEET_MODEL_URL: "https://m/v1",
        FLEET_GATEWAY_KEYS: `g1:${"s".repeat(32)}`,
        GATEWAY_PRICES: "m=cheap",
      }),
    ).toThrow(/GATEWAY_PRICES/);
  });
});
