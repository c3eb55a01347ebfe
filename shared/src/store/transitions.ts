import { isTerminal, type Session, type SessionStatus } from "../contracts/index.js";
import type { SessionPatch } from "./port.js";

/**
 * A status change is an immutable record keyed by the status it leaves: `<sessionId>/from:<status>`.
 * Each status is left at most once (pending -> running -> terminal, or pending -> terminal), so the
 * unique _id makes the insert a compare-and-set that exactly one caller wins, on MongoDB and on
 * FerretDB alike. FerretDB 1.x applies findOneAndUpdate and updateOne as a read followed by a
 * whole-document write, so two racing conditional updates can both "match"; inserts with a unique
 * key are the one write it makes atomic. The session document's `status` is a cache of these
 * records, used by queries and repaired on read when a racing write clobbered it.
 */
export interface TransitionDoc {
  _id: string;
  sessionId: string;
  from: SessionStatus;
  to: SessionStatus;
  at: number;
  /** The fields the winning transition set, re-applied if a racing write lost them. */
  set: SessionPatch & { completedAt?: number };
}

export function transitionId(sessionId: string, from: SessionStatus): string {
  return `${sessionId}/from:${from}`;
}

/** The ids of the records that can exist for a session, in the order they chain. */
export function transitionIds(sessionId: string): string[] {
  return [transitionId(sessionId, "pending"), transitionId(sessionId, "running")];
}

/** Follows the chain of records from `pending`; returns the last record applied, if any. */
export function lastTransition(records: readonly TransitionDoc[]): TransitionDoc | undefined {
  const byFrom = new Map(records.map((r) => [r.from, r]));
  let status: SessionStatus = "pending";
  let last: TransitionDoc | undefined;
  for (let step = byFrom.get(status); step; step = isTerminal(status) ? undefined : byFrom.get(status)) {
    last = step;
    status = step.to;
  }
  return last;
}

/** The document with its status (and the winning transition's fields, when the cache lost them). */
export function applyTransitions(session: Session, records: readonly TransitionDoc[]): { session: Session; stale: boolean } {
  const last = lastTransition(records);
  if (!last || session.status === last.to) return { session, stale: false };
  return { session: { ...session, ...last.set, status: last.to }, stale: true };
}
