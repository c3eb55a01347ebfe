import { createStage, type Stage } from "@fleet/shared/service";
import { handleRunning, type WatchDeps } from "./watch.js";

/**
 * The poller stage: consumes session.running and holds each message, with confirmed heartbeats,
 * for as long as it watches the session; if this instance dies, the message goes to another one
 * after the (short) ack deadline and that one re-attaches. A watch whose heartbeats were not
 * confirmed in time stops acting before another instance can be given its session.
 */
export function createPoller(deps: WatchDeps, options: { maxInFlight: number; heartbeatMs: number }): Stage {
  return createStage(deps.bus, "poller", (msg, ctx) => handleRunning(deps, msg, ctx), { ...options, exclusive: true });
}
