import { z } from "zod";
import { CardId, ErrorInfo, Millis, ProjectId, SessionConfig, SessionId, Traceparent } from "./common.js";
import { SESSION_PHASES, SESSION_STATUSES, TERMINAL_STATUSES } from "./lifecycle.js";
import { EndRequest, SessionUsage } from "./usage.js";

export {
  ACTIVE_STATUSES,
  LIFECYCLE,
  SESSION_PHASES,
  SESSION_STATUSES,
  TERMINAL_STATUSES,
  isTerminal,
  type StageName,
  type StatusSpec,
  type TerminalStatus,
} from "./lifecycle.js";

export const SessionStatus = z.enum(SESSION_STATUSES);
export type SessionStatus = z.infer<typeof SessionStatus>;

/** The finer step inside `pending` / `running` (lifecycle.ts). */
export const SessionPhase = z.enum(SESSION_PHASES);
export type SessionPhase = z.infer<typeof SessionPhase>;

export const ToolCall = z.object({
  id: z.string().optional(),
  name: z.string(),
  status: z.string().optional(),
  input: z.unknown().optional(),
  output: z.string().optional(),
  startedAt: Millis.optional(),
  endedAt: Millis.optional(),
});

export const Todo = z.object({
  content: z.string(),
  status: z.string(),
  priority: z.string().optional(),
});

export const FileDiff = z.object({
  file: z.string(),
  before: z.string().optional(),
  after: z.string().optional(),
  additions: z.number().int().optional(),
  deletions: z.number().int().optional(),
});

export const Artifact = z.object({
  path: z.string(),
  content: z.string().optional(),
  kind: z.string().optional(),
});

export const SessionOutput = z.object({
  response: z.string().default(""),
  thinking: z.string().default(""),
  toolCalls: z.array(ToolCall).default([]),
  todos: z.array(Todo).default([]),
  diffs: z.array(FileDiff).default([]),
  artifacts: z.array(Artifact).default([]),
});
export type SessionOutput = z.infer<typeof SessionOutput>;

/** Duration of each setup step in ms, as the spawner measured it. */
export const SetupTimings = z.object({
  queuedMs: z.number().nonnegative().optional(),
  sandboxCreateMs: z.number().nonnegative().optional(),
  restoreMs: z.number().nonnegative().optional(),
  serverStartMs: z.number().nonnegative().optional(),
  authMs: z.number().nonnegative().optional(),
  sessionCreateMs: z.number().nonnegative().optional(),
  promptSendMs: z.number().nonnegative().optional(),
  totalMs: z.number().nonnegative().optional(),
  /** Whether the session took a ready agent from the warm pool (no sandbox create, no server start). */
  warm: z.boolean().optional(),
  /** Warm only: how long the claim of a pooled sandbox took, and how long it had waited ready. */
  claimMs: z.number().nonnegative().optional(),
  warmAgeMs: z.number().nonnegative().optional(),
});
export type SetupTimings = z.infer<typeof SetupTimings>;

export const SessionMetrics = z.object({
  setup: SetupTimings.default({}),
  executionMs: z.number().nonnegative().optional(),
  counts: z
    .object({
      messages: z.number().int().nonnegative().default(0),
      toolCalls: z.number().int().nonnegative().default(0),
      logLines: z.number().int().nonnegative().default(0),
    })
    .default({ messages: 0, toolCalls: 0, logLines: 0 }),
  usage: z
    .object({
      tokensIn: z.number().nonnegative().default(0),
      tokensOut: z.number().nonnegative().default(0),
      cost: z.number().nonnegative().default(0),
      sandboxSeconds: z.number().nonnegative().default(0),
    })
    .default({ tokensIn: 0, tokensOut: 0, cost: 0, sandboxSeconds: 0 }),
});
export type SessionMetrics = z.infer<typeof SessionMetrics>;

export const SandboxRef = z.object({
  id: z.string().min(1),
  provider: z.string().min(1),
  host: z.string().optional(),
  /** The agent server's process inside the sandbox, so a stuck agent can be killed on its own. */
  agentPid: z.number().int().positive().optional(),
  /** Set when the sandbox came from the warm pool: its agent's password is the pooled server's own. */
  pooled: z.boolean().optional(),
});

/** The session document as stored (MongoDB `sessions`, `_id` = id) and served by the api. */
export const Session = z.object({
  id: SessionId,
  projectId: ProjectId,
  cardId: CardId.optional(),
  prompt: z.string(),
  config: SessionConfig,
  status: SessionStatus,
  phase: SessionPhase,
  queuePosition: z.number().int().nonnegative().optional(),
  sandbox: SandboxRef.optional(),
  agentSessionId: z.string().optional(),
  /** The user message that carried the prompt; the agent's diff is taken since it. */
  agentMessageId: z.string().optional(),
  /** Setup attempts taken; a spawner claims the next one with a compare-and-set on this number. */
  attempt: z.number().int().nonnegative(),
  /** When a spawner claimed the current attempt (the fleet's clock). */
  claimedAt: Millis.optional(),
  /**
   * The request message (its stream sequence) and the delivery of it that claimed the current
   * attempt. Another delivery of the same message no later than that one is stale: its holder
   * stalled past the ack wait, and the message is no longer its to acknowledge.
   */
  claimedBy: z.object({ seq: z.number().int().positive(), delivery: z.number().int().positive() }).strict().optional(),
  output: SessionOutput.optional(),
  error: ErrorInfo.optional(),
  metrics: SessionMetrics,
  /** When the fleet took the request, on its own clock: deadlines and the admission queue count from it. */
  createdAt: Millis,
  /** When the publisher of a bus request says it asked, as it said it (its clock, not trusted for timing). */
  requestedAt: Millis.optional(),
  updatedAt: Millis,
  startedAt: Millis.optional(),
  completedAt: Millis.optional(),
  deadlineAt: Millis,
  /**
   * The outbox: the terminal event this session still owes outside subscribers. Set by the terminal
   * transition in the same write, cleared once the bus confirmed the event (docs/guarantees.md §8).
   */
  eventOwed: z.object({ kind: z.enum(TERMINAL_STATUSES), at: Millis }).optional(),
  /** The session's trace (OpenTelemetry): every stage that acts on the session adds its spans to it. */
  trace: Traceparent.optional(),
  /**
   * The watch lease (docs/guarantees.md §9): the poller watching this running session renews it;
   * once it lapses (plus a grace) the watchdog publishes `session.running` again. Absent until the
   * first renewal: the first lease runs from `startedAt`.
   */
  watchedUntil: Millis.optional(),
  /** The watch that last renewed the lease; a renewal is conditional on it, which fences a watch that lost it. */
  watchedBy: z.string().max(200).optional(),
  /** How often the watchdog republished `session.running` for this attempt; a message of an older round is stale. */
  rewatches: z.number().int().nonnegative().optional(),
  /**
   * The session took admission slots (a cap is configured), recorded with the first setup write:
   * its end gives them back. Without it no slot is released, so a fleet without caps spends no
   * store call on it; slots taken by a spawner that died before recording them are freed by the
   * watchdog's sweep.
   */
  slotsHeld: z.literal(true).optional(),
  /**
   * The model gateway refused a call of this attempt (over budget) and asks for the session's end;
   * the poller watching it ends it failed with this code (usage.ts).
   */
  endRequested: EndRequest.optional(),
  /** The gateway's ledger for this session, added by the api when it serves the document (not stored here). */
  usage: SessionUsage.optional(),
});
export type Session = z.infer<typeof Session>;

/** What a caller supplies to create a session; the store fills in the rest. */
export const NewSession = Session.pick({
  id: true,
  projectId: true,
  cardId: true,
  prompt: true,
  config: true,
  requestedAt: true,
  trace: true,
}).extend({
  createdAt: Millis.optional(),
});
export type NewSession = z.input<typeof NewSession>;

/** One line of a session's progress, stored in `session_logs` keyed by (sessionId, seq). */
export const LogKind = z.enum(["system", "tool", "text", "thinking", "status", "error"]);
export const LogLine = z.object({
  sessionId: SessionId,
  seq: z.number().int().positive(),
  at: Millis,
  kind: LogKind.default("system"),
  line: z.string().max(2_000),
  /** What the line reports (e.g. `tool:<partId>:completed`), so a poller resuming after a crash skips it. */
  key: z.string().max(300).optional(),
});
export type LogLine = z.infer<typeof LogLine>;

/** A file a card's session changed, restored into the card's next session. */
export const CardFile = z.object({
  cardId: CardId,
  path: z.string(),
  content: z.string(),
  encoding: z.enum(["utf8", "base64"]).default("utf8"),
  sessionId: SessionId,
  savedAt: Millis,
});
export type CardFile = z.infer<typeof CardFile>;

/** A bus message that was terminated (malformed, permanent failure) or exhausted max_deliver. */
export const DeadLetter = z.object({
  id: z.string(),
  stream: z.string(),
  consumer: z.string(),
  subject: z.string(),
  seq: z.number().int().nonnegative(),
  reason: z.string().max(4_000),
  excerpt: z.string().max(1_000),
  deliveries: z.number().int().nonnegative(),
  at: Millis,
});
export type DeadLetter = z.infer<typeof DeadLetter>;
