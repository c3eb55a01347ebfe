import type { Collection, Db, Filter } from "mongodb";
import {
  ACTIVE_STATUSES,
  LIFECYCLE,
  NewSession,
  Session,
  isTerminal,
  type SessionPhase,
  type SessionStatus,
} from "../contracts/index.js";
import { FleetError } from "../errors/index.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { guarded, isDuplicateKey, wrap } from "./errors.js";

/** Fields a caller may set; `status` changes only through `transition`, `id` never. */
export type SessionPatch = Partial<Omit<Session, "id" | "status" | "createdAt" | "projectId">>;

export interface TransitionRequest {
  /** Statuses the document must be in for the change to win; terminal statuses are refused. */
  from: readonly SessionStatus[];
  to: SessionStatus;
  set?: SessionPatch;
  /**
   * Only while the session is at this setup attempt: part of the same compare-and-set, so a writer
   * for an attempt a later one has replaced changes nothing.
   */
  attempt?: number;
}

/** The lease a watch believes it may renew (see `renewWatch`). */
export interface WatchLease {
  attempt: number;
  /** The republish round of the message being watched: 0 for the spawner's own. */
  round: number;
  /** The watch that renewed the lease last, as the caller last saw or wrote it. */
  holder?: string;
}

export interface Page<T> {
  items: T[];
  /** Opaque; pass back to get the next page. Absent on the last page. */
  nextCursor?: string;
}

export interface CreateResult {
  session: Session;
  /** False when a session with this id already existed (the stored one is returned unchanged). */
  created: boolean;
}

/** The `sessions` collection: one document per session, its status changed only by compare-and-set. */
export interface SessionDocStore {
  /**
   * Creates the session unless its id exists. With `claim`, a session this call creates is created
   * with its first setup attempt claimed and those fields set, in the same write (what
   * `claimAttempt(id, 1, claim)` right after would do): `created` then also says this caller holds
   * attempt 1. An existing session is returned unchanged either way.
   */
  create(input: NewSession, now?: number, claim?: SessionPatch): Promise<CreateResult>;
  get(id: string): Promise<Session | null>;
  /** Compare-and-set on status; returns the updated document if this call won, else null. */
  transition(id: string, request: TransitionRequest): Promise<Session | null>;
  /**
   * Claims setup attempt `attempt` of a pending session: a compare-and-set from `attempt - 1`, so of
   * racing spawners (duplicate requests, a redelivery beside a slow holder) exactly one gets each
   * attempt. Sets `claimedAt` and the given fields in the same write; true for the winner.
   */
  claimAttempt(id: string, attempt: number, set?: SessionPatch): Promise<boolean>;
  /** Sets only the named fields, while the status is one of `whenStatus` (default: pending or running). */
  patch(id: string, set: SessionPatch, whenStatus?: readonly SessionStatus[]): Promise<boolean>;
  /** Newest first; stable under concurrent inserts. */
  listByProject(projectId: string, options?: { limit?: number; cursor?: string }): Promise<Page<Session>>;
  /** The newest pending or running session of a card. */
  activeForCard(cardId: string): Promise<Session | null>;
  /** All pending or running sessions of a card, newest first. */
  activeSessionsForCard(cardId: string): Promise<Session[]>;
  /**
   * Clears the terminal event a session owes, once the bus confirmed it; only while that debt is
   * still recorded. True when this call cleared it.
   */
  settleEvent(id: string): Promise<boolean>;
  /** Sessions whose terminal event is owed since before `before`, oldest debt first. */
  owedEvents(before: number, limit?: number): Promise<Session[]>;
  /** Active sessions whose deadline has passed, oldest deadline first. */
  pastDeadline(now: number, limit?: number): Promise<Session[]>;
  /**
   * Renews the watch lease of a running session (one small $set) for the watch `by`, until `until`:
   * only while the session runs `lease.attempt`, no republish round newer than `lease.round` began,
   * and the lease is still held by `lease.holder` (absent: nobody renewed it since the round
   * began). A watch that lost its lease (the watchdog republished, or another watch renewed it)
   * gets false and must stop acting on the session.
   */
  renewWatch(id: string, lease: WatchLease, by: string, until: number): Promise<boolean>;
  /**
   * Running sessions whose watch lease ended before `before`, oldest first; a lease never renewed
   * ended `leaseMs` after the session started.
   */
  lapsedWatches(before: number, leaseMs: number, limit?: number): Promise<Session[]>;
  /**
   * Starts the next republish round of a session whose lease lapsed: a compare-and-set on the
   * lease as `s` read it (round and end), so of racing watchdogs one wins; it clears the holder and
   * gives the new round a lease until `until`. The updated document for the winner, else null.
   */
  rewatch(s: Pick<Session, "id" | "attempt" | "rewatches" | "watchedUntil">, until: number): Promise<Session | null>;
  /**
   * How many sessions waiting for admission (queued, with a queue position) were created before
   * this one: its place in the queue. Requests not yet picked up do not hold anyone back.
   */
  queuePosition(session: { id: string; createdAt: number }): Promise<number>;
  /** How many sessions are pending or running now, per project, status and phase (the fleet page). */
  activeCounts(): Promise<ActiveCount[]>;
  /**
   * Every session waiting for admission, oldest first, with what a fair admission order needs:
   * pending in phase queued and picked up by a spawner (an attempt claimed), so one that has only
   * just been picked up already holds back those picked up after it. Bounded.
   */
  waitingSessions(limit?: number): Promise<Array<{ id: string; projectId: string; createdAt: number }>>;
}

export interface ActiveCount {
  projectId: string;
  status: SessionStatus;
  phase: SessionPhase;
  count: number;
}

type SessionDoc = Omit<Session, "id"> & { _id: string };

function fromDoc({ _id, ...rest }: SessionDoc): Session {
  return Session.parse({ id: _id, ...rest });
}

function toSession(doc: SessionDoc | null): Session | null {
  return doc ? fromDoc(doc) : null;
}

/** What a claim of setup attempt `attempt` writes, with the caller's fields: one shape for a create and a compare-and-set. */
function claimed(attempt: number, set: SessionPatch, now: number) {
  return { ...named(set), attempt, claimedAt: now, updatedAt: now };
}

/** The fields given a value: a key present but undefined would be stored as null, not left alone. */
function named<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Sessions over MongoDB semantics: every write is one single-document command, conditional on the
 * status where it must be, so a transition or a patch costs one round trip and returns or reports
 * what it did. Lookups name the _id wherever they can (the filter every backend serves from its
 * primary key; the fleet's FerretDB narrows any filter with an _id equality to it).
 */
export class MongoSessions implements SessionDocStore {
  private readonly docs: Collection<SessionDoc>;

  constructor(db: Db) {
    this.docs = db.collection<SessionDoc>("sessions");
  }

  async init(): Promise<void> {
    // One at a time: FerretDB 1.24 panics on a createIndexes naming several indexes that exist.
    await this.docs.createIndex({ projectId: 1, createdAt: -1, _id: -1 }, { name: "by_project" });
    await this.docs.createIndex({ cardId: 1, status: 1, createdAt: -1 }, { name: "by_card" });
    await this.docs.createIndex({ status: 1, deadlineAt: 1 }, { name: "by_deadline" });
    await this.docs.createIndex({ status: 1, phase: 1, createdAt: 1 }, { name: "by_queue" });
    // Few documents owe an event at any time; MongoDB serves the watchdog's query from this.
    await this.docs.createIndex({ "eventOwed.at": 1 }, { name: "by_owed_event" });
    await this.docs.createIndex({ status: 1, watchedUntil: 1 }, { name: "by_watch" });
  }

  async create(input: NewSession, now = Date.now(), claim?: SessionPatch): Promise<CreateResult> {
    const parsed = NewSession.parse(input);
    const createdAt = parsed.createdAt ?? now;
    const fields: Omit<SessionDoc, "_id"> = {
      projectId: parsed.projectId,
      ...(parsed.cardId ? { cardId: parsed.cardId } : {}),
      prompt: parsed.prompt,
      config: parsed.config,
      ...(parsed.requestedAt !== undefined ? { requestedAt: parsed.requestedAt } : {}),
      ...(parsed.trace ? { trace: parsed.trace } : {}),
      status: "pending",
      phase: "queued",
      attempt: 0,
      metrics: Session.shape.metrics.parse({}),
      createdAt,
      updatedAt: createdAt,
      deadlineAt: createdAt + parsed.config.timeoutMs,
      ...(claim ? claimed(1, claim, Date.now()) : {}),
    };
    try {
      // One round trip: inserts unless the id exists, and answers with the stored document either way.
      const res = await this.docs.findOneAndUpdate(
        { _id: parsed.id },
        { $setOnInsert: fields },
        { upsert: true, returnDocument: "after", includeResultMetadata: true },
      );
      const session = toSession(res.value);
      if (!session) throw new FleetError("internal", `session ${parsed.id} missing after its upsert`);
      return { session, created: res.lastErrorObject?.updatedExisting === false };
    } catch (err) {
      // Two creators racing on one id: MongoDB may answer the loser's upsert with a duplicate key.
      if (isDuplicateKey(err)) {
        const stored = await this.get(parsed.id);
        if (stored) return { session: stored, created: false };
      }
      throw wrap("create", err);
    }
  }

  get(id: string): Promise<Session | null> {
    return guarded("get", async () => toSession(await this.docs.findOne({ _id: id })));
  }

  async transition(id: string, request: TransitionRequest): Promise<Session | null> {
    // The lifecycle table decides: no terminal status is ever left, and no status is entered from itself.
    const allowed: readonly SessionStatus[] = LIFECYCLE[request.to].from;
    const refused = request.from.filter((s) => !allowed.includes(s));
    if (refused.length > 0 || request.from.length === 0) {
      throw new FleetError(
        "invalid_transition",
        `a session enters ${request.to} only from ${allowed.join(" or ") || "nothing (it is created so)"}, not from ${refused.join(" or ") || "nothing"}`,
      );
    }
    const now = Date.now();
    const set = { ...named(request.set ?? {}), status: request.to, updatedAt: now };
    if (isTerminal(request.to)) {
      set.completedAt ??= now;
      // The outbox: the winner of the end also records, in this same write, that its terminal event
      // is owed, so a bus that is down when the session ends cannot lose the event.
      set.eventOwed = { kind: request.to, at: now };
    }
    // The status in the filter is the compare; the store applies filter and update as one, so of
    // racing callers exactly one matches. No `from` is terminal, so an ended session matches none.
    return guarded("transition", async () =>
      toSession(
        await this.docs.findOneAndUpdate(
          {
            _id: id,
            status: { $in: [...request.from] },
            ...(request.attempt !== undefined ? { attempt: request.attempt } : {}),
          },
          { $set: set },
          { returnDocument: "after" },
        ),
      ),
    );
  }

  async claimAttempt(id: string, attempt: number, set: SessionPatch = {}): Promise<boolean> {
    if (!Number.isInteger(attempt) || attempt < 1) throw new FleetError("bad_input", `no attempt ${attempt}`);
    const res = await guarded("claimAttempt", () =>
      this.docs.updateOne(
        { _id: id, status: "pending", attempt: attempt - 1 },
        { $set: claimed(attempt, set, Date.now()) },
      ),
    );
    return res.matchedCount === 1;
  }

  async patch(id: string, set: SessionPatch, whenStatus: readonly SessionStatus[] = ACTIVE_STATUSES): Promise<boolean> {
    if ("status" in set) throw new FleetError("invalid_transition", "status changes go through transition()");
    // Only the named fields: a status change or another patch racing this one keeps what it wrote.
    const res = await guarded("patch", () =>
      this.docs.updateOne(
        { _id: id, status: { $in: [...whenStatus] } },
        { $set: { ...named(set), updatedAt: Date.now() } },
      ),
    );
    return res.matchedCount === 1;
  }

  async listByProject(projectId: string, options: { limit?: number; cursor?: string } = {}): Promise<Page<Session>> {
    const limit = Math.min(Math.max(options.limit ?? 20, 1), 200);
    const filter: Filter<SessionDoc> = { projectId };
    if (options.cursor) {
      const c = decodeCursor(options.cursor);
      filter.$or = [{ createdAt: { $lt: c.createdAt } }, { createdAt: c.createdAt, _id: { $lt: c.id } }];
    }
    return guarded("list", async () => {
      const docs = await this.docs
        .find(filter)
        .sort({ createdAt: -1, _id: -1 })
        .limit(limit + 1)
        .toArray();
      const items = docs.slice(0, limit).map(fromDoc);
      const last = items.at(-1);
      return docs.length > limit && last ? { items, nextCursor: encodeCursor(last.createdAt, last.id) } : { items };
    });
  }

  async activeForCard(cardId: string): Promise<Session | null> {
    return (await this.activeOfCard("activeForCard", cardId, 1))[0] ?? null;
  }

  activeSessionsForCard(cardId: string): Promise<Session[]> {
    return this.activeOfCard("activeSessionsForCard", cardId, 50);
  }

  private activeOfCard(op: string, cardId: string, limit: number): Promise<Session[]> {
    return guarded(op, async () =>
      (
        await this.docs
          .find({ cardId, status: { $in: [...ACTIVE_STATUSES] } })
          .sort({ createdAt: -1, _id: -1 })
          .limit(limit)
          .toArray()
      ).map(fromDoc),
    );
  }

  async settleEvent(id: string): Promise<boolean> {
    const res = await guarded("settleEvent", () =>
      this.docs.updateOne({ _id: id, eventOwed: { $exists: true } }, { $unset: { eventOwed: "" } }),
    );
    return res.modifiedCount === 1;
  }

  owedEvents(before: number, limit = 100): Promise<Session[]> {
    // Bounded, and cheap where secondary indexes are not used (FerretDB's SQLite backend scans).
    return guarded("owedEvents", async () =>
      (
        await this.docs
          .find({ "eventOwed.at": { $lt: before } })
          .sort({ "eventOwed.at": 1 })
          .limit(limit)
          .toArray()
      ).map(fromDoc),
    );
  }

  pastDeadline(now: number, limit = 100): Promise<Session[]> {
    return guarded("pastDeadline", async () =>
      (
        await this.docs
          .find({ status: { $in: [...ACTIVE_STATUSES] }, deadlineAt: { $lt: now } })
          .sort({ deadlineAt: 1 })
          .limit(limit)
          .toArray()
      ).map(fromDoc),
    );
  }

  async renewWatch(id: string, lease: WatchLease, by: string, until: number): Promise<boolean> {
    const res = await guarded("renewWatch", () =>
      this.docs.updateOne(
        {
          _id: id,
          status: "running",
          attempt: lease.attempt,
          rewatches: lease.round > 0 ? lease.round : { $exists: false },
          watchedBy: lease.holder ?? { $exists: false },
        },
        // No updatedAt: the lease is the watch's business, not a change of the session.
        { $set: { watchedUntil: until, watchedBy: by } },
      ),
    );
    return res.matchedCount === 1;
  }

  lapsedWatches(before: number, leaseMs: number, limit = 100): Promise<Session[]> {
    return guarded("lapsedWatches", async () =>
      (
        await this.docs
          .find({
            status: "running",
            $or: [
              { watchedUntil: { $lt: before } },
              { watchedUntil: { $exists: false }, startedAt: { $lt: before - leaseMs } },
            ],
          })
          .sort({ watchedUntil: 1 })
          .limit(limit)
          .toArray()
      ).map(fromDoc),
    );
  }

  rewatch(s: Pick<Session, "id" | "attempt" | "rewatches" | "watchedUntil">, until: number): Promise<Session | null> {
    return guarded("rewatch", async () =>
      toSession(
        await this.docs.findOneAndUpdate(
          {
            _id: s.id,
            status: "running",
            attempt: s.attempt,
            rewatches: s.rewatches ?? { $exists: false },
            watchedUntil: s.watchedUntil ?? { $exists: false },
          },
          { $set: { watchedUntil: until, rewatches: (s.rewatches ?? 0) + 1 }, $unset: { watchedBy: "" } },
          { returnDocument: "after" },
        ),
      ),
    );
  }

  async queuePosition(session: { id: string; createdAt: number }): Promise<number> {
    const earlier = await guarded("queuePosition", () =>
      this.docs
        .find({
          status: "pending",
          phase: "queued",
          queuePosition: { $exists: true },
          $or: [{ createdAt: { $lt: session.createdAt } }, { createdAt: session.createdAt, _id: { $lt: session.id } }],
        })
        .project({ _id: 1 })
        .limit(10_000)
        .toArray(),
    );
    return earlier.length;
  }

  activeCounts(): Promise<ActiveCount[]> {
    return guarded("activeCounts", async () => {
      const groups = await this.docs
        .aggregate<{ _id: { projectId: string; status: SessionStatus; phase: SessionPhase }; count: number }>([
          { $match: { status: { $in: [...ACTIVE_STATUSES] } } },
          { $group: { _id: { projectId: "$projectId", status: "$status", phase: "$phase" }, count: { $sum: 1 } } },
        ])
        .toArray();
      return groups
        .map(({ _id, count }) => ({ ..._id, count }))
        .sort(
          (a, b) =>
            a.projectId.localeCompare(b.projectId) ||
            a.status.localeCompare(b.status) ||
            a.phase.localeCompare(b.phase),
        );
    });
  }

  async waitingSessions(limit = 10_000): Promise<Array<{ id: string; projectId: string; createdAt: number }>> {
    const docs = await guarded("waitingSessions", () =>
      this.docs
        .find({ status: "pending", phase: "queued", attempt: { $gte: 1 } })
        .project<{ _id: string; projectId: string; createdAt: number }>({ _id: 1, projectId: 1, createdAt: 1 })
        .sort({ createdAt: 1, _id: 1 })
        .limit(limit)
        .toArray(),
    );
    return docs.map((d) => ({ id: d._id, projectId: d.projectId, createdAt: d.createdAt }));
  }
}
