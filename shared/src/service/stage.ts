import type { AgentRuntime } from "../agent/port.js";
import type { Bus, Handler, Subscription } from "../bus/index.js";
import type { FleetMetrics } from "../metrics/index.js";
import type { EndDeps } from "../sessions/index.js";
import type { ConsumerEvent, ConsumerName } from "../contracts/index.js";
import { SpanKind, withSpan } from "../telemetry/index.js";

/** What a session stage (spawner, poller) works with: the ending deps, the agent kind, metrics, its settings. */
export interface StageDeps<S> extends EndDeps {
  runtime: AgentRuntime;
  metrics: FleetMetrics;
  settings: S;
}

export interface Stage {
  start(): void;
  stop(deadlineMs: number): Promise<void>;
}

/**
 * A pipeline stage: one durable consumer, started once, stopped by releasing what it holds. Each
 * message is handled in a span of the session's trace (the message's `traceparent`).
 */
export function createStage<C extends ConsumerName>(
  bus: Bus,
  consumer: C,
  handler: Handler<ConsumerEvent<C>>,
  options: { maxInFlight: number; heartbeatMs?: number; exclusive?: boolean },
): Stage {
  let sub: Subscription | undefined;
  return {
    start() {
      sub ??= bus.consume(consumer, {
        handler: (msg, ctx) =>
          withSpan(
            consumer,
            { "session.id": (msg as { sessionId: string }).sessionId, "messaging.delivery_count": ctx.deliveryCount },
            () => handler(msg, ctx),
            { parent: ctx.headers.traceparent, kind: SpanKind.CONSUMER },
          ),
        ...options,
      });
    },
    async stop(deadlineMs) {
      await sub?.stop(deadlineMs);
    },
  };
}
