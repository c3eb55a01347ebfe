import { z } from "zod";
import {
  CardId,
  ErrorInfo,
  FileSpec,
  LIMITS,
  Millis,
  ProjectId,
  SessionConfig,
  SessionId,
  schemaVersion,
} from "./common.js";
import { LogKind, type LogLine, Session } from "./session.js";

/** Published by the api or by any outside system: run this prompt. */
export const SessionRequested = z
  .object({
    v: schemaVersion,
    sessionId: SessionId,
    projectId: ProjectId,
    cardId: CardId.optional(),
    prompt: z.string().min(1).max(LIMITS.promptChars),
    config: SessionConfig.default(() => SessionConfig.parse({})),
    files: z.array(FileSpec).max(LIMITS.files).default([]),
    requestedAt: Millis,
  })
  .strict();
export type SessionRequested = z.infer<typeof SessionRequested>;

/** A running session's document as a watch needs it: everything but the prompt (and the usage the api adds). */
export const RunningSession = Session.omit({ prompt: true, usage: true });
export type RunningSession = z.infer<typeof RunningSession>;

/** Published by the spawner once the prompt is with the agent. */
export const SessionRunning = z
  .object({
    v: schemaVersion,
    sessionId: SessionId,
    projectId: ProjectId,
    sandboxId: z.string().min(1),
    sandboxHost: z.string().optional(),
    agentSessionId: z.string().min(1),
    attempt: z.number().int().nonnegative(),
    at: Millis,
    /**
     * The seq of the last log line the spawner wrote for this attempt, when it published this event
     * right after writing it: the first watch continues the log from there without reading the stream.
     */
    logSeq: z.number().int().nonnegative().optional(),
    /**
     * Set when the watchdog republished this after the session's watch lease lapsed: the session's
     * `rewatches` at that time. A message of an older round (absent: 0) no longer starts a watch.
     */
    rewatch: z.number().int().positive().optional(),
    /**
     * The session document as the `running` transition wrote it, without its prompt, when the setup
     * that made that write publishes this: a first watch starts from it instead of reading the store
     * (a redelivery, or a watch started later than the store check interval, reads it again).
     */
    session: RunningSession.optional(),
  })
  .strict();
export type SessionRunning = z.infer<typeof SessionRunning>;

/** The schema version of session.log.<sessionId> bodies: 2 since one message carries several lines. */
export const LOG_SCHEMA_VERSION = 2 as const;

/** One line of a session.log message: its seq is the message's `seq` plus its index. */
export const LogEntry = z
  .object({
    kind: LogKind,
    line: z.string().max(LIMITS.logLineChars),
    key: z.string().max(300).optional(),
  })
  .strict();
export type LogEntry = z.infer<typeof LogEntry>;

/**
 * Consecutive progress lines on session.log.<sessionId>, written together: `seq` is the first
 * one's (1-based and gap-free per session), the others follow it. Each line is in one message only.
 */
export const SessionLog = z
  .object({
    v: z.literal(LOG_SCHEMA_VERSION).describe("schema version of this message body"),
    sessionId: SessionId,
    seq: z.number().int().positive(),
    at: Millis,
    lines: z.array(LogEntry).min(1).max(LIMITS.logLinesPerMessage),
  })
  .strict();
export type SessionLog = z.infer<typeof SessionLog>;

/** The lines of a session.log message, each with its own seq, as the store keeps them. */
export function logLines(m: SessionLog): LogLine[] {
  return m.lines.map((l, i) => ({
    sessionId: m.sessionId,
    seq: m.seq + i,
    at: m.at,
    kind: l.kind,
    line: l.line,
    ...(l.key !== undefined ? { key: l.key } : {}),
  }));
}

/** The seq of a session.log message's last line. */
export const lastSeqOf = (m: SessionLog): number => m.seq + m.lines.length - 1;

/** What every terminal event (completed, failed, cancelled) starts with. */
const terminalShape = {
  v: schemaVersion,
  sessionId: SessionId,
  projectId: ProjectId,
  at: Millis,
};

export const SessionCompleted = z
  .object({
    ...terminalShape,
    executionMs: z.number().nonnegative().optional(),
    response: z.string().max(4_000).describe("the final response, cut to 4000 chars; the full one is in the document"),
    toolCalls: z.number().int().nonnegative(),
  })
  .strict();
export type SessionCompleted = z.infer<typeof SessionCompleted>;

export const SessionFailed = z
  .object({
    ...terminalShape,
    error: ErrorInfo,
  })
  .strict();
export type SessionFailed = z.infer<typeof SessionFailed>;

/**
 * A request to cancel (from the api or an outside system) on session.cancel; the watchdog carries
 * it out, and the session's end is announced on session.cancelled like any other terminal event.
 */
export const SessionCancel = z
  .object({
    v: schemaVersion,
    sessionId: SessionId,
    at: Millis,
    reason: z.string().max(500).optional(),
  })
  .strict();
export type SessionCancel = z.infer<typeof SessionCancel>;

/** The session ended cancelled (terminal): published once the document says so, never a request. */
export const SessionCancelled = z
  .object({
    ...terminalShape,
    reason: z
      .string()
      .max(500)
      .optional()
      .describe("why: the request's reason, or the fleet's (a session superseded by a newer one of its card)"),
  })
  .strict();
export type SessionCancelled = z.infer<typeof SessionCancelled>;

/**
 * Progress pushed from inside a sandbox (POST /v1/callbacks/sessions/:id/events). Not a stream
 * message: the api asks whichever poller watches the session right now (core request/reply on
 * session.progress.<sessionId>), so the session's log keeps one writer and one gap-free sequence.
 */
export const ProgressLine = z
  .object({
    kind: LogKind.default("text"),
    line: z.string().min(1).max(LIMITS.logLineChars),
    key: z
      .string()
      .min(1)
      .max(200)
      .optional()
      .describe("identity of the line: a retried line with the same key is kept once"),
  })
  .strict();
export type ProgressLine = z.infer<typeof ProgressLine>;

export const SessionProgress = z
  .object({
    v: schemaVersion,
    sessionId: SessionId,
    attempt: z.number().int().nonnegative(),
    lines: z.array(ProgressLine).min(1).max(100),
  })
  .strict();
export type SessionProgress = z.infer<typeof SessionProgress>;

export const ProgressReply = z.discriminatedUnion("ok", [
  z
    .object({ ok: z.literal(true), stored: z.number().int().nonnegative(), seq: z.number().int().nonnegative() })
    .strict(),
  z
    .object({ ok: z.literal(false), code: z.enum(["conflict", "bad_input", "unavailable"]), message: z.string() })
    .strict(),
]);
export type ProgressReply = z.infer<typeof ProgressReply>;
