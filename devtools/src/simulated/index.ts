/**
 * SIMULATED sandboxes and agent, for benchmarks only (SANDBOX_PROVIDER=simulated): they let a
 * benchmark push thousands of sessions a second through the real api, spawner, poller and watchdog
 * without sandboxes or OpenCode. Correctness tests and real runs keep the local (or e2b) provider
 * and a real OpenCode. The services load this module by name (shared/src/service/simulated.ts).
 */
import type { SimulatedTooling } from "@fleet/shared/service";
import { simulatedRuntime } from "./agent.js";
import { SimulatedSandboxProvider } from "./sandbox.js";

export {
  SimulatedSandboxProvider,
  SimulatedSandbox,
  SimulatedSandboxConfig,
  simulatedUrl,
  sandboxIdOfUrl,
  SIM_AGENT_PORT,
  SIM_HOME,
  SIM_WORKSPACE,
} from "./sandbox.js";
export { simulatedRuntime, SimulatedAgentClient, type SimulatedRuntimeConfig } from "./agent.js";
export { agentSessionIdFor, scriptedMessages, toolPart } from "./script.js";
export { readSimulatedState, readAllSimulatedStates, simulatedIdleAt, type SimulatedState } from "./state.js";
export { createFault } from "./faults.js";

/** What the services take from this module: the build fails here when it stops matching their expectation. */
export const SIMULATED_TOOLING: SimulatedTooling = { SimulatedSandboxProvider, simulatedRuntime };
