import { describe, expect, it } from "vitest";
import { FleetError } from "../errors/index.js";
import { baseEnv, loadConfig, sandboxEnv } from "./index.js";

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

  it("points the e2b provider elsewhere only with URLs and a port URL template naming the sandbox and port", () => {
    const ok = loadConfig(sandboxEnv, {
      SANDBOX_PROVIDER: "e2b",
      E2B_API_KEY: "e2b_x",
      E2B_API_URL: "http://127.0.0.1:3000",
      E2B_SANDBOX_URL: "http://127.0.0.1:3001",
      E2B_PORT_URL: "http://127.0.0.1:3001/ports/{sandboxId}/{port}",
    });
    expect(ok.E2B_PORT_URL).toBe("http://127.0.0.1:3001/ports/{sandboxId}/{port}");
    try {
      loadConfig(sandboxEnv, { E2B_API_URL: "not a url", E2B_SANDBOX_URL: "ftp://x", E2B_PORT_URL: "http://x/{port}" });
      expect.unreachable();
    } catch (err) {
      const msg = (err as FleetError).message;
      for (const name of ["E2B_API_URL", "E2B_SANDBOX_URL", "E2B_PORT_URL"]) expect(msg).toContain(name);
    }
  });
});
