import { errorMessage, isTerminal, poolSlotOwner, type EndDeps } from "@fleet/shared";
import { failPastDeadline } from "./deadlines.js";

export interface ReapOptions {
  fleet: string;
  graceMs: number;
  /**
   * An unclaimed warm-pool sandbox whose owner has not refreshed its record for this long is
   * abandoned (its spawner died): reaped. Default: 30 s.
   */
  poolStaleMs?: number;
}

/**
 * Lists the provider's sandboxes of this fleet and kills those whose session has ended, is unknown,
 * is past its deadline, or has moved on to a later attempt. Young sandboxes are spared: their
 * spawner may not have recorded them yet.
 */
export async function reap(deps: EndDeps, options: ReapOptions, now = Date.now()): Promise<string[]> {
  const killed: string[] = [];
  const listed = await deps.provider.list({ fleet: options.fleet });
  await sweepPoolRecords(deps, options, new Set(listed.map((sb) => sb.id)), now);
  for (const sb of listed) {
    if (now - sb.startedAt < options.graceMs && (sb.endAt === undefined || sb.endAt > now)) continue;
    let sessionId = sb.metadata.sessionId;
    let attempt = sb.metadata.attempt;
    // A claimed warm-pool sandbox: its record, and the slot it held until its claim moved that to the session.
    let pooled: { slotHolder?: string | undefined } | undefined;
    if (sb.metadata.pool !== undefined) {
      // A warm-pool sandbox: its pool record says whether a session claimed it, and which.
      const entry = await deps.store.poolEntry(sb.id);
      if (entry?.state !== "claimed") {
        const stale = !entry || now - entry.seenAt > (options.poolStaleMs ?? 30_000);
        if (!stale) continue;
        // Only while still unclaimed: a claim racing with this reap wins or loses as a whole.
        if (entry && !(await deps.store.removeUnclaimed(sb.id))) continue;
        await killPooled(deps, sb.id, entry?.slotHolder, entry ? "pool owner gone" : "no pool record");
        killed.push(sb.id);
        continue;
      }
      sessionId = entry.sessionId;
      attempt = entry.attempt === undefined ? undefined : String(entry.attempt);
      pooled = { slotHolder: entry.slotHolder };
    }
    const session = sessionId ? await deps.store.get(sessionId) : null;
    const why = !session
      ? "unknown session"
      : isTerminal(session.status)
        ? `session ${session.status}`
        : session.deadlineAt < now
          ? "session past its deadline"
          : String(session.attempt) !== attempt
            ? `attempt ${attempt} replaced by ${session.attempt}`
            : sb.endAt !== undefined && sb.endAt < now
              ? "sandbox past its own timeout"
              : undefined;
    if (!why) continue;
    try {
      // Ended first: a watch that saw its sandbox go before the session ended would fail it as lost.
      if (session && !isTerminal(session.status) && session.deadlineAt < now) await failPastDeadline(deps, session);
      await deps.provider.kill(sb.id);
      if (pooled) await removeClaimed(deps, sb.id, pooled.slotHolder);
      killed.push(sb.id);
      deps.logger.info({ sandboxId: sb.id, sessionId, reason: why }, "reaped sandbox");
    } catch (err) {
      deps.logger.warn({ sandboxId: sb.id, err: errorMessage(err) }, "could not reap sandbox");
    }
  }
  return killed;
}

/**
 * Pool records whose sandbox is gone: a claimed one (its session's end killed the sandbox) is only a
 * record now; an unclaimed one of a dead owner still holds a slot.
 */
async function sweepPoolRecords(deps: EndDeps, options: ReapOptions, alive: Set<string>, now: number): Promise<void> {
  for (const e of await deps.store.poolEntries(options.fleet)) {
    if (alive.has(e.sandboxId)) continue;
    if (e.state === "claimed") {
      if (now - (e.claimedAt ?? e.createdAt) > options.graceMs) await removeClaimed(deps, e.sandboxId, e.slotHolder);
    } else if (now - e.seenAt > (options.poolStaleMs ?? 30_000) && (await deps.store.removeUnclaimed(e.sandboxId))) {
      if (e.slotHolder) await deps.store.releaseSlots(e.slotHolder);
    }
  }
}

/**
 * A claimed pool record whose sandbox is gone. Its claim hands the sandbox's slot to the session, but
 * a spawner killed between the claim and that hand-over leaves the slot with the pool's holder: freed
 * here (a no-op once it was handed over).
 */
async function removeClaimed(deps: EndDeps, sandboxId: string, slotHolder: string | undefined): Promise<void> {
  // The slot first: a record left by a failure here is found again at the next sweep.
  if (slotHolder) await deps.store.releaseSlots(slotHolder);
  await deps.store.removePoolEntry(sandboxId);
}

async function killPooled(deps: EndDeps, sandboxId: string, slotHolder: string | undefined, reason: string) {
  await deps.provider.kill(sandboxId);
  if (slotHolder) await deps.store.releaseSlots(slotHolder);
  deps.logger.info({ sandboxId, reason }, "reaped pooled sandbox");
}

/** A warm-pool slot named by no pool record after this long was taken by a spawner that died before it recorded its sandbox. */
const ORPHAN_POOL_SLOT_MS = 10 * 60_000;

/**
 * Frees admission slots still held by sessions that ended (or never existed), e.g. after a crash,
 * and warm-pool slots whose sandbox was never recorded: at once when the spawner named in the slot
 * has not reported for `poolStaleMs` (it died between taking the slot and recording the sandbox),
 * else after 10 minutes.
 */
export async function sweepSlots(
  deps: EndDeps,
  fleet?: string,
  now = Date.now(),
  poolStaleMs = 30_000,
): Promise<number> {
  let freed = 0;
  const seen = new Set<string>();
  let poolHolders: Set<string> | undefined;
  let reported: Map<string, number> | undefined;
  for (const slot of await deps.store.heldSlots()) {
    if (seen.has(slot.sessionId)) continue;
    if (slot.sessionId.startsWith("pool:")) {
      // A warm-pool sandbox's slot is freed by the pool's reaping (or the reaper's, above); only one
      // that no record names is an orphan, once its owner is gone or long after it was taken.
      if (fleet === undefined || now - slot.at < poolStaleMs) continue;
      poolHolders ??= new Set((await deps.store.poolEntries(fleet)).map((e) => e.slotHolder ?? ""));
      if (poolHolders.has(slot.sessionId)) continue;
      if (now - slot.at < ORPHAN_POOL_SLOT_MS) {
        reported ??= new Map((await deps.store.poolStatuses(fleet)).map((r) => [r.owner, r.at]));
        const owner = poolSlotOwner(slot.sessionId);
        const lastReport = owner === undefined ? undefined : reported.get(owner);
        // A live owner reports every tick; one of another fleet has no report here and is left alone.
        if (lastReport === undefined || now - lastReport <= poolStaleMs) continue;
      }
      seen.add(slot.sessionId);
      await deps.store.releaseSlots(slot.sessionId);
      deps.logger.info({ holder: slot.sessionId }, "freed a warm-pool slot no sandbox was recorded for");
      freed += 1;
      continue;
    }
    seen.add(slot.sessionId);
    const s = await deps.store.get(slot.sessionId);
    if (!s || isTerminal(s.status)) {
      await deps.store.releaseSlots(slot.sessionId);
      freed += 1;
    }
  }
  return freed;
}
