import { CardId, EndEventData, ErrorBody, LogEventData, LogsBody, ProjectId, SessionId, UsageDay } from "@fleet/shared";
import { z } from "zod";

/** The bodies themselves are the public HTTP contract, defined with the client (@session-fleet/client/contracts). */
export {
  Accepted,
  ActiveSession,
  CancelBody,
  CreateSessionBody,
  Details,
  ErrorBody,
  Metrics,
  ProjectUsage,
  SessionPage,
} from "@fleet/shared";

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

export const LogsQuery = z.object({
  afterSeq: z.coerce.number().int().nonnegative().default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
  follow: z.enum(["0", "1", "true", "false"]).optional(),
});

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
    data: jsonText(LogEventData),
  }),
  z.object({
    event: z.literal("end"),
    id: z
      .string()
      .regex(/^[0-9]+$/)
      .optional()
      .describe("the last event id seen, which an SSE parser carries over"),
    data: jsonText(EndEventData),
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

export const ProjectParams = z.object({ id: ProjectId });

export const UsageQuery = z.object({
  from: UsageDay.optional().describe("first UTC day (YYYY-MM-DD); default: 29 days before `to`"),
  to: UsageDay.optional().describe("last UTC day (YYYY-MM-DD), included; default: today"),
});
