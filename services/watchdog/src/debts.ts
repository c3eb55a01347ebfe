import { errorMessage, settleEnded, type EndDeps } from "@fleet/shared";

/**
 * The outbox's payer: sessions whose terminal event has been owed for longer than `graceMs` (the
 * path that ended them normally pays within milliseconds; an older debt means the bus was down
 * then, or that path died) get it published now, their slots released and their sandbox killed.
 * Returns how many debts were cleared.
 */
export async function payDebts(deps: EndDeps, graceMs: number, now = Date.now()): Promise<number> {
  let paid = 0;
  for (const s of await deps.store.owedEvents(now - graceMs, 100)) {
    try {
      await settleEnded(deps, s);
      if (!(await deps.store.get(s.id))?.eventOwed) paid += 1;
    } catch (err) {
      deps.logger.warn({ sessionId: s.id, err: errorMessage(err) }, "could not pay an owed terminal event");
    }
  }
  return paid;
}
