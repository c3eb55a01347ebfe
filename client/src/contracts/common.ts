import { z } from "zod";

/** Version of every bus message body. Bump on a breaking change; consumers reject other versions. */
export const SCHEMA_VERSION = 1 as const;
export const schemaVersion = z.literal(SCHEMA_VERSION).describe("schema version of this message body");

/**
 * A session id is chosen by the submitter or generated. It is one NATS subject token
 * (session.log.<id>), so no dots, spaces or wildcards.
 */
export const SessionId = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/,
    "1-128 chars of letters, digits, '_' or '-', starting with a letter or digit",
  )
  .describe("session id: a single NATS subject token");
export type SessionId = z.infer<typeof SessionId>;

export const ProjectId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/)
  .describe("project id");
export const CardId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/)
  .describe("card id");

/** Epoch milliseconds. */
export const Millis = z.number().int().nonnegative();

export const ErrorInfo = z
  .object({
    code: z.string().min(1).max(64),
    message: z.string().max(4_000),
  })
  .strict();
export type ErrorInfo = z.infer<typeof ErrorInfo>;

export const LIMITS = {
  promptChars: 100_000,
  systemPromptChars: 20_000,
  files: 200,
  fileBytes: 1_000_000,
  filesTotalBytes: 5_000_000,
  /** A session.requested message must fit NATS's default max_payload (1 MiB) with room for headers. */
  requestMessageBytes: 900_000,
  /** Lines one session may write; past it one marker line says the rest was dropped. */
  logLinesPerSession: 5_000,
  logLineChars: 2_000,
  /** Lines in one session.log message, and their characters (lines and keys) together. */
  logLinesPerMessage: 64,
  logCharsPerMessage: 32_000,
  timeoutMsMin: 10_000,
  timeoutMsMax: 4 * 60 * 60 * 1000,
  timeoutMsDefault: 10 * 60 * 1000,
} as const;

/**
 * A path restored into the workspace: relative, no `..` segment, no NUL, no backslash tricks.
 * Symlink escapes are checked again by the sandbox provider against the real workspace.
 */
export const RelativePath = z
  .string()
  .min(1)
  .max(512)
  .refine((p) => !p.startsWith("/") && !p.includes("\0") && !p.includes("\\"), "must be a relative POSIX path")
  .refine(
    (p) => p.split("/").every((s) => s !== ".." && s !== "." && s !== ""),
    "must not contain '..', '.' or empty segments",
  );

export const FileSpec = z
  .object({
    path: RelativePath,
    content: z.string().max(Math.ceil((LIMITS.fileBytes * 4) / 3) + 4),
    encoding: z.enum(["utf8", "base64"]).default("utf8"),
  })
  .strict();
export type FileSpec = z.infer<typeof FileSpec>;

/** A session's spending limits, checked by the gateway before each call (the request's `config.budget`). */
export const SessionBudget = z
  .object({
    maxTokens: z
      .number()
      .int()
      .positive()
      .max(1_000_000_000_000)
      .optional()
      .describe("model tokens (in + out) the session may use through the gateway"),
    maxCost: z
      .number()
      .positive()
      .max(1_000_000)
      .optional()
      .describe("model cost the session may spend, in the unit of the gateway's price table"),
  })
  .strict();
export type SessionBudget = z.infer<typeof SessionBudget>;

export const SessionConfig = z
  .object({
    model: z.string().min(1).max(200).optional(),
    fallbackModels: z.array(z.string().min(1).max(200)).max(10).default([]),
    maxTokens: z.number().int().positive().max(1_000_000).optional(),
    tools: z.array(z.string().min(1).max(100)).max(100).default([]).describe("allowed tools"),
    systemPrompt: z.string().max(LIMITS.systemPromptChars).optional(),
    timeoutMs: z.number().int().min(LIMITS.timeoutMsMin).max(LIMITS.timeoutMsMax).default(LIMITS.timeoutMsDefault),
    budget: SessionBudget.optional(),
  })
  .strict();
export type SessionConfig = z.infer<typeof SessionConfig>;

/** A W3C trace context `traceparent` (version 00): names the trace a session's spans belong to. */
export const Traceparent = z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
