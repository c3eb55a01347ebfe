import type { LearnedCap } from "@fleet/shared";

/**
 * How the fleet learns the provider's concurrent-sandbox quota (AIMD-like): a quota answer lowers
 * the cap at once to what the answer proves, and a refusal of a session admitted under the current
 * cap lowers it by one (so a burst of refusals to the same overload counts once); a cap that
 * holds sessions back goes up by one after `raiseEveryMs` without a quota answer. Pure functions: the
 * store applies them with a compare-and-set, so every spawner sees one cap.
 */
export interface CapPolicy {
  /** A blocking learned cap goes up by one after this long without a quota answer (or change). */
  raiseEveryMs: number;
  /** Refusals within the cap lower it by one at most this often (at least the answer's Retry-After). */
  decreaseGapMs: number;
  /** How long a limit the provider named bounds the raises; after that the fleet probes past it again. */
  limitMemoryMs: number;
}

export const DEFAULT_CAP_POLICY: CapPolicy = {
  raiseEveryMs: 60_000,
  decreaseGapMs: 2_000,
  limitMemoryMs: 600_000,
};

export type CapChange = Omit<LearnedCap, "rev" | "updatedAt">;

/** A quota answer, and what the fleet held when it came. */
export interface QuotaHit {
  scope: string;
  /** Sandboxes of this fleet the provider held when it refused one more. */
  held: number;
  /** The concurrent limit the answer named, when it named one. */
  limit?: number;
  retryAfterMs?: number;
  at: number;
  /**
   * The revision of the learned cap the refused session was admitted under (-1: none yet). Only a
   * refusal under the cap as it stands is evidence against it; one admitted before the last change
   * or answer is old news. Unknown: refusals within the cap count once per `decreaseGapMs`.
   */
  admittedUnderRev?: number;
}

/** The learned cap after a quota answer (always a new document: the hit is counted even when the cap stays). */
export function afterQuotaHit(current: LearnedCap | null, hit: QuotaHit, policy: CapPolicy): CapChange {
  // Each answer rewrites the document (it counts the hit), so the revision moves on with every one:
  // of a burst of refusals, only those admitted after the latest answer can lower the cap further.
  const providerLimit = hit.limit ?? current?.providerLimit;
  const next: CapChange = {
    scope: hit.scope,
    hits: (current?.hits ?? 0) + 1,
    lastHitAt: hit.at,
    lastChangeAt: current?.lastChangeAt ?? hit.at,
    ...(providerLimit !== undefined ? { providerLimit } : {}),
    ...(hit.retryAfterMs !== undefined ? { lastRetryAfterMs: hit.retryAfterMs } : {}),
    ...(current?.cap !== undefined ? { cap: current.cap } : {}),
  };
  // What the answer proves: the limit it names, else no more than what the fleet held.
  const proven = Math.max(1, hit.limit ?? hit.held);
  if (current?.cap === undefined || proven < current.cap) return { ...next, cap: proven, lastChangeAt: hit.at };
  // Refused within the cap: less is available than learned (someone else uses the account, or the
  // provider's count lags), so one fewer, once per overload.
  const underThisCap =
    hit.admittedUnderRev !== undefined
      ? hit.admittedUnderRev === current.rev
      : hit.at - current.lastChangeAt >= Math.max(policy.decreaseGapMs, hit.retryAfterMs ?? 0);
  if (underThisCap && current.cap > 1) return { ...next, cap: current.cap - 1, lastChangeAt: hit.at };
  return next;
}

/**
 * The learned cap one higher, when it has held for `raiseEveryMs` without a quota answer and is
 * below both the configured cap (`ceiling`, Infinity for none) and a limit the provider named
 * recently; null when it stays.
 */
export function afterQuiet(current: LearnedCap, now: number, ceiling: number, policy: CapPolicy): CapChange | null {
  if (current.cap === undefined) return null;
  const quietSince = Math.max(current.lastChangeAt, current.lastHitAt ?? 0);
  if (now - quietSince < policy.raiseEveryMs) return null;
  const named =
    current.providerLimit !== undefined && now - (current.lastHitAt ?? 0) < policy.limitMemoryMs
      ? current.providerLimit
      : Number.POSITIVE_INFINITY;
  if (current.cap >= Math.min(ceiling, named)) return null;
  const { rev: _rev, updatedAt: _updatedAt, ...rest } = current;
  return { ...rest, cap: current.cap + 1, lastChangeAt: now };
}

/** The cap admission applies: the configured one (0 = none), or the learned one when lower. */
export function effectiveCap(configured: number, learned: LearnedCap | null): number {
  const fromConfig = configured > 0 ? configured : Number.POSITIVE_INFINITY;
  return Math.min(fromConfig, learned?.cap ?? Number.POSITIVE_INFINITY);
}

/** How long a session waits after a quota answer: never less than Retry-After, jittered up to half again. */
export function quotaBackoffMs(retryAfterMs: number | undefined, answers: number, random = Math.random): number {
  if (retryAfterMs !== undefined && retryAfterMs > 0) return Math.round(retryAfterMs * (1 + random() / 2));
  // No advice: 1 s doubling to 30 s, with equal jitter.
  const step = Math.min(30_000, 1_000 * 2 ** Math.max(0, answers - 1));
  return Math.round(step / 2 + random() * (step / 2));
}

/**
 * Fair share by project: the next slot goes to the waiting session whose project would then hold
 * the fewest sandboxes, counting what the project holds now (`held`) and its own sessions waiting
 * ahead of it; ties go to the older. Among projects holding nothing this is round-robin (each
 * project's oldest first, then each one's second oldest...); a project already holding sandboxes
 * waits behind those holding fewer, so one that sent its requests first cannot take every slot that
 * frees while another's wait. Returns `self`'s place (0 = next), counting `self` in even before its
 * document says it waits.
 */
export function fairPosition(
  waiting: ReadonlyArray<{ id: string; projectId: string; createdAt: number }>,
  self: { id: string; projectId: string; createdAt: number },
  held: ReadonlyMap<string, number> = new Map(),
): number {
  const all = waiting.some((w) => w.id === self.id) ? [...waiting] : [...waiting, self];
  all.sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const seen = new Map<string, number>();
  const ranked = all.map((w) => {
    const ahead = seen.get(w.projectId) ?? 0;
    seen.set(w.projectId, ahead + 1);
    return { ...w, share: (held.get(w.projectId) ?? 0) + ahead };
  });
  ranked.sort((a, b) => a.share - b.share || a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return ranked.findIndex((w) => w.id === self.id);
}
