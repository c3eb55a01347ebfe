import { endSession, errorMessage, type EndDeps, type Session } from "@fleet/shared";
import { withSpan } from "@fleet/shared/telemetry";

/** Fails one session past its deadline with code `timeout` (its sandbox goes too); the ended document if this call ended it. */
export function failPastDeadline(
  deps: EndDeps,
  s: Pick<Session, "id" | "config" | "phase" | "trace">,
): Promise<Session | null> {
  const minutes = Math.round((s.config.timeoutMs / 60_000) * 10) / 10;
  return withSpan(
    "watchdog.deadline",
    { "session.id": s.id },
    () =>
      endSession(deps, s.id, {
        status: "failed",
        error: { code: "timeout", message: `the session did not finish within ${minutes} min (phase ${s.phase})` },
      }),
    { parent: s.trace },
  );
}

/** Sessions past their deadline, in any phase, fail with code `timeout`; their sandbox goes too. */
export async function enforceDeadlines(deps: EndDeps, now = Date.now()): Promise<number> {
  let ended = 0;
  for (const s of await deps.store.pastDeadline(now, 200)) {
    try {
      if (await failPastDeadline(deps, s)) ended += 1;
    } catch (err) {
      deps.logger.warn({ sessionId: s.id, err: errorMessage(err) }, "could not end a session past its deadline");
    }
  }
  return ended;
}
