import { endSession, errorMessage, type EndDeps } from "@fleet/shared";

/** Sessions past their deadline, in any phase, fail with code `timeout`; their sandbox goes too. */
export async function enforceDeadlines(deps: EndDeps, now = Date.now()): Promise<number> {
  let ended = 0;
  for (const s of await deps.store.pastDeadline(now, 200)) {
    try {
      const minutes = Math.round((s.config.timeoutMs / 60_000) * 10) / 10;
      const done = await endSession(deps, s.id, {
        status: "failed",
        error: { code: "timeout", message: `the session did not finish within ${minutes} min (phase ${s.phase})` },
      });
      if (done) ended += 1;
    } catch (err) {
      deps.logger.warn({ sessionId: s.id, err: errorMessage(err) }, "could not end a session past its deadline");
    }
  }
  return ended;
}
