import type { Bus } from "../bus/index.js";
import {
  LIFECYCLE,
  SCHEMA_VERSION,
  isTerminal,
  type ErrorInfo,
  type Session,
  type SessionOutput,
} from "../contracts/index.js";
import { errorMessage } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import type { FleetMetrics } from "../metrics/index.js";
import type { SandboxProvider } from "../sandbox/index.js";
import type { SessionPatch, SessionStore } from "../store/index.js";

export interface EndDeps {
  store: SessionStore;
  bus: Bus;
  provider: SandboxProvider;
  logger: Logger;
  /** Sessions are counted where they end: only the winning terminal transition counts. */
  metrics: Pick<FleetMetrics, "sessionsEnded">;
}

export type EndOutcome =
  | { status: "completed"; output: SessionOutput }
  | { status: "failed"; error: ErrorInfo }
  | { status: "cancelled"; reason?: string };

/**
 * Every terminal path goes through here: one compare-and-set from an active status (the first
 * writer wins; later ones change nothing), which also records the terminal event as owed; then
 * what any ended session needs (settleEnded). A path that lost still settles: the winner may have
 * died between its write and its publish. With `guard.attempt`, the end applies only while the
 * session is at that setup attempt: one that a later attempt took over is left as it is.
 */
export async function endSession(
  deps: EndDeps,
  sessionId: string,
  outcome: EndOutcome,
  set: SessionPatch = {},
  guard: { attempt?: number } = {},
): Promise<Session | null> {
  const patch: SessionPatch = { ...set };
  if (outcome.status === "completed") patch.output = outcome.output;
  if (outcome.status === "failed") patch.error = outcome.error;
  if (outcome.status === "cancelled") patch.error = { code: "cancelled", message: outcome.reason ?? "cancelled" };
  const ended = await deps.store.transition(sessionId, {
    from: LIFECYCLE[outcome.status].from,
    to: outcome.status,
    set: patch,
    ...(guard.attempt !== undefined ? { attempt: guard.attempt } : {}),
  });
  if (ended)
    deps.metrics.sessionsEnded.inc({
      status: ended.status,
      code: ended.status === "completed" ? "" : (ended.error?.code ?? ""),
    });
  const session = ended ?? (await deps.store.get(sessionId));
  if (session && isTerminal(session.status)) await settleEnded(deps, session);
  return ended;
}

/**
 * What every stage does on meeting an ended session: pays its owed terminal event, kills its
 * sandbox and gives its admission slots back (so the next queued session can start). Idempotent:
 * the event's Nats-Msg-Id is fixed per session (`ended:<id>` on all three terminal subjects), so a
 * second payment is dropped by the stream.
 */
export async function settleEnded(deps: EndDeps, session: Omit<Session, "prompt">): Promise<void> {
  if (session.eventOwed) await payEvent(deps, session);
  // The sandbox goes before its slot: a slot given back while its sandbox still runs would let the
  // next session's create meet the provider's quota with the fleet inside its own cap.
  const sandboxId = session.sandbox?.id;
  if (sandboxId) {
    await deps.provider.kill(sandboxId).catch((err: unknown) => {
      // The reaper ends it later; the session's state does not depend on this kill.
      deps.logger.warn({ sessionId: session.id, sandboxId, err: errorMessage(err) }, "sandbox kill failed");
    });
  }
  if (session.slotsHeld) {
    await deps.store
      .releaseSlots(session.id)
      .catch((err: unknown) =>
        deps.logger.warn({ sessionId: session.id, err: errorMessage(err) }, "slot release failed"),
      );
  }
}

/**
 * Publishes a session's terminal event from its stored document and clears the debt once the bus
 * confirmed it. A failure leaves the debt for the watchdog (or the next stage to meet the session).
 */
export async function payEvent(deps: EndDeps, s: Omit<Session, "prompt">): Promise<boolean> {
  const at = s.completedAt ?? s.updatedAt;
  try {
    if (s.status === "completed") {
      await deps.bus.publish("completed", {
        v: SCHEMA_VERSION,
        sessionId: s.id,
        projectId: s.projectId,
        at,
        ...(s.metrics.executionMs !== undefined ? { executionMs: s.metrics.executionMs } : {}),
        response: (s.output?.response ?? "").slice(0, 4_000),
        toolCalls: s.output?.toolCalls.length ?? 0,
      });
    } else if (s.status === "failed") {
      await deps.bus.publish("failed", {
        v: SCHEMA_VERSION,
        sessionId: s.id,
        projectId: s.projectId,
        at,
        error: s.error ?? { code: "internal", message: "failed" },
      });
    } else if (s.status === "cancelled") {
      const reason = s.error?.message;
      await deps.bus.publish("cancelled", {
        v: SCHEMA_VERSION,
        sessionId: s.id,
        projectId: s.projectId,
        at,
        ...(reason && reason !== "cancelled" ? { reason: reason.slice(0, 500) } : {}),
      });
    } else {
      return false;
    }
  } catch (err) {
    deps.logger.warn({ sessionId: s.id, err: errorMessage(err) }, "terminal event not published; it stays owed");
    return false;
  }
  await deps.store
    .settleEvent(s.id)
    .catch((err: unknown) =>
      deps.logger.warn(
        { sessionId: s.id, err: errorMessage(err) },
        "terminal event published; its debt not cleared yet",
      ),
    );
  return true;
}
