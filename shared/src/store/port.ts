import type { CardFile, DeadLetter, LogLine, NewSession, Session, SessionStatus } from "../contracts/index.js";
import type { ApiKeyRecord } from "../auth/index.js";
import type { DeadLetterSink } from "../bus/index.js";

/** Fields a caller may set; `status` changes only through `transition`, `id` never. */
export type SessionPatch = Partial<Omit<Session, "id" | "status" | "createdAt" | "projectId">>;

export interface TransitionRequest {
  /** Statuses the document must be in for the change to win; terminal statuses are refused. */
  from: readonly SessionStatus[];
  to: SessionStatus;
  set?: SessionPatch;
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

export interface SessionStore extends DeadLetterSink {
  /** Creates indexes; safe to run from every instance at start. */
  init(): Promise<void>;
  create(input: NewSession, now?: number): Promise<CreateResult>;
  get(id: string): Promise<Session | null>;
  /** Compare-and-set on status; returns the updated document if this call won, else null. */
  transition(id: string, request: TransitionRequest): Promise<Session | null>;
  /** Sets fields while the status is one of `whenStatus` (default: pending or running). */
  patch(id: string, set: SessionPatch, whenStatus?: readonly SessionStatus[]): Promise<boolean>;
  /** Newest first; stable under concurrent inserts. */
  listByProject(projectId: string, options?: { limit?: number; cursor?: string }): Promise<Page<Session>>;
  /** The newest pending or running session of a card. */
  activeForCard(cardId: string): Promise<Session | null>;
  /** All pending or running sessions of a card, newest first. */
  activeSessionsForCard(cardId: string): Promise<Session[]>;
  /** Active sessions whose deadline has passed, oldest deadline first. */
  pastDeadline(now: number, limit?: number): Promise<Session[]>;
  /** Stores lines once each; lines already stored (same sessionId and seq) are skipped, not errors. */
  appendLogs(lines: readonly LogLine[]): Promise<{ inserted: number }>;
  /** Lines with seq > afterSeq in order. */
  logs(sessionId: string, options?: { afterSeq?: number; limit?: number }): Promise<LogLine[]>;
  /** Highest stored seq, 0 when none. */
  lastLogSeq(sessionId: string): Promise<number>;
  deadLetters(options?: { limit?: number }): Promise<DeadLetter[]>;
  /**
   * Takes a named claim (e.g. `<sessionId>/spawn:2`) once: true for the one caller that got it.
   * A unique insert, so it is atomic on every backend.
   */
  claim(key: string, owner: string): Promise<boolean>;
  /** Merges what a card's session changed into the card's saved files: upserts `files`, drops `deleted`. */
  /**
   * Takes one of `capacity` slots of a scope (e.g. "global", "project:p1") for a session; true when
   * it holds one (already holding counts). Unique keys make it atomic on every backend.
   */
  acquireSlot(scope: string, capacity: number, sessionId: string): Promise<boolean>;
  /** Slots of a scope in use now. */
  slotsInUse(scope: string): Promise<number>;
  /** Frees every slot the session holds. Idempotent. */
  releaseSlots(sessionId: string): Promise<void>;
  /** Every held slot, for the sweep that frees those of ended sessions. */
  heldSlots(): Promise<Array<{ scope: string; sessionId: string }>>;
  /**
   * How many sessions waiting for admission (queued, with a queue position) were created before
   * this one: its place in the queue. Requests not yet picked up do not hold anyone back.
   */
  queuePosition(session: { id: string; createdAt: number }): Promise<number>;
  saveApiKey(record: ApiKeyRecord): Promise<void>;
  apiKey(id: string): Promise<ApiKeyRecord | null>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** True when the key existed and was active. */
  revokeApiKey(id: string): Promise<boolean>;
  saveCardFiles(cardId: string, files: readonly CardFile[], deleted?: readonly string[]): Promise<void>;
  cardFiles(cardId: string): Promise<CardFile[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
