import { describe, expect, it } from "vitest";
import { ApiConfig } from "../services/api/src/config.js";
import { PollerConfig } from "../services/poller/src/config.js";
import { SpawnerConfig } from "../services/spawner/src/config.js";
import { WatchdogConfig } from "../services/watchdog/src/config.js";
import { loadConfig } from "../shared/src/index.js";

describe("service config schemas", () => {
  it("start from the shared base and their own defaults", () => {
    expect(loadConfig(ApiConfig, {})).toMatchObject({ API_PORT: 8080, NATS_URL: "nats://127.0.0.1:4222", FLEET_DB: "fleet" });
    expect(loadConfig(SpawnerConfig, { SPAWNER_MAX_IN_FLIGHT: "8" }).SPAWNER_MAX_IN_FLIGHT).toBe(8);
    expect(loadConfig(PollerConfig, {}).POLLER_MAX_IN_FLIGHT).toBe(500);
    expect(loadConfig(WatchdogConfig, {}).WATCHDOG_INTERVAL_MS).toBe(5_000);
  });

  it("reject bad values with the variable's name", () => {
    expect(() => loadConfig(ApiConfig, { API_PORT: "70000" })).toThrow(/API_PORT/);
    expect(() => loadConfig(SpawnerConfig, { SPAWNER_MAX_IN_FLIGHT: "0" })).toThrow(/SPAWNER_MAX_IN_FLIGHT/);
    expect(() => loadConfig(WatchdogConfig, { WATCHDOG_INTERVAL_MS: "soon" })).toThrow(/WATCHDOG_INTERVAL_MS/);
  });
});
