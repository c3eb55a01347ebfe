import { endSession, errorMessage, type EndDeps, type Subscription } from "@fleet/shared";
import { enforceDeadlines } from "./deadlines.js";
import { reap, sweepSlots, type ReapOptions } from "./reaper.js";

export interface WatchdogOptions extends ReapOptions {
  intervalMs: number;
  reaperIntervalMs: number;
}

export interface Watchdog {
  start(): void;
  stop(deadlineMs: number): Promise<void>;
}

/**
 * Deadlines, cancel requests and the orphan reaper. Every action is a compare-and-set or an
 * idempotent kill, so any number of instances can run at once.
 */
export function createWatchdog(deps: EndDeps, options: WatchdogOptions): Watchdog {
  let sub: Subscription | undefined;
  const timers: NodeJS.Timeout[] = [];
  const guarded = (name: string, fn: () => Promise<unknown>) => () =>
    void fn().catch((err: unknown) => deps.logger.warn({ err: errorMessage(err) }, `${name} failed`));
  return {
    start() {
      if (sub) return;
      sub = deps.bus.consume("watchdog", {
        maxInFlight: 32,
        handler: async (msg) => {
          await endSession(deps, msg.sessionId, { status: "cancelled", ...(msg.reason ? { reason: msg.reason } : {}) });
        },
      });
      const tickDeadlines = guarded("deadline check", () => enforceDeadlines(deps));
      const tickReaper = guarded("reaper", async () => {
        await reap(deps, options);
        await sweepSlots(deps);
      });
      tickReaper();
      timers.push(setInterval(tickDeadlines, options.intervalMs), setInterval(tickReaper, options.reaperIntervalMs));
    },
    async stop(deadlineMs) {
      for (const t of timers) clearInterval(t);
      await sub?.stop(deadlineMs);
    },
  };
}
