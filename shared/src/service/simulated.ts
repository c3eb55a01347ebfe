import type { AgentRuntime } from "../agent/port.js";
import type { SimCreateFault } from "../config/index.js";
import { FleetError } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import type { SandboxProvider } from "../sandbox/port.js";

/**
 * SANDBOX_PROVIDER=simulated (benchmarks only) runs the simulated sandboxes and agent of the
 * development tooling. No service depends on that package: it is loaded by name at run time (the
 * workspace links it), the one import of it allowed outside the tooling (test/house.test.ts). The
 * types below are what the services need of it; devtools checks at build time that it provides them.
 */
const TOOLING = "@fleet/devtools";
export const SIMULATED_MODULE = `${TOOLING}/simulated`;

export interface SimulatedProviderOptions {
  dir: string;
  createMs: number;
  events: number;
  eventMs: number;
  fleet: string;
  createFaults: SimCreateFault[];
  quota: number;
  retryAfterMs: number;
  maxTimeoutMs: number;
}

export interface SimulatedRuntimeOptions {
  dir: string;
  eventStream: boolean;
}

export interface SimulatedTooling {
  SimulatedSandboxProvider: new (config: SimulatedProviderOptions, logger: Logger) => SandboxProvider;
  simulatedRuntime(config: SimulatedRuntimeOptions): AgentRuntime;
}

export async function loadSimulated(): Promise<SimulatedTooling> {
  // A variable specifier: the compiler neither resolves nor types it, so the library builds without the tooling.
  const specifier: string = SIMULATED_MODULE;
  try {
    return (await import(specifier)) as SimulatedTooling;
  } catch (err) {
    if (!isMissing(err)) throw err;
    throw new FleetError(
      "config",
      `SANDBOX_PROVIDER=simulated needs the development tooling (${TOOLING}); it is for benchmarks only`,
      { cause: err },
    );
  }
}

/** Node's answer when the tooling is not installed, as opposed to an error inside it. */
function isMissing(err: unknown): boolean {
  const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "ERR_PACKAGE_PATH_NOT_EXPORTED") &&
    (err as Error).message.includes(TOOLING)
  );
}
