import {
  CardId,
  FileSpec,
  LIMITS,
  LogLine,
  ProjectDayUsage,
  ProjectId,
  Session,
  SessionBudget,
  SessionId,
  SessionStatus,
  UsageDay,
  UsageTotals,
} from "@fleet/shared";
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
    budget: SessionBudget.optional().describe(
      "limits on what the session may spend through the model gateway; a call past one is refused and the session fails budget_exceeded",
    ),
  })
  .strict();
export type CreateSessionBody = z.infer<typeof CreateSessionBody>;

export const CreateSessionHeaders = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(200)
    .optional()
    .describe(
      "names the session (with the project): a retry with the same key and request answers the same session; the same key with a different request answers 422",
    ),
});

export const Accepted = z.object({ sessionId: SessionId, status: SessionStatus });

export const ErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    issues: z.array(z.unknown()).optional(),
  }),
});

/**
 * The error answers a route declares, all with the one error body, so the OpenAPI document lists
 * every status a client can get (docs/api.md#errors); test/schemathesis.test.ts holds the api to it.
 */
export function errors<const C extends number>(...codes: C[]): Record<C, typeof ErrorBody> {
  return Object.fromEntries(codes.map((c) => [c, ErrorBody])) as Record<C, typeof ErrorBody>;
}

/** What any route can meet before it runs: a URL or path parameter too long (414), a request head over 16 KiB (431). */
export const FRAMEWORK_ERRORS = [414, 431] as const;
/** What every /v1 route can answer: bad path, query or body (400), no key (401), bus or store down (503), and the framework's refusals. */
export const V1_ERRORS = [400, 401, 503, ...FRAMEWORK_ERRORS] as const;
/** A JSON body route also meets fastify's own refusals: too large (413), not JSON (415). */
export const BODY_ERRORS = [413, 415] as const;

/** API keys, as `Authorization: Bearer <key>` or `X-Api-Key: <key>` (services/api/src/auth.ts). */
export const SECURITY_SCHEMES = {
  bearerKey: { type: "http", scheme: "bearer", description: "an API key: Authorization: Bearer fk_<id>_<secret>" },
  headerKey: { type: "apiKey", in: "header", name: "X-Api-Key", description: "an API key in its own header" },
} as const;
export const API_KEY_SECURITY: Array<Record<string, string[]>> = [{ bearerKey: [] }, { headerKey: [] }];

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

/** A string holding JSON of the given shape (an SSE `data` field), as JSON Schema's contentSchema. */
function jsonText(schema: z.ZodType): z.ZodString {
  const { $schema: _, ...contentSchema } = z.toJSONSchema(schema, { target: "draft-2020-12", io: "output" });
  return z.string().meta({ contentMediaType: "application/json", contentSchema });
}

/**
 * One server-sent event of the log stream, as an SSE parser reads it (`event`, `id`, `data`):
 * a `log` event per line, then one `end` event once the session has ended.
 */
export const LogStreamEvent = z.union([
  z.object({
    event: z.literal("log"),
    id: z
      .string()
      .regex(/^[0-9]+$/)
      .describe("the line's seq"),
    data: jsonText(LogLine.pick({ seq: true, at: true, kind: true, line: true }).strict()),
  }),
  z.object({
    event: z.literal("end"),
    id: z
      .string()
      .regex(/^[0-9]+$/)
      .optional()
      .describe("the last event id seen, which an SSE parser carries over"),
    data: jsonText(
      z
        .object({ status: z.union([SessionStatus, z.literal("unknown")]), lastSeq: z.number().int().nonnegative() })
        .strict(),
    ),
  }),
]);

/** The logs route answers JSON, or server-sent events with Accept: text/event-stream or ?follow=1. */
export const LogsResponse = {
  description: "the session's log lines",
  content: {
    "application/json": { schema: LogsBody },
    "text/event-stream": { schema: LogStreamEvent },
  },
};

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

export const ProjectParams = z.object({ id: ProjectId });

export const UsageQuery = z.object({
  from: UsageDay.optional().describe("first UTC day (YYYY-MM-DD); default: 29 days before `to`"),
  to: UsageDay.optional().describe("last UTC day (YYYY-MM-DD), included; default: today"),
});

export const ProjectUsage = z.object({
  projectId: ProjectId,
  from: UsageDay,
  to: UsageDay,
  total: UsageTotals,
  days: z.array(ProjectDayUsage).describe("days with calls, oldest first"),
});
