import { CardId, FileSpec, LIMITS, LogLine, ProjectId, Session, SessionId, SessionStatus } from "@fleet/shared";
import { z } from "zod";

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
  })
  .strict();
export type CreateSessionBody = z.infer<typeof CreateSessionBody>;

export const CreateSessionHeaders = z.object({
  "idempotency-key": z.string().min(1).max(200).optional(),
});

export const Accepted = z.object({ sessionId: SessionId, status: SessionStatus });

export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(z.unknown()).optional(),
  }),
});

export const IdParams = z.object({ id: SessionId });
export const CardParams = z.object({ cardId: CardId });

export const ListQuery = z.object({
  projectId: ProjectId,
  limit: z.coerce.number().int().min(1).max(200).default(20),
  cursor: z.string().max(500).optional(),
});
export const SessionPage = z.object({ items: z.array(Session), nextCursor: z.string().optional() });

export const LogsQuery = z.object({
  afterSeq: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
  follow: z.enum(["0", "1", "true", "false"]).optional(),
});
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
