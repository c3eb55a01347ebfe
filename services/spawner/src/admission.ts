import {
  SessionEnded,
  ShuttingDown,
  isTerminal,
  type MessageContext,
  type Session,
  type SessionDocStore,
  type SlotStore,
} from "@fleet/shared";

/** Admission reads the session and the queue, and takes slots: nothing else of the store. */
type AdmissionStore = SessionDocStore & SlotStore;

export interface AdmissionLimits {
  /** Sandboxes running at once across the fleet; 0 = no cap. */
  global: number;
  /** Sandboxes running at once per project; 0 = no cap. */
  perProject: number;
  /** How often a waiting session looks again. */
  pollMs: number;
}

/** Whether any cap is configured: without one, admission takes no slot and writes nothing. */
export function admissionCapped(limits: AdmissionLimits): boolean {
  return limits.global > 0 || limits.perProject > 0;
}

/**
 * Waits, in order of creation, until the session may hold a sandbox under the caps, and takes its
 * slots; true when it took any (false: no cap configured). Never fails for a cap: the request's
 * message is held (with progress heartbeats) while the document shows phase `queued` and the queue
 * position.
 */
export async function admit(
  store: AdmissionStore,
  session: Session,
  limits: AdmissionLimits,
  ctx: MessageContext,
  /** Frees a slot held by an unclaimed warm-pool sandbox, so the pool never keeps a session queued. */
  makeRoom?: () => Promise<boolean>,
): Promise<boolean> {
  const scopes: Array<[string, number]> = [];
  if (limits.global > 0) scopes.push(["global", limits.global]);
  if (limits.perProject > 0) scopes.push([`project:${session.projectId}`, limits.perProject]);
  if (scopes.length === 0) return false;
  let lastPosition = -1;
  for (;;) {
    if (ctx.signal.aborted) throw new ShuttingDown("while queued");
    const current = await store.get(session.id);
    if (!current || isTerminal(current.status)) throw new SessionEnded(session.id, "while queued");
    const position = await store.queuePosition(session);
    // Only as many of the oldest waiting sessions as there are free slots may try, so a newer
    // request never overtakes an older one.
    const free = Math.min(
      ...(await Promise.all(scopes.map(async ([scope, cap]) => cap - (await store.slotsInUse(scope))))),
    );
    if (position < free && (await takeAll(store, scopes, session.id))) return true;
    if (position === 0 && free <= 0 && makeRoom && (await makeRoom())) continue;
    if (position !== lastPosition) {
      await store.patch(session.id, { phase: "queued", queuePosition: position });
      lastPosition = position;
    }
    ctx.working();
    await new Promise((r) => setTimeout(r, limits.pollMs * (0.75 + Math.random() / 2)));
  }
}

async function takeAll(store: AdmissionStore, scopes: Array<[string, number]>, sessionId: string): Promise<boolean> {
  for (const [scope, cap] of scopes) {
    if (!(await store.acquireSlot(scope, cap, sessionId))) {
      await store.releaseSlots(sessionId);
      return false;
    }
  }
  return true;
}
