import { FleetError } from "../errors/index.js";
import type { AgentRuntime } from "../agent/port.js";
import type { SandboxEnv } from "../config/index.js";
import type { Logger } from "../log/index.js";
import type { SandboxProvider } from "../sandbox/port.js";
import { loadSimulated } from "./simulated.js";

/**
 * The sandbox provider the config names. The E2B SDK is loaded only when it is the one chosen, so
 * services on the local provider never pay for it. `simulated` (benchmarks only) has no sandboxes
 * at all: it comes from the development tooling, loaded by name (see simulated.ts).
 */
export async function createSandboxProvider(env: SandboxEnv, logger: Logger): Promise<SandboxProvider> {
  if (env.SANDBOX_PROVIDER === "simulated") {
    const { SimulatedSandboxProvider } = await loadSimulated();
    return new SimulatedSandboxProvider(
      {
        dir: env.FLEET_SIM_DIR,
        createMs: env.FLEET_SIM_CREATE_MS,
        events: env.FLEET_SIM_EVENTS,
        eventMs: env.FLEET_SIM_EVENT_MS,
        fleet: env.FLEET_NAME,
        createFaults: env.FLEET_SIM_CREATE_FAULTS,
        quota: env.FLEET_SIM_QUOTA,
        retryAfterMs: env.FLEET_SIM_RETRY_AFTER_MS,
        maxTimeoutMs: env.FLEET_SIM_MAX_TIMEOUT_MS,
      },
      logger,
    );
  }
  if (env.SANDBOX_PROVIDER === "e2b") {
    if (!env.E2B_API_KEY) throw new FleetError("config", "SANDBOX_PROVIDER=e2b needs E2B_API_KEY");
    const { E2BSandboxProvider } = await import("../sandbox/e2b/index.js");
    return new E2BSandboxProvider(
      {
        apiKey: env.E2B_API_KEY,
        template: env.E2B_TEMPLATE,
        maxTimeoutMs: env.E2B_MAX_TIMEOUT_MS,
        ...(env.E2B_API_URL ? { apiUrl: env.E2B_API_URL } : {}),
        ...(env.E2B_SANDBOX_URL ? { sandboxUrl: env.E2B_SANDBOX_URL } : {}),
        ...(env.E2B_PORT_URL ? { portUrl: env.E2B_PORT_URL } : {}),
        ...(env.E2B_DOMAIN ? { domain: env.E2B_DOMAIN } : {}),
      },
      logger,
    );
  }
  const { LocalSandboxProvider } = await import("../sandbox/local/index.js");
  return new LocalSandboxProvider(
    {
      rootDir: env.FLEET_SANDBOX_DIR,
      isolation: env.FLEET_SANDBOX_ISOLATION,
      readable: env.FLEET_SANDBOX_READABLE,
      fleet: env.FLEET_NAME,
    },
    logger,
  );
}

/**
 * The agent server kind; OpenCode 1.x is the one the fleet runs today. Simulated sandboxes cannot
 * run it, so they always come with the simulated agent (benchmarks only).
 */
export async function createAgentRuntime(env: SandboxEnv, logger: Logger): Promise<AgentRuntime> {
  if (env.SANDBOX_PROVIDER === "simulated") {
    const { simulatedRuntime } = await loadSimulated();
    return simulatedRuntime({ dir: env.FLEET_SIM_DIR, eventStream: env.FLEET_SIM_EVENT_STREAM === "on" });
  }
  const { opencodeRuntime } = await import("../agent/opencode/index.js");
  return opencodeRuntime({ ...(env.OPENCODE_BIN ? { binary: env.OPENCODE_BIN } : {}), logger });
}
