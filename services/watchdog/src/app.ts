import { endSession, errorMessage, type EndDeps, type Subscription } from "@fleet/shared";
import { SpanKind, withSpan } from "@fleet/shared/telemetry";
import { payDebts } from "./debts.js";
import { enforceDeadlines } from "./deadlines.js";
import { reap, sweepSlots, type ReapOptions } from "./reaper.js";
import { rewatchLapsed, type RewatchOptions } from "./rewatch.js";

export interface WatchdogOptions extends ReapOptions {
  intervalMs: number;
  reaperIntervalMs: number;
  /** A terminal event owed for longer than this is published by the watchdog. */
  debtGraceMs: number;
  /** Republishes session.running for running sessions whose watch lease lapsed (checked with the deadlines). */
  lease?: RewatchOptions;
}

export interface Watchdog {
  start(): void;
  stop(deadlineMs: number): Promise<void>;
}

/**
 * Deadlines, cancel requests, owed terminal events and the orphan reaper. Every action is a compare-and-set or an
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
        handler: (msg, ctx) =>
          withSpan(
            "watchdog.cancel",
            { "session.id": msg.sessionId },
            async () => {
              await endSession(deps, msg.sessionId, {
                status: "cancelled",
                ...(msg.reason ? { reason: msg.reason } : {}),
              });
            },
            { parent: ctx.headers.traceparent, kind: SpanKind.CONSUMER },
          ),
      });
      const tickDeadlines = guarded("deadline check", async () => {
        await enforceDeadlines(deps);
        await payDebts(deps, options.debtGraceMs);
        if (options.lease) await rewatchLapsed(deps, options.lease);
      });
      const tickReaper = guarded("reaper", async () => {
        await reap(deps, options);
        await sweepSlots(deps, options.fleet, Date.now(), options.poolStaleMs);
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
