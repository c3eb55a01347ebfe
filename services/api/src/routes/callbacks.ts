import { FileDiff, FleetError, SessionId, Todo, endSession, verifyCallbackToken, type CallbackTokenConfig, type EndDeps } from "@fleet/shared";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { Accepted, ErrorBody } from "../schemas.js";

export interface CallbackRoutesDeps extends EndDeps {
  tokens: CallbackTokenConfig;
}

const CompleteBody = z
  .object({
    response: z.string().max(100_000),
    thinking: z.string().max(200_000).optional(),
    todos: z.array(Todo).max(500).optional(),
    diffs: z.array(FileDiff).max(200).optional(),
  })
  .strict();

/**
 * Calls from inside a sandbox, by session id (never by scanning): authorised only by the session's
 * short-lived callback token. A completion goes through the same compare-and-set as the poller's.
 */
export const callbackRoutes = (deps: CallbackRoutesDeps): FastifyPluginAsyncZod => async (app) => {
  app.post(
    "/v1/callbacks/sessions/:id/complete",
    {
      schema: {
        summary: "Complete a running session from inside its sandbox (Authorization: Bearer <callback token>)",
        params: z.object({ id: SessionId }),
        body: CompleteBody,
        response: { 200: Accepted, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async (req) => {
      const header = req.headers.authorization ?? "";
      if (!header.startsWith("Bearer ")) throw new FleetError("unauthorized", "a callback token is required (Authorization: Bearer <token>)");
      const { attempt } = await verifyCallbackToken(deps.tokens, header.slice(7).trim(), req.params.id);
      const session = await deps.store.get(req.params.id);
      if (!session) throw new FleetError("not_found", `no session ${req.params.id}`);
      if (session.attempt !== attempt) throw new FleetError("conflict", `the token is for attempt ${attempt}; the session is on attempt ${session.attempt}`);
      if (session.status !== "running") throw new FleetError("conflict", `session ${session.id} is ${session.status}`);
      const b = req.body;
      const ended = await endSession(
        deps,
        session.id,
        { status: "completed", output: { response: b.response, thinking: b.thinking ?? "", toolCalls: [], todos: b.todos ?? [], diffs: b.diffs ?? [], artifacts: [] } },
        { metrics: { ...session.metrics, executionMs: Date.now() - (session.startedAt ?? Date.now()) } },
      );
      if (!ended) throw new FleetError("conflict", `session ${session.id} ended meanwhile`);
      return { sessionId: session.id, status: ended.status };
    },
  );
};
