import { z } from "zod";
import { CardId, FileSpec, LIMITS, ProjectId, SessionBudget, SessionId } from "./common.js";
import { DeadLetter, LogLine, Session, SessionStatus } from "./session.js";
import { ProjectDayUsage, UsageDay, UsageTotals } from "./usage.js";

/**
 * The HTTP api's bodies (docs/api.md): what a client sends and what the api answers. The api
 * validates requests and serialises answers with these; the client checks every answer with them.
 */

export const CreateSessionBody = z
  .object({
    projectId: ProjectId,
    prompt: z.string().min(1).max(LIMITS.promptChars),
    sessionId: SessionId.optional(),
    cardId: CardId.optional(),
    systemPrompt: z.string().max(LIMITS.systemPromptChars).optional(),
    tools: z.array(z.string().min(1).max(100)).max(100).optional(),
    model: z.string().min(1).max(200).optional(),
    fallbackModels: z.array(z.string().min(1).max(200)).max(10).optional(),
    maxTokens: z.number().int().positive().max(1_000_000).optional(),
    timeoutMs: z.number().int().min(LIMITS.timeoutMsMin).max(LIMITS.timeoutMsMax).optional(),
    files: z.array(FileSpec).max(LIMITS.files).optional(),
    budget: SessionBudget.optional().describe(
      "limits on what the session may spend through the model gateway; a call past one is refused and the session fails budget_exceeded",
    ),
  })
  .strict();
export type CreateSessionBody = z.infer<typeof CreateSessionBody>;

export const Accepted = z.object({ sessionId: SessionId, status: SessionStatus });

export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(z.unknown()).optional(),
  }),
});

export const SessionPage = z.object({ items: z.array(Session), nextCursor: z.string().optional() });

export const LogsBody = z.object({ sessionId: SessionId, lines: z.array(LogLine) });

export const Details = z.object({
  session: Session,
  logs: z.array(LogLine),
  response: z.string(),
  thinking: z.string(),
  toolCalls: z.array(z.unknown()),
  todos: z.array(z.unknown()),
  diffs: z.array(z.unknown()),
  artifacts: z.array(z.unknown()),
});

export const Metrics = z.object({
  sessionId: SessionId,
  status: SessionStatus,
  setup: z.record(z.string(), z.number()),
  /** Whether the session took a ready agent from the warm pool (no sandbox create, no server start). */
  startedWarm: z.boolean(),
  setupMs: z.number(),
  executionMs: z.number(),
  totalMs: z.number(),
  setupPercent: z.number(),
  executionPercent: z.number(),
  counts: z.object({ messages: z.number(), toolCalls: z.number(), logLines: z.number() }),
  usage: z.object({ tokensIn: z.number(), tokensOut: z.number(), cost: z.number(), sandboxSeconds: z.number() }),
  steps: z.array(z.object({ step: z.string(), ms: z.number() })),
});

export const ActiveSession = z.object({ session: Session, logs: z.array(LogLine) });

export const CancelBody = z.object({ reason: z.string().max(500).optional() }).strict();

export const ProjectUsage = z.object({
  projectId: ProjectId,
  from: UsageDay,
  to: UsageDay,
  total: UsageTotals,
  days: z.array(ProjectDayUsage).describe("days with calls, oldest first"),
});

/** `data` of a `log` server-sent event: one line of the session's log. */
export const LogEventData = LogLine.pick({ seq: true, at: true, kind: true, line: true }).strict();
export type LogEventData = z.infer<typeof LogEventData>;

/** `data` of the `end` server-sent event, sent once the session has ended and every line is out. */
export const EndEventData = z
  .object({ status: z.union([SessionStatus, z.literal("unknown")]), lastSeq: z.number().int().nonnegative() })
  .strict();
export type EndEventData = z.infer<typeof EndEventData>;

export type Accepted = z.infer<typeof Accepted>;
export type ErrorBody = z.infer<typeof ErrorBody>;
export type SessionPage = z.infer<typeof SessionPage>;
export type LogsBody = z.infer<typeof LogsBody>;
export type Details = z.infer<typeof Details>;
export type Metrics = z.infer<typeof Metrics>;
export type ActiveSession = z.infer<typeof ActiveSession>;
export type CancelBody = z.infer<typeof CancelBody>;
export type ProjectUsage = z.infer<typeof ProjectUsage>;

/** One pool key of the warm pool, summed over the spawners that run it (`GET /v1/fleet`, `./fleet pool`). */
export const PoolKeyView = z.object({
  key: z.string(),
  ready: z.number().int().nonnegative(),
  target: z.number().int().nonnegative(),
  starting: z.number().int().nonnegative(),
  claimed: z.number().int().nonnegative(),
  hits: z.number().int().nonnegative(),
  misses: z.number().int().nonnegative(),
  /** Age of the oldest ready agent, 0 when none is ready. */
  oldestReadyMs: z.number().nonnegative(),
  errors: z.array(z.object({ owner: z.string(), failures: z.number().int(), lastError: z.string() })),
});
export type PoolKeyView = z.infer<typeof PoolKeyView>;

/** `GET /v1/fleet`: what runs and what waits, per project; the admission slots; the warm pool; dead letters. */
export const FleetOverview = z.object({
  at: z.number().int(),
  projects: z.array(
    z.object({
      projectId: ProjectId,
      queued: z.number().int().nonnegative().describe("waiting for admission or a spawner"),
      starting: z.number().int().nonnegative().describe("admitted, sandbox and agent being set up"),
      running: z.number().int().nonnegative(),
    }),
  ),
  admission: z.object({
    sandboxesHeld: z.number().int().nonnegative().describe("fleet-wide admission slots held (sessions and warm pool)"),
    learnedCap: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("the cap learned from the provider's quota answers (absent until the first)"),
    providerLimit: z.number().int().positive().optional().describe("the concurrent limit the provider last named"),
  }),
  pool: z.array(PoolKeyView),
  deadLetters: z.array(DeadLetter).describe("the newest dead bus messages"),
});
export type FleetOverview = z.infer<typeof FleetOverview>;
