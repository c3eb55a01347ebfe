import type { Db, MongoClient } from "mongodb";
import type {
  CardFile,
  DeadLetter,
  LogLine,
  NewSession,
  ProjectDayUsage,
  Session,
  SessionStatus,
  SessionUsage,
  UsageCall,
  UsageDay,
  UsageTotals,
} from "../contracts/index.js";
import type { ApiKeyRecord } from "../auth/index.js";
import { errorMessage } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import { MongoApiKeys } from "./api-keys.js";
import { MongoCardFiles } from "./card-files.js";
import { connectStore, type MongoStoreConfig } from "./connection.js";
import { healWhenStuck } from "./heal.js";
import { MongoDeadLetters } from "./dead-letters.js";
import { guarded } from "./errors.js";
import { MongoLogLines } from "./log-lines.js";
import type { SessionStore } from "./port.js";
import {
  MongoSessions,
  type ActiveCount,
  type CreateResult,
  type Page,
  type SessionPatch,
  type TransitionRequest,
  type WatchLease,
} from "./sessions.js";
import { MongoPool, type PoolClaim, type PoolEntry, type PoolStatus } from "./pool.js";
import { type LearnedCap, MongoSlots } from "./slots.js";
import { MongoUsage } from "./usage.js";

export type { MongoStoreConfig } from "./connection.js";

/**
 * The SessionStore over MongoDB (or the fleet's FerretDB build): one adapter per collection on one
 * client. Uses only what both backends support: single-document atomic updates, inserts against
 * unique keys, unordered insertMany, sorted range queries; no transactions, no change streams.
 */
export class MongoSessionStore implements SessionStore {
  private readonly db: Db;
  private readonly sessions: MongoSessions;
  private readonly logLines: MongoLogLines;
  private readonly slots: MongoSlots;
  private readonly pool: MongoPool;
  private readonly keys: MongoApiKeys;
  private readonly cardFileDocs: MongoCardFiles;
  private readonly dead: MongoDeadLetters;
  private readonly usage: MongoUsage;
  private closing: Promise<void> | undefined;
  private readonly stopHealing: () => void;

  private constructor(
    private readonly client: MongoClient,
    config: MongoStoreConfig,
    private readonly logger: Logger,
  ) {
    this.db = client.db(config.database);
    this.sessions = new MongoSessions(this.db);
    this.logLines = new MongoLogLines(this.db);
    this.slots = new MongoSlots(this.db);
    this.pool = new MongoPool(this.db);
    this.keys = new MongoApiKeys(this.db);
    this.cardFileDocs = new MongoCardFiles(this.db);
    this.dead = new MongoDeadLetters(this.db);
    this.usage = new MongoUsage(this.db);
    this.stopHealing = healWhenStuck(client, { uri: config.uri }, logger);
  }

  static async connect(config: MongoStoreConfig, logger: Logger): Promise<MongoSessionStore> {
    return new MongoSessionStore(await connectStore(config, logger), config, logger);
  }

  async init(): Promise<void> {
    // One index at a time: FerretDB 1.24 panics on a createIndexes naming several indexes that exist.
    await guarded("init", async () => {
      for (const part of [
        this.sessions,
        this.logLines,
        this.dead,
        this.cardFileDocs,
        this.slots,
        this.pool,
        this.usage,
      ])
        await part.init();
    });
  }

  create(input: NewSession, now?: number, claim?: SessionPatch): Promise<CreateResult> {
    return this.sessions.create(input, now, claim);
  }
  get(id: string): Promise<Session | null> {
    return this.sessions.get(id);
  }
  transition(id: string, request: TransitionRequest): Promise<Session | null> {
    return this.sessions.transition(id, request);
  }
  claimAttempt(id: string, attempt: number, set?: SessionPatch): Promise<boolean> {
    return this.sessions.claimAttempt(id, attempt, set);
  }
  patch(id: string, set: SessionPatch, whenStatus?: readonly SessionStatus[]): Promise<boolean> {
    return this.sessions.patch(id, set, whenStatus);
  }
  listByProject(projectId: string, options?: { limit?: number; cursor?: string }): Promise<Page<Session>> {
    return this.sessions.listByProject(projectId, options);
  }
  activeForCard(cardId: string): Promise<Session | null> {
    return this.sessions.activeForCard(cardId);
  }
  activeSessionsForCard(cardId: string): Promise<Session[]> {
    return this.sessions.activeSessionsForCard(cardId);
  }
  settleEvent(id: string): Promise<boolean> {
    return this.sessions.settleEvent(id);
  }
  owedEvents(before: number, limit?: number): Promise<Session[]> {
    return this.sessions.owedEvents(before, limit);
  }
  pastDeadline(now: number, limit?: number): Promise<Session[]> {
    return this.sessions.pastDeadline(now, limit);
  }
  queuePosition(session: { id: string; createdAt: number }): Promise<number> {
    return this.sessions.queuePosition(session);
  }
  waitingSessions(limit?: number): Promise<Array<{ id: string; projectId: string; createdAt: number }>> {
    return this.sessions.waitingSessions(limit);
  }

  activeCounts(): Promise<ActiveCount[]> {
    return this.sessions.activeCounts();
  }

  renewWatch(id: string, lease: WatchLease, by: string, until: number): Promise<boolean> {
    return this.sessions.renewWatch(id, lease, by, until);
  }
  lapsedWatches(before: number, leaseMs: number, limit?: number): Promise<Session[]> {
    return this.sessions.lapsedWatches(before, leaseMs, limit);
  }
  rewatch(s: Pick<Session, "id" | "attempt" | "rewatches" | "watchedUntil">, until: number): Promise<Session | null> {
    return this.sessions.rewatch(s, until);
  }

  appendLogs(lines: readonly LogLine[]): Promise<{ inserted: number }> {
    return this.logLines.appendLogs(lines);
  }
  logs(sessionId: string, options?: { afterSeq?: number; limit?: number }): Promise<LogLine[]> {
    return this.logLines.logs(sessionId, options);
  }
  lastLogSeq(sessionId: string): Promise<number> {
    return this.logLines.lastLogSeq(sessionId);
  }

  acquireSlot(scope: string, capacity: number, sessionId: string, projectId?: string): Promise<boolean> {
    return this.slots.acquireSlot(scope, capacity, sessionId, projectId);
  }
  slotsInUse(scope: string): Promise<number> {
    return this.slots.slotsInUse(scope);
  }
  releaseSlots(sessionId: string): Promise<void> {
    return this.slots.releaseSlots(sessionId);
  }
  heldSlots(): Promise<Array<{ scope: string; sessionId: string; at: number }>> {
    return this.slots.heldSlots();
  }
  slotsByProject(scope: string): Promise<{ total: number; byProject: Map<string, number> }> {
    return this.slots.slotsByProject(scope);
  }
  transferSlots(fromHolder: string, toHolder: string, projectId?: string): Promise<number> {
    return this.slots.transferSlots(fromHolder, toHolder, projectId);
  }
  learnedCap(scope: string): Promise<LearnedCap | null> {
    return this.slots.learnedCap(scope);
  }
  replaceLearnedCap(expectedRev: number, next: Omit<LearnedCap, "rev" | "updatedAt">): Promise<boolean> {
    return this.slots.replaceLearnedCap(expectedRev, next);
  }

  addPoolEntry(e: Pick<PoolEntry, "sandboxId" | "fleet" | "key" | "owner" | "slotHolder">): Promise<void> {
    return this.pool.addPoolEntry(e);
  }
  markPoolWarm(sandboxId: string, agentPid?: number): Promise<boolean> {
    return this.pool.markPoolWarm(sandboxId, agentPid);
  }
  claimPooled(fleet: string, key: string, claim: PoolClaim, now?: number): Promise<PoolEntry | null> {
    return this.pool.claimPooled(fleet, key, claim, now);
  }
  poolEntry(sandboxId: string): Promise<PoolEntry | null> {
    return this.pool.poolEntry(sandboxId);
  }
  poolEntries(
    fleet: string,
    filter?: { key?: string; owner?: string; state?: PoolEntry["state"] },
  ): Promise<PoolEntry[]> {
    return this.pool.poolEntries(fleet, filter);
  }
  touchPool(fleet: string, owner: string, now?: number): Promise<void> {
    return this.pool.touchPool(fleet, owner, now);
  }
  removeUnclaimed(sandboxId: string): Promise<boolean> {
    return this.pool.removeUnclaimed(sandboxId);
  }
  removePoolEntry(sandboxId: string): Promise<void> {
    return this.pool.removePoolEntry(sandboxId);
  }
  reportPoolStatus(status: PoolStatus): Promise<void> {
    return this.pool.reportPoolStatus(status);
  }
  poolStatuses(fleet: string): Promise<PoolStatus[]> {
    return this.pool.poolStatuses(fleet);
  }

  saveApiKey(record: ApiKeyRecord): Promise<void> {
    return this.keys.saveApiKey(record);
  }
  apiKey(id: string): Promise<ApiKeyRecord | null> {
    return this.keys.apiKey(id);
  }
  listApiKeys(): Promise<ApiKeyRecord[]> {
    return this.keys.listApiKeys();
  }
  revokeApiKey(id: string): Promise<boolean> {
    return this.keys.revokeApiKey(id);
  }

  saveCardFiles(cardId: string, files: readonly CardFile[], deleted?: readonly string[]): Promise<void> {
    return this.cardFileDocs.saveCardFiles(cardId, files, deleted);
  }
  cardFiles(cardId: string): Promise<CardFile[]> {
    return this.cardFileDocs.cardFiles(cardId);
  }

  recordDead(letter: DeadLetter): Promise<void> {
    return this.dead.recordDead(letter);
  }
  deadLetters(options?: { limit?: number }): Promise<DeadLetter[]> {
    return this.dead.deadLetters(options);
  }

  recordUsage(call: UsageCall): Promise<void> {
    return this.usage.recordUsage(call);
  }
  sessionUsage(sessionId: string): Promise<SessionUsage | null> {
    return this.usage.sessionUsage(sessionId);
  }
  projectDayUsage(projectId: string, day: UsageDay): Promise<UsageTotals> {
    return this.usage.projectDayUsage(projectId, day);
  }
  projectUsage(projectId: string, from: UsageDay, to: UsageDay): Promise<ProjectDayUsage[]> {
    return this.usage.projectUsage(projectId, from, to);
  }
  usageCalls(sessionId: string, limit?: number): Promise<UsageCall[]> {
    return this.usage.usageCalls(sessionId, limit);
  }

  async ping(): Promise<void> {
    await guarded("ping", () => this.db.command({ ping: 1 }));
  }

  close(): Promise<void> {
    this.stopHealing();
    this.closing ??= this.client
      .close()
      .catch((err: unknown) => this.logger.warn({ err: errorMessage(err) }, "store close failed"));
    return this.closing;
  }
}
