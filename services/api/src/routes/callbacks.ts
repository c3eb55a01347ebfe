import {
  FileDiff,
  FleetError,
  ProgressLine,
  SCHEMA_VERSION,
  SessionId,
  Todo,
  endSession,
  verifyCallbackToken,
  type CallbackTokenConfig,
  type EndDeps,
  type Session,
} from "@fleet/shared";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { Accepted, FRAMEWORK_ERRORS, errors } from "../schemas.js";

export interface CallbackRoutesDeps extends EndDeps {
  tokens: CallbackTokenConfig;
  /** How long the watching poller has to store pushed progress before the call answers 503. */
  progressTimeoutMs?: number;
}

const CompleteBody = z
  .object({
    response: z.string().max(100_000),
    thinking: z.string().max(200_000).optional(),
    todos: z.array(Todo).max(500).optional(),
    diffs: z.array(FileDiff).max(200).optional(),
  })
  .strict();

const EventsBody = z.object({ lines: z.array(ProgressLine).min(1).max(100) }).strict();

const EventsStored = z.object({
  sessionId: SessionId,
  stored: z
    .number()
    .int()
    .nonnegative()
    .describe("lines newly stored (a retried line with a known key is not stored twice)"),
  seq: z.number().int().nonnegative().describe("the session's last log sequence number after this call"),
});

const AUTH_HEADER = z.object({ authorization: z.string().optional().describe("Bearer <callback token>") });

/**
 * Calls from inside a sandbox, by session id (never by scanning): authorised only by the session's
 * short-lived callback token. A completion goes through the same compare-and-set as the poller's;
 * progress goes to the poller watching the session, which owns the session's log.
 */
export const callbackRoutes =
  (deps: CallbackRoutesDeps): FastifyPluginAsyncZod =>
  async (app) => {
    /** The attempt each request's token was minted for, from the check that runs before validation. */
    const attempts = new WeakMap<object, number>();

    /** The token is checked before the body, so a caller without one learns nothing of the schema. */
    const tokenFirst = async (req: {
      headers: { authorization?: string | undefined };
      params: unknown;
    }): Promise<void> => {
      const header = req.headers.authorization ?? "";
      if (!header.startsWith("Bearer "))
        throw new FleetError("unauthorized", "a callback token is required (Authorization: Bearer <token>)");
      const id = (req.params as { id?: unknown }).id;
      const { attempt } = await verifyCallbackToken(
        deps.tokens,
        header.slice(7).trim(),
        typeof id === "string" ? id : "",
      );
      attempts.set(req, attempt);
    };

    /** The running session the request's token was minted for, or the 4xx that says why not. */
    const authorise = async (req: object, sessionId: string): Promise<Session> => {
      const attempt = attempts.get(req);
      if (attempt === undefined)
        throw new FleetError("unauthorized", "a callback token is required (Authorization: Bearer <token>)");
      const session = await deps.store.get(sessionId);
      if (!session) throw new FleetError("not_found", `no session ${sessionId}`);
      if (session.attempt !== attempt)
        throw new FleetError(
          "conflict",
          `the token is for attempt ${attempt}; the session is on attempt ${session.attempt}`,
        );
      if (session.status !== "running") throw new FleetError("conflict", `session ${session.id} is ${session.status}`);
      return session;
    };

    app.post(
      "/v1/callbacks/sessions/:id/events",
      {
        preValidation: tokenFirst,
        config: { access: "callback" },
        schema: {
          summary:
            "Push progress lines of a running session from inside its sandbox (Authorization: Bearer <callback token>)",
          params: z.object({ id: SessionId }),
          headers: AUTH_HEADER,
          body: EventsBody,
          response: { 200: EventsStored, ...errors(400, 401, 404, 409, 413, 415, 503, ...FRAMEWORK_ERRORS) },
        },
      },
      async (req) => {
        const session = await authorise(req, req.params.id);
        const reply = await deps.bus.sendProgress(
          { v: SCHEMA_VERSION, sessionId: session.id, attempt: session.attempt, lines: req.body.lines },
          deps.progressTimeoutMs,
        );
        if (!reply.ok) {
          if (reply.code === "unavailable")
            throw new FleetError("bus_unavailable", `progress not stored: ${reply.message}`, { retryable: true });
          throw new FleetError(reply.code, reply.message);
        }
        return { sessionId: session.id, stored: reply.stored, seq: reply.seq };
      },
    );

    app.post(
      "/v1/callbacks/sessions/:id/complete",
      {
        preValidation: tokenFirst,
        config: { access: "callback" },
        schema: {
          summary: "Complete a running session from inside its sandbox (Authorization: Bearer <callback token>)",
          params: z.object({ id: SessionId }),
          headers: AUTH_HEADER,
          body: CompleteBody,
          response: { 200: Accepted, ...errors(400, 401, 404, 409, 413, 415, 503, ...FRAMEWORK_ERRORS) },
        },
      },
      async (req) => {
        const session = await authorise(req, req.params.id);
        const b = req.body;
        const ended = await endSession(
          deps,
          session.id,
          {
            status: "completed",
            output: {
              response: b.response,
              thinking: b.thinking ?? "",
              toolCalls: [],
              todos: b.todos ?? [],
              diffs: b.diffs ?? [],
              artifacts: [],
            },
          },
          { metrics: { ...session.metrics, executionMs: Date.now() - (session.startedAt ?? Date.now()) } },
        );
        if (!ended) throw new FleetError("conflict", `session ${session.id} ended meanwhile`);
        return { sessionId: session.id, status: ended.status };
      },
    );
  };
