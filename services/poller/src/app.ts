import type { Subscription } from "@fleet/shared";
import { handleRunning, type WatchDeps } from "./watch.js";

export interface Poller {
  start(): void;
  stop(deadlineMs: number): Promise<void>;
}

/**
 * The poller stage: consumes session.running and holds each message, with progress heartbeats,
 * for as long as it watches the session; if this instance dies, the message goes to another one
 * after the ack deadline and that one re-attaches.
 */
export function createPoller(deps: WatchDeps, options: { maxInFlight: number; heartbeatMs: number }): Poller {
  let sub: Subscription | undefined;
  return {
    start() {
      sub ??= deps.bus.consume("poller", {
        maxInFlight: options.maxInFlight,
        heartbeatMs: options.heartbeatMs,
        handler: (msg, ctx) => handleRunning(deps, msg, ctx),
      });
    },
    async stop(deadlineMs) {
      await sub?.stop(deadlineMs);
    },
  };
}
