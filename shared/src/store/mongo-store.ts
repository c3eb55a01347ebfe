import { MongoBulkWriteError, MongoClient, MongoServerError, type Collection, type Db, type Filter } from "mongodb";
import {
  ACTIVE_STATUSES,
  CardFile,
  DeadLetter,
  LogLine,
  NewSession,
  Session,
  isTerminal,
  type SessionStatus,
} from "../contracts/index.js";
import { FleetError, errorMessage } from "../errors/index.js";
import { ApiKeyRecord } from "../auth/index.js";
import type { Logger } from "../log/index.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import type { CreateResult, Page, SessionPatch, SessionStore, TransitionRequest } from "./port.js";
import { applyTransitions, lastTransition, transitionId, transitionIds, type TransitionDoc } from "./transitions.js";

export interface MongoStoreConfig {
  /** Connections to the store at most (the driver's maxPoolSize); the driver's default when unset. */
  maxPoolSize?: number;
  uri: string;
  database: string;
  /** Server selection bound: how long an operation waits for an unreachable server before failing. */
  serverSelectionTimeoutMs?: number;
  appName?: string;
  /**
   * Start on a FerretDB without the fleet's changes, whose conditional updates are not atomic (see
   * checkStoreGuarantees). Only to look at data; the fleet's guarantees do not hold on it.
   */
  allowUnsafeStore?: boolean;
}

type SessionDoc = Omit<Session, "id"> & { _id: string };
type LogDoc = LogLine & { _id: string };
type DeadDoc = Omit<DeadLetter, "id"> & { _id: string };
type ClaimDoc = { _id: string; owner: string; at: number };
type SlotDoc = { _id: string; scope: string; sessionId: string; at: number };
type KeyDoc = Omit<ApiKeyRecord, "id"> & { _id: string };
type CardFileDoc = CardFile & { _id: string };

const DUPLICATE_KEY = 11000;

/** The first fleet build of FerretDB (infra/ferretdb-patch.ts) that makes single-document updates atomic. */
const FERRETDB_MIN_FLEET_BUILD = 2;

/**
 * FerretDB 1.24 as published runs findAndModify and update as a read, then a separate write: two
 * racing compare-and-sets both win and concurrent increments are lost, which breaks what the
 * fleet's store promises. It reports itself in buildInfo (ferretdbVersion); MongoDB does not, and
 * passes untouched.
 */
async function checkStoreGuarantees(client: MongoClient, config: MongoStoreConfig, logger: Logger): Promise<void> {
  const info = await client.db("admin").command({ buildInfo: 1 });
  const ferretdb: unknown = info["ferretdbVersion"];
  if (typeof ferretdb !== "string") return;
  const build = /-fleet\.(\d+)\b/.exec(ferretdb);
  if (build && Number(build[1]) >= FERRETDB_MIN_FLEET_BUILD) return;
  const why = `the store is FerretDB ${ferretdb}, whose conditional updates are not atomic (findAndModify and update read, then write separately: racing compare-and-sets both win, concurrent increments are lost)`;
  if (config.allowUnsafeStore) {
    logger.warn({ ferretdb }, `${why}; starting anyway because allowUnsafeStore is set`);
    return;
  }
  throw new FleetError(
    "config",
    `${why}. Run ./fleet, which builds and starts the fleet's FerretDB (v1.24.2-fleet.${FERRETDB_MIN_FLEET_BUILD} or later), or point MONGODB_URI at MongoDB; FLEET_STORE_ALLOW_UNPATCHED=1 (allowUnsafeStore) starts anyway, without the fleet's guarantees`,
  );
}

function toSession(doc: SessionDoc | null): Session | null {
  if (!doc) return null;
  const { _id, ...rest } = doc;
  return Session.parse({ id: _id, ...rest });
}

/**
 * Server answers that say the request itself is wrong; anything else (network, a busy or locked
 * backend, an internal error) may pass, and the bus's bounded redelivery retries it.
 */
const PERMANENT_CODES = new Set([2, 9, 13, 14, 18, 121, 11000]);

/** Store errors become FleetErrors, retryable unless the server said the request is wrong. */
function wrap(op: string, err: unknown): FleetError {
  if (err instanceof FleetError) return err;
  const retryable = !(err instanceof MongoServerError) || err.hasErrorLabel("RetryableWriteError") || !PERMANENT_CODES.has(Number(err.code));
  return new FleetError("store_unavailable", `store ${op} failed: ${errorMessage(err)}`, { retryable, cause: err });
}

/** How many log lines `logs` reads by key, round by round, before it queries for the rest. */
const KEY_READ_ROUNDS = [1, 3, 12] as const;

function withoutId<T extends { _id: unknown }>({ _id, ...rest }: T): Omit<T, "_id"> {
  return rest;
}

function logId(sessionId: string, seq: number): string {
  return `${sessionId}:${String(seq).padStart(10, "0")}`;
}

/**
 * SessionStore over MongoDB or FerretDB. Uses only what both support and what both make atomic:
 * inserts against unique keys (status transitions, see transitions.ts; log lines; dead letters),
 * unordered insertMany, sorted range queries. No transactions, no change streams, no partial indexes.
 */
export class MongoSessionStore implements SessionStore {
  private readonly db: Db;
  private readonly sessions: Collection<SessionDoc>;
  private readonly logLines: Collection<LogDoc>;
  private readonly dead: Collection<DeadDoc>;
  private readonly transitions: Collection<TransitionDoc>;
  private readonly claims: Collection<ClaimDoc>;
  private readonly slots: Collection<SlotDoc>;
  private readonly keys: Collection<KeyDoc>;
  private readonly cardFileDocs: Collection<CardFileDoc>;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly client: MongoClient,
    config: MongoStoreConfig,
    private readonly logger: Logger,
  ) {
    this.db = client.db(config.database);
    this.sessions = this.db.collection<SessionDoc>("sessions");
    this.logLines = this.db.collection<LogDoc>("session_logs");
    this.dead = this.db.collection<DeadDoc>("dead_letters");
    this.transitions = this.db.collection<TransitionDoc>("session_transitions");
    this.claims = this.db.collection<ClaimDoc>("claims");
    this.slots = this.db.collection<SlotDoc>("slots");
    this.keys = this.db.collection<KeyDoc>("api_keys");
    this.cardFileDocs = this.db.collection<CardFileDoc>("card_files");
  }

  static async connect(config: MongoStoreConfig, logger: Logger): Promise<MongoSessionStore> {
    const client = new MongoClient(config.uri, {
      serverSelectionTimeoutMS: config.serverSelectionTimeoutMs ?? 10_000,
      appName: config.appName ?? "fleet",
      retryWrites: true,
      // A bounded pool queues requests in the driver (in order) rather than in the store, where
      // a single-writer backend such as FerretDB on SQLite lets waiting writers starve.
      ...(config.maxPoolSize ? { maxPoolSize: config.maxPoolSize } : {}),
    });
    try {
      await client.connect();
    } catch (err) {
      throw new FleetError("store_unavailable", `cannot reach the store: ${errorMessage(err)}`, { retryable: true, cause: err });
    }
    try {
      await checkStoreGuarantees(client, config, logger);
    } catch (err) {
      await client.close().catch(() => undefined);
      throw wrap("buildInfo", err);
    }
    return new MongoSessionStore(client, config, logger);
  }

  async init(): Promise<void> {
    try {
      // One at a time: FerretDB 1.24 panics on a createIndexes naming several indexes that exist.
      await this.sessions.createIndex({ projectId: 1, createdAt: -1, _id: -1 }, { name: "by_project" });
      await this.sessions.createIndex({ cardId: 1, status: 1, createdAt: -1 }, { name: "by_card" });
      await this.sessions.createIndex({ status: 1, deadlineAt: 1 }, { name: "by_deadline" });
      await this.sessions.createIndex({ status: 1, phase: 1, createdAt: 1 }, { name: "by_queue" });
      await this.logLines.createIndex({ sessionId: 1, seq: 1 }, { unique: true, name: "session_seq" });
      await this.dead.createIndex({ at: -1 }, { name: "by_time" });
      await this.transitions.createIndex({ sessionId: 1 }, { name: "by_session" });
      await this.cardFileDocs.createIndex({ cardId: 1, path: 1 }, { name: "by_card" });
      await this.slots.createIndex({ sessionId: 1 }, { name: "by_session" });
      await this.slots.createIndex({ scope: 1 }, { name: "by_scope" });
    } catch (err) {
      throw wrap("init", err);
    }
  }

  async create(input: NewSession, now = Date.now()): Promise<CreateResult> {
    const parsed = NewSession.parse(input);
    const createdAt = parsed.createdAt ?? now;
    const doc: SessionDoc = {
      _id: parsed.id,
      projectId: parsed.projectId,
      ...(parsed.cardId ? { cardId: parsed.cardId } : {}),
      prompt: parsed.prompt,
      config: parsed.config,
      status: "pending",
      phase: "queued",
      attempt: 0,
      metrics: Session.shape.metrics.parse({}),
      createdAt,
      updatedAt: createdAt,
      deadlineAt: createdAt + parsed.config.timeoutMs,
    };
    try {
      const res = await this.sessions.updateOne({ _id: doc._id }, { $setOnInsert: doc }, { upsert: true });
      const stored = await this.get(doc._id);
      if (!stored) throw new FleetError("internal", `session ${doc._id} vanished after create`);
      return { session: stored, created: res.upsertedCount === 1 };
    } catch (err) {
      // Two creators racing on one id: the loser's upsert hits the unique _id; the winner's doc stands.
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) {
        const stored = await this.get(doc._id);
        if (stored) return { session: stored, created: false };
      }
      throw wrap("create", err);
    }
  }

  async get(id: string): Promise<Session | null> {
    try {
      // Lookups by _id only: the one filter every backend serves from its primary key (FerretDB's
      // SQLite backend evaluates any other filter, $in included, by scanning the collection).
      const [doc, records] = await Promise.all([this.sessions.findOne({ _id: id }), this.transitionRecords(id)]);
      const session = toSession(doc);
      return session ? this.reconcile(session, records) : null;
    } catch (err) {
      throw wrap("get", err);
    }
  }

  /** The session's transition records, each read by its key (the lookup every backend serves from its primary key). */
  private async transitionRecords(id: string): Promise<TransitionDoc[]> {
    const records = await Promise.all(transitionIds(id).map((t) => this.transitions.findOne({ _id: t })));
    return records.filter((r): r is TransitionDoc => r !== null);
  }

  /** Applies the transition records to a document read from the cache, repairing the cache if stale. */
  private reconcile(session: Session, records: readonly TransitionDoc[]): Session {
    const { session: current, stale } = applyTransitions(session, records);
    if (stale) {
      const { id: _id, ...fields } = current;
      void this.sessions
        .updateOne({ _id: current.id }, { $set: fields })
        .catch((err: unknown) => this.logger.warn({ err: errorMessage(err), sessionId: current.id }, "status cache repair failed"));
    }
    return current;
  }

  /** Re-checks documents found by a query on the cached status against their transition records. */
  private async reconcileMany(docs: readonly SessionDoc[]): Promise<Session[]> {
    if (docs.length === 0) return [];
    const records = await this.transitions.find({ sessionId: { $in: docs.map((d) => d._id) } }).toArray();
    const bySession = new Map<string, TransitionDoc[]>();
    for (const r of records) bySession.set(r.sessionId, [...(bySession.get(r.sessionId) ?? []), r]);
    return docs.map((d) => this.reconcile(toSession(d) as Session, bySession.get(d._id) ?? []));
  }

  async transition(id: string, request: TransitionRequest): Promise<Session | null> {
    if (request.from.some((s) => isTerminal(s))) {
      throw new FleetError("invalid_transition", `terminal statuses cannot be left (from ${request.from.join(",")})`);
    }
    if (request.from.includes(request.to)) {
      throw new FleetError("invalid_transition", `a transition must change the status (${request.to})`);
    }
    const current = await this.get(id);
    if (!current || !request.from.includes(current.status)) return null;
    const now = Date.now();
    const set: TransitionDoc["set"] = { ...request.set, updatedAt: now };
    if (isTerminal(request.to)) set.completedAt ??= now;
    try {
      await this.transitions.insertOne({ _id: transitionId(id, current.status), sessionId: id, from: current.status, to: request.to, at: now, set });
    } catch (err) {
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return null;
      throw wrap("transition", err);
    }
    const next: Session = { ...current, ...set, status: request.to };
    const { id: _id, ...fields } = next;
    try {
      await this.sessions.updateOne({ _id: id }, { $set: fields });
    } catch (err) {
      // The record is written, so the transition stands; the cache is repaired on the next read.
      this.logger.warn({ err: errorMessage(err), sessionId: id }, "status cache update failed after a transition");
    }
    return next;
  }

  async patch(id: string, set: SessionPatch, whenStatus: readonly SessionStatus[] = ACTIVE_STATUSES): Promise<boolean> {
    if ("status" in set) throw new FleetError("invalid_transition", "status changes go through transition()");
    // The status from the transition records alone (two key lookups); the update says whether the
    // document exists.
    const records = await this.transitionRecords(id).catch((err: unknown) => {
      throw wrap("patch", err);
    });
    const status = lastTransition(records)?.to ?? "pending";
    if (!whenStatus.includes(status)) return false;
    try {
      // By _id alone (a primary-key write everywhere). A status change racing this patch cannot be
      // lost: transitions are their own records, and the cached status is repaired on read.
      const res = await this.sessions.updateOne({ _id: id }, { $set: { ...set, updatedAt: Date.now() } });
      return res.matchedCount === 1;
    } catch (err) {
      throw wrap("patch", err);
    }
  }

  async listByProject(projectId: string, options: { limit?: number; cursor?: string } = {}): Promise<Page<Session>> {
    const limit = Math.min(Math.max(options.limit ?? 20, 1), 200);
    const filter: Filter<SessionDoc> = { projectId };
    if (options.cursor) {
      const c = decodeCursor(options.cursor);
      filter.$or = [{ createdAt: { $lt: c.createdAt } }, { createdAt: c.createdAt, _id: { $lt: c.id } }];
    }
    try {
      const docs = await this.sessions.find(filter).sort({ createdAt: -1, _id: -1 }).limit(limit + 1).toArray();
      const items = await this.reconcileMany(docs.slice(0, limit));
      const last = items.at(-1);
      return docs.length > limit && last ? { items, nextCursor: encodeCursor(last.createdAt, last.id) } : { items };
    } catch (err) {
      throw wrap("list", err);
    }
  }

  async activeForCard(cardId: string): Promise<Session | null> {
    return (await this.activeSessionsForCard(cardId))[0] ?? null;
  }

  async activeSessionsForCard(cardId: string): Promise<Session[]> {
    try {
      const docs = await this.sessions.find({ cardId, status: { $in: [...ACTIVE_STATUSES] } }).sort({ createdAt: -1, _id: -1 }).limit(50).toArray();
      return (await this.reconcileMany(docs)).filter((s) => !isTerminal(s.status));
    } catch (err) {
      throw wrap("activeForCard", err);
    }
  }

  async pastDeadline(now: number, limit = 100): Promise<Session[]> {
    try {
      const docs = await this.sessions
        .find({ status: { $in: [...ACTIVE_STATUSES] }, deadlineAt: { $lt: now } })
        .sort({ deadlineAt: 1 })
        .limit(limit)
        .toArray();
      return (await this.reconcileMany(docs)).filter((s) => !isTerminal(s.status));
    } catch (err) {
      throw wrap("pastDeadline", err);
    }
  }

  async appendLogs(lines: readonly LogLine[]): Promise<{ inserted: number }> {
    if (lines.length === 0) return { inserted: 0 };
    const docs = lines.map((l) => ({ _id: logId(l.sessionId, l.seq), ...LogLine.parse(l) }));
    try {
      const res = await this.logLines.insertMany(docs, { ordered: false });
      return { inserted: res.insertedCount };
    } catch (err) {
      if (err instanceof MongoBulkWriteError) {
        const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
        if (errors.every((e) => e.code === DUPLICATE_KEY)) {
          // Only a line that is really there counts as stored: a store going down mid-batch has been
          // seen to answer with duplicate-key errors for lines it then did not keep.
          const present = await this.logLines.countDocuments({ _id: { $in: docs.map((d) => d._id) } }).catch(() => -1);
          if (present === docs.length) return { inserted: err.result.insertedCount };
        }
      }
      throw wrap("appendLogs", err);
    }
  }

  /** Whether line `seq` of a session is stored: one primary-key lookup. */
  private async hasLine(sessionId: string, seq: number): Promise<boolean> {
    return (await this.logLines.findOne({ _id: logId(sessionId, seq) }, { projection: { _id: 1 } })) !== null;
  }

  async logs(sessionId: string, options: { afterSeq?: number; limit?: number } = {}): Promise<LogLine[]> {
    const limit = Math.min(Math.max(options.limit ?? 1_000, 1), 10_000);
    const after = options.afterSeq ?? 0;
    try {
      // Lines are gap-free and keyed by their seq, so the next few (the common reads: a follower
      // that is up to date or nearly, a watch taking over a session that has only its setup lines)
      // are read by key, in rounds of 1, 3 and 12 until one is missing. Only a longer run uses the
      // (sessionId, seq) query, which some stores serve by scanning every session's lines.
      const found: LogLine[] = [];
      for (const round of KEY_READ_ROUNDS) {
        const seqs = Array.from({ length: Math.min(round, limit - found.length) }, (_, i) => after + found.length + 1 + i);
        const docs = await Promise.all(seqs.map((seq) => this.logLines.findOne({ _id: logId(sessionId, seq) })));
        const missing = docs.findIndex((d) => d === null);
        for (const d of missing < 0 ? docs : docs.slice(0, missing)) if (d) found.push(LogLine.parse(withoutId(d)));
        if (missing >= 0 || found.length >= limit) return found;
      }
      const rest = await this.logLines
        .find({ sessionId, seq: { $gt: after + found.length } })
        .sort({ seq: 1 })
        .limit(limit - found.length)
        .toArray();
      return [...found, ...rest.map((d) => LogLine.parse(withoutId(d)))];
    } catch (err) {
      throw wrap("logs", err);
    }
  }

  async lastLogSeq(sessionId: string): Promise<number> {
    try {
      // Gap-free from 1: double until a line is missing, then halve the interval (key lookups only).
      if (!(await this.hasLine(sessionId, 1))) return 0;
      let lo = 1;
      let hi = 2;
      while (await this.hasLine(sessionId, hi)) {
        lo = hi;
        hi *= 2;
      }
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (await this.hasLine(sessionId, mid)) lo = mid;
        else hi = mid;
      }
      return lo;
    } catch (err) {
      throw wrap("lastLogSeq", err);
    }
  }

  async recordDead(letter: DeadLetter): Promise<void> {
    const { id, ...rest } = DeadLetter.parse(letter);
    try {
      // The same message may be reported by a handler and by the server's advisory: keep the first.
      await this.dead.updateOne({ _id: id }, { $setOnInsert: rest }, { upsert: true });
    } catch (err) {
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return;
      throw wrap("recordDead", err);
    }
  }

  async deadLetters(options: { limit?: number } = {}): Promise<DeadLetter[]> {
    try {
      const docs = await this.dead.find({}).sort({ at: -1 }).limit(options.limit ?? 100).toArray();
      return docs.map(({ _id, ...rest }) => DeadLetter.parse({ id: _id, ...rest }));
    } catch (err) {
      throw wrap("deadLetters", err);
    }
  }

  async claim(key: string, owner: string): Promise<boolean> {
    try {
      await this.claims.insertOne({ _id: key, owner, at: Date.now() });
      return true;
    } catch (err) {
      if (err instanceof MongoServerError && err.code === DUPLICATE_KEY) return false;
      throw wrap("claim", err);
    }
  }

  async saveApiKey(record: ApiKeyRecord): Promise<void> {
    const { id, ...rest } = ApiKeyRecord.parse(record);
    try {
      await this.keys.insertOne({ _id: id, ...rest });
    } catch (err) {
      throw wrap("saveApiKey", err);
    }
  }

  async apiKey(id: string): Promise<ApiKeyRecord | null> {
    try {
      const doc = await this.keys.findOne({ _id: id });
      if (!doc) return null;
      const { _id, ...rest } = doc;
      return ApiKeyRecord.parse({ id: _id, ...rest });
    } catch (err) {
      throw wrap("apiKey", err);
    }
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    try {
      return (await this.keys.find({}).sort({ createdAt: 1 }).toArray()).map(({ _id, ...rest }) => ApiKeyRecord.parse({ id: _id, ...rest }));
    } catch (err) {
      throw wrap("listApiKeys", err);
    }
  }

  async revokeApiKey(id: string): Promise<boolean> {
    try {
      const res = await this.keys.updateOne({ _id: id, revokedAt: { $exists: false } }, { $set: { revokedAt: Date.now() } });
      return res.matchedCount === 1;
    } catch (err) {
      throw wrap("revokeApiKey", err);
    }
  }

  async acquireSlot(scope: string, capacity: number, sessionId: string): Promise<boolean> {
    try {
      if (await this.slots.findOne({ scope, sessionId })) return true;
      for (let n = 0; n < capacity; n++) {
        try {
          await this.slots.insertOne({ _id: `${scope}#${n}`, scope, sessionId, at: Date.now() });
          return true;
        } catch (err) {
          if (!(err instanceof MongoServerError && err.code === DUPLICATE_KEY)) throw err;
        }
      }
      return false;
    } catch (err) {
      throw wrap("acquireSlot", err);
    }
  }

  async slotsInUse(scope: string): Promise<number> {
    try {
      return await this.slots.countDocuments({ scope });
    } catch (err) {
      throw wrap("slotsInUse", err);
    }
  }

  async releaseSlots(sessionId: string): Promise<void> {
    try {
      await this.slots.deleteMany({ sessionId });
    } catch (err) {
      throw wrap("releaseSlots", err);
    }
  }

  async heldSlots(): Promise<Array<{ scope: string; sessionId: string }>> {
    try {
      return (await this.slots.find({}).limit(10_000).toArray()).map((d) => ({ scope: d.scope, sessionId: d.sessionId }));
    } catch (err) {
      throw wrap("heldSlots", err);
    }
  }

  async queuePosition(session: { id: string; createdAt: number }): Promise<number> {
    try {
      const earlier = await this.sessions
        .find({ status: "pending", phase: "queued", queuePosition: { $exists: true }, $or: [{ createdAt: { $lt: session.createdAt } }, { createdAt: session.createdAt, _id: { $lt: session.id } }] })
        .project({ _id: 1 })
        .limit(10_000)
        .toArray();
      return earlier.length;
    } catch (err) {
      throw wrap("queuePosition", err);
    }
  }

  async saveCardFiles(cardId: string, files: readonly CardFile[], deleted: readonly string[] = []): Promise<void> {
    const docs = files.map((f) => ({ _id: `${cardId}:${f.path}`, ...CardFile.parse(f) }));
    try {
      if (deleted.length) await this.cardFileDocs.deleteMany({ _id: { $in: deleted.map((p) => `${cardId}:${p}`) } });
      for (const doc of docs) await this.cardFileDocs.replaceOne({ _id: doc._id }, doc, { upsert: true });
    } catch (err) {
      throw wrap("saveCardFiles", err);
    }
  }

  async cardFiles(cardId: string): Promise<CardFile[]> {
    try {
      const docs = await this.cardFileDocs.find({ cardId }).sort({ path: 1 }).toArray();
      return docs.map(({ _id, ...f }) => CardFile.parse(f));
    } catch (err) {
      throw wrap("cardFiles", err);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.db.command({ ping: 1 });
    } catch (err) {
      throw wrap("ping", err);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.client.close().catch((err: unknown) => this.logger.warn({ err: errorMessage(err) }, "store close failed"));
    return this.closing;
  }
}

