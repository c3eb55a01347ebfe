import { errorMessage, runningEvent, type EndDeps } from "@fleet/shared";

export interface RewatchOptions {
  /** FLEET_WATCH_LEASE_MS, as the pollers use it. */
  leaseMs: number;
  /** Beyond the lease's end, for clocks that differ and a renewal on its way. */
  graceMs: number;
}

/**
 * Running sessions whose watch lease lapsed (plus the grace) get session.running again, under a new
 * Nats-Msg-Id (`running:<id>:<attempt>:<round>`), so a poller re-attaches: the backstop for a
 * watch message the bus lost (docs/guarantees.md §9). The round is taken by a compare-and-set on the
 * lease as read, so of several watchdogs one publishes; it clears the lease's holder (whose next
 * renewal then fails) and gives the new watch a lease. A publish that fails leaves that lease to
 * lapse in turn, and the next round is published then. Returns how many sessions were republished.
 */
export async function rewatchLapsed(deps: EndDeps, options: RewatchOptions, now = Date.now()): Promise<number> {
  let published = 0;
  for (const s of await deps.store.lapsedWatches(now - options.graceMs, options.leaseMs, 100)) {
    if (!s.sandbox || !s.agentSessionId) continue;
    try {
      const next = await deps.store.rewatch(s, now + options.leaseMs);
      if (!next?.rewatches) continue;
      deps.logger.warn(
        { sessionId: s.id, round: next.rewatches, lapsedMs: now - (s.watchedUntil ?? s.startedAt ?? now) },
        "watch lease lapsed; publishing session.running again",
      );
      const event = runningEvent(next, { at: now, rewatch: next.rewatches });
      if (event) await deps.bus.publish("running", event);
      published += 1;
    } catch (err) {
      deps.logger.warn({ sessionId: s.id, err: errorMessage(err) }, "could not republish a session whose lease lapsed");
    }
  }
  return published;
}
