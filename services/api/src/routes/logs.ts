import { FleetError, readLog, type Bus, type SessionStore } from "@fleet/shared";
import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { reaches } from "../auth.js";
import { streamLogs, type Followers } from "../follow/index.js";
import { API_KEY_SECURITY, IdParams, LogsQuery, LogsResponse, V1_ERRORS, errors } from "../schemas.js";

export interface LogRoutesDeps {
  store: SessionStore;
  bus: Bus;
  followers: Followers;
}

/** Whose cap a new stream counts against: its API key, or its address when keys are off. */
const ownerOf = (req: FastifyRequest): string => (req.apiKey ? `key:${req.apiKey.id}` : `ip:${req.ip}`);

export const logRoutes =
  (deps: LogRoutesDeps): FastifyPluginAsyncZod =>
  async (app) => {
    app.get(
      "/v1/sessions/:id/logs",
      {
        schema: {
          summary:
            "Log lines as JSON; with Accept: text/event-stream or ?follow=1, history then live lines as server-sent events until the session ends (Last-Event-ID resumes)",
          params: IdParams,
          querystring: LogsQuery,
          security: API_KEY_SECURITY,
          // 429: too many open streams for this key or this process.
          response: { 200: LogsResponse, ...errors(...V1_ERRORS, 404, 429) },
        },
        config: { access: "key" },
      },
      async (req, reply) => {
        const session = await deps.followers.history.session(req.params.id);
        if (!session || !reaches(req, session.projectId))
          throw new FleetError("not_found", `no session ${req.params.id}`);
        // HEAD gets the JSON answer's head: a stream it could never read would only hold a place.
        const follow =
          req.method !== "HEAD" &&
          (req.query.follow === "1" ||
            req.query.follow === "true" ||
            (req.headers.accept ?? "").includes("text/event-stream"));
        // Lines not archived yet are in the stream: both are read, so a client sees every line at once.
        if (!follow)
          return {
            sessionId: session.id,
            lines: await readLog(deps, session.id, { afterSeq: req.query.afterSeq, limit: req.query.limit }),
          };
        const release = deps.followers.limits.admit(ownerOf(req));
        const lastEventId = Number(req.headers["last-event-id"] ?? Number.NaN);
        const after = Number.isInteger(lastEventId) && lastEventId >= 0 ? lastEventId : req.query.afterSeq;
        reply.hijack();
        try {
          await streamLogs(deps.followers, session, after, reply.raw);
        } finally {
          release();
        }
        return reply;
      },
    );
  };
