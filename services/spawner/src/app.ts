import { createStage, type Stage } from "@fleet/shared/service";
import { handleRequested, type SpawnDeps } from "./spawn.js";

/**
 * The spawner stage: consumes session.requested. Each request is held, with progress heartbeats,
 * while it waits for admission and while its sandbox and agent are set up.
 */
export function createSpawner(deps: SpawnDeps, options: { maxInFlight: number; heartbeatMs: number }): Stage {
  return createStage(deps.bus, "spawner", (msg, ctx) => handleRequested(deps, msg, ctx), options);
}
