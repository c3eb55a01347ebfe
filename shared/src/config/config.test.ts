import { describe, expect, it } from "vitest";
import { FleetError } from "../errors/index.js";
import { natsServers } from "../bus/servers.js";
import { replicaOptions } from "../store/connection.js";
import { baseEnv, loadConfig, sandboxEnv, storeReplicaSettings } from "./index.js";

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

  it("reads a cluster's NATS_URL as every node, and the replica count when given", () => {
    const c = loadConfig(baseEnv, {
      NATS_URL: "nats://a:4222, nats://b:4222,nats://c:4222",
      FLEET_STREAM_REPLICAS: "3",
    });
    expect(natsServers(c.NATS_URL)).toEqual(["nats://a:4222", "nats://b:4222", "nats://c:4222"]);
    expect(c.FLEET_STREAM_REPLICAS).toBe(3);
    expect(loadConfig(baseEnv, {}).FLEET_STREAM_REPLICAS).toBeUndefined();
    expect(() => loadConfig(baseEnv, { FLEET_STREAM_REPLICAS: "0" })).toThrow(/FLEET_STREAM_REPLICAS/);
  });

  it("turns a replica set's settings into driver options, and only those given", () => {
    const c = loadConfig(baseEnv, {
      FLEET_STORE_WRITE_CONCERN: "majority",
      FLEET_STORE_WRITE_TIMEOUT_MS: "10000",
      FLEET_STORE_READ_CONCERN: "majority",
      FLEET_STORE_READ_PREFERENCE: "primary",
      FLEET_STORE_RETRY_WRITES: "1",
      FLEET_STORE_SOCKET_TIMEOUT_MS: "30000",
    });
    expect(replicaOptions(storeReplicaSettings(c))).toEqual({
      writeConcern: { w: "majority", wtimeoutMS: 10_000 },
      readConcern: { level: "majority" },
      readPreference: "primary",
      retryWrites: true,
      socketTimeoutMS: 30_000,
    });
    expect(replicaOptions(storeReplicaSettings(loadConfig(baseEnv, { FLEET_STORE_WRITE_CONCERN: "2" })))).toEqual({
      writeConcern: { w: 2 },
    });
    // Nothing given: the URI's options (or the driver's defaults) apply untouched.
    expect(replicaOptions(storeReplicaSettings(loadConfig(baseEnv, {})))).toEqual({});
    expect(() => loadConfig(baseEnv, { FLEET_STORE_READ_PREFERENCE: "anywhere" })).toThrow(
      /FLEET_STORE_READ_PREFERENCE/,
    );
  });
});
