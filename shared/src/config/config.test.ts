import { describe, expect, it } from "vitest";
import { FleetError } from "../errors/index.js";
import { baseEnv, loadConfig } from "./index.js";

describe("config", () => {
  it("applies defaults", () => {
    const c = loadConfig(baseEnv, {});
    expect(c).toMatchObject({
      NATS_URL: "nats://127.0.0.1:4222",
      FLEET_DB: "fleet",
      FLEET_NAMESPACE: "",
      LOG_LEVEL: "info",
    });
  });

  it("names every bad variable in one error", () => {
    try {
      loadConfig(baseEnv, { MONGODB_URI: "http://x", FLEET_NAMESPACE: "Has.Dots", FLEET_SHUTDOWN_MS: "-1" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FleetError);
      const msg = (err as FleetError).message;
      for (const name of ["MONGODB_URI", "FLEET_NAMESPACE", "FLEET_SHUTDOWN_MS"]) expect(msg).toContain(name);
    }
  });
});
