import type { Subscription } from "@fleet/shared";
import { handleRequested, type SpawnDeps } from "./spawn.js";

export interface Spawner {
  start(): void;
  stop(deadlineMs: number): Promise<void>;
}

/** The spawner stage: consumes session.requested, at most `maxInFlight` setups at once. */
export function createSpawner(deps: SpawnDeps, options: { maxInFlight: number; heartbeatMs: number }): Spawner {
  let sub: Subscription | undefined;
  return {
    start() {
      sub ??= deps.bus.consume("spawner", {
        maxInFlight: options.maxInFlight,
        // Setup can take longer than the ack deadline on a loaded machine.
        heartbeatMs: options.heartbeatMs,
        handler: (msg, ctx) => handleRequested(deps, msg, ctx),
      });
    },
    async stop(deadlineMs) {
      await sub?.stop(deadlineMs);
    },
  };
}
