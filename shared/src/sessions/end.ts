import type { Bus } from "../bus/index.js";
import { ACTIVE_STATUSES, SCHEMA_VERSION, type ErrorInfo, type Session, type SessionOutput } from "../contracts/index.js";
import { errorMessage } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import type { SandboxProvider } from "../sandbox/index.js";
import type { SessionPatch, SessionStore } from "../store/index.js";

export interface EndDeps {
  store: SessionStore;
  bus: Bus;
  provider: SandboxProvider;
  logger: Logger;
}

export type EndOutcome =
  | { status: "completed"; output: SessionOutput }
  | { status: "failed"; error: ErrorInfo }
  | { status: "cancelled"; reason?: string };

/**
 * Every terminal path goes through here: one compare-and-set from an active status (the first
 * writer wins; later ones change nothing), the terminal event, and the sandbox killed — the kill
 * happens even when another path already ended the session, so no sandbox outlives it.
 */
export async function endSession(deps: EndDeps, sessionId: string, outcome: EndOutcome, set: SessionPatch = {}): Promise<Session | null> {
  const patch: SessionPatch = { ...set };
  if (outcome.status === "completed") patch.output = outcome.output;
  if (outcome.status === "failed") patch.error = outcome.error;
  if (outcome.status === "cancelled") patch.error = { code: "cancelled", message: outcome.reason ?? "cancelled" };
  const ended = await deps.store.transition(sessionId, { from: ACTIVE_STATUSES, to: outcome.status, set: patch });
  const session = ended ?? (await deps.store.get(sessionId));
  if (ended) {
    const at = ended.completedAt ?? Date.now();
    if (outcome.status === "completed") {
      await deps.bus.publish("completed", {
        v: SCHEMA_VERSION,
        sessionId,
        projectId: ended.projectId,
        at,
        ...(ended.metrics.executionMs !== undefined ? { executionMs: ended.metrics.executionMs } : {}),
        response: outcome.output.response.slice(0, 4_000),
        toolCalls: outcome.output.toolCalls.length,
      });
    } else if (outcome.status === "failed") {
      await deps.bus.publish("failed", { v: SCHEMA_VERSION, sessionId, projectId: ended.projectId, at, error: outcome.error });
    } else {
      await deps.bus.publish("cancelled", { v: SCHEMA_VERSION, sessionId, at, ...(outcome.reason ? { reason: outcome.reason.slice(0, 500) } : {}) });
    }
  }
  // Its admission slots go back at once, so the next queued session can start.
  await deps.store.releaseSlots(sessionId).catch((err: unknown) => deps.logger.warn({ sessionId, err: errorMessage(err) }, "slot release failed"));
  const sandboxId = session?.sandbox?.id;
  if (sandboxId) {
    await deps.provider.kill(sandboxId).catch((err: unknown) => {
      // The reaper ends it later; the session's state does not depend on this kill.
      deps.logger.warn({ sessionId, sandboxId, err: errorMessage(err) }, "sandbox kill failed");
    });
  }
  return ended;
}
