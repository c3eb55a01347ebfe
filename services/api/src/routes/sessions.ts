import {
  FleetError,
  LIMITS,
  SCHEMA_VERSION,
  Session,
  isKnownProject,
  isTerminal,
  lastLogSeqOf,
  readLog,
  type Bus,
  type KnownProjects,
  type SessionStore,
} from "@fleet/shared";
import { SpanKind, activeTraceparent, validTraceparent, withSpan } from "@fleet/shared/telemetry";
import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { reaches } from "../auth.js";
import { configOf, mustBeSameRequest, sessionIdFor } from "../idempotency.js";
import {
  API_KEY_SECURITY,
  Accepted,
  ActiveSession,
  BODY_ERRORS,
  CancelBody,
  CardParams,
  CreateSessionBody,
  CreateSessionHeaders,
  Details,
  IdParams,
  ListQuery,
  Metrics,
  SessionPage,
  V1_ERRORS,
  errors,
} from "../schemas.js";

export interface SessionRoutesDeps {
  store: SessionStore;
  bus: Bus;
  submitsPerMinute: number;
  /** Projects this fleet serves (default: any). */
  projects?: KnownProjects;
}

/** Another project's session answers exactly like a missing one, so ids cannot be probed. */
async function mustGet(store: SessionStore, id: string, req: FastifyRequest): Promise<Session> {
  const s = await store.get(id);
  if (!s || !reaches(req, s.projectId)) throw new FleetError("not_found", `no session ${id}`);
  return s;
}

/** A request that carries no body at all (no length, or length 0, and not chunked). */
function hasNoBody(req: FastifyRequest): boolean {
  return (req.headers["content-length"] ?? "0") === "0" && req.headers["transfer-encoding"] === undefined;
}

function mustReach(req: FastifyRequest, projectId: string): void {
  if (!reaches(req, projectId)) throw new FleetError("forbidden", `this API key does not reach project ${projectId}`);
}

export const sessionRoutes =
  (deps: SessionRoutesDeps): FastifyPluginAsyncZod =>
  async (app) => {
    const { store, bus } = deps;

    app.post(
      "/v1/sessions",
      {
        schema: {
          summary: "Create a session (or return the one this Idempotency-Key or sessionId already made)",
          body: CreateSessionBody,
          headers: CreateSessionHeaders,
          security: API_KEY_SECURITY,
          // 404 and 409: the id is taken in another project (404 when this key cannot see that project).
          // 422: the Idempotency-Key was first used with a different request.
          response: { 202: Accepted, ...errors(...V1_ERRORS, ...BODY_ERRORS, 403, 404, 409, 422, 429) },
        },
        config: {
          access: "key",
          rateLimit: {
            max: deps.submitsPerMinute,
            timeWindow: 60_000,
            keyGenerator: (req: FastifyRequest) => req.apiKey?.id ?? req.ip,
          },
        },
      },
      async (req, reply) =>
        withSpan(
          "api.submit",
          { "session.project": req.body.projectId },
          async (span) => {
            const b = req.body;
            mustReach(req, b.projectId);
            if (!isKnownProject(deps.projects ?? "*", b.projectId))
              throw new FleetError("not_found", `no project ${b.projectId} in this fleet`);
            const id = sessionIdFor(b, req.headers["idempotency-key"]);
            const config = configOf(b);
            // Checked before anything is stored: the request must fit in one bus message.
            const size = Buffer.byteLength(JSON.stringify({ prompt: b.prompt, config, files: b.files ?? [] }));
            if (size > LIMITS.requestMessageBytes) {
              throw new FleetError(
                "bad_input",
                `prompt and files take ${size} bytes; one request may carry at most ${LIMITS.requestMessageBytes} (send fewer or smaller files)`,
              );
            }
            const now = Date.now();
            span.setAttribute("session.id", id);
            // The session's trace: this span's (a child of the caller's traceparent, if it sent one).
            const trace = activeTraceparent() ?? validTraceparent(req.headers.traceparent);
            const { session, created } = await store.create(
              {
                id,
                projectId: b.projectId,
                ...(b.cardId ? { cardId: b.cardId } : {}),
                prompt: b.prompt,
                config,
                ...(trace ? { trace } : {}),
              },
              now,
            );
            if (session.projectId !== b.projectId) {
              // Only a key that reaches the other project may learn the id is taken there.
              throw reaches(req, session.projectId)
                ? new FleetError("conflict", `session ${id} belongs to another project`)
                : new FleetError("not_found", `no session ${id}`);
            }
            if (!created && req.headers["idempotency-key"] !== undefined) mustBeSameRequest(session, b, config);
            // Published on every submit: a client retrying after a crash between create and publish
            // repairs it, and the Nats-Msg-Id keeps the request from being queued twice.
            if (session.status === "pending") {
              await bus.publish("requested", {
                v: SCHEMA_VERSION,
                sessionId: id,
                projectId: session.projectId,
                ...(session.cardId ? { cardId: session.cardId } : {}),
                prompt: session.prompt,
                config: session.config,
                files: b.files ?? [],
                requestedAt: session.createdAt,
              });
            }
            return reply.code(202).send({ sessionId: id, status: session.status });
          },
          { parent: validTraceparent(req.headers.traceparent), kind: SpanKind.SERVER },
        ),
    );

    app.post(
      "/v1/sessions/:id/cancel",
      {
        schema: {
          summary: "Cancel a session in whatever phase it is; the watchdog ends it and kills its sandbox",
          params: IdParams,
          body: CancelBody.optional(),
          security: API_KEY_SECURITY,
          response: { 202: Accepted, ...errors(...V1_ERRORS, ...BODY_ERRORS, 404, 409) },
        },
        config: { access: "key" },
        // The body is optional: `curl -X POST .../cancel` sends none, or an empty one under a JSON
        // content type, which fastify's JSON parser would refuse and its validator would see as null.
        // Only a body that is not there means `{}`: a JSON `null` is still a wrong body (400).
        preParsing: async (req) => {
          if (hasNoBody(req)) delete req.headers["content-type"];
        },
        preValidation: async (req) => {
          if (hasNoBody(req)) req.body ??= {};
        },
      },
      async (req, reply) => {
        const session = await mustGet(store, req.params.id, req);
        if (isTerminal(session.status))
          throw new FleetError("conflict", `session ${session.id} already ended (${session.status})`);
        // In the session's own trace: the watchdog's span for the cancel follows from this one.
        await withSpan(
          "api.cancel",
          { "session.id": session.id },
          () =>
            bus.publish("cancel", {
              v: SCHEMA_VERSION,
              sessionId: session.id,
              at: Date.now(),
              ...(req.body?.reason ? { reason: req.body.reason } : {}),
            }),
          { parent: session.trace, kind: SpanKind.SERVER },
        );
        return reply.code(202).send({ sessionId: session.id, status: session.status });
      },
    );

    app.get(
      "/v1/sessions/:id",
      {
        schema: {
          summary: "A session document",
          params: IdParams,
          security: API_KEY_SECURITY,
          response: { 200: Session, ...errors(...V1_ERRORS, 404) },
        },
        config: { access: "key" },
      },
      async (req) => {
        // The ledger's totals come with the document: what the gateway measured, not what the agent said.
        const [session, usage] = await Promise.all([
          mustGet(store, req.params.id, req),
          store.sessionUsage(req.params.id),
        ]);
        return usage ? { ...session, usage } : session;
      },
    );

    app.get(
      "/v1/sessions",
      {
        schema: {
          summary: "A project's sessions, newest first",
          querystring: ListQuery,
          security: API_KEY_SECURITY,
          response: { 200: SessionPage, ...errors(...V1_ERRORS, 403) },
        },
        config: { access: "key" },
      },
      async (req) => {
        mustReach(req, req.query.projectId);
        return store.listByProject(req.query.projectId, {
          limit: req.query.limit,
          ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
        });
      },
    );

    app.get(
      "/v1/sessions/:id/details",
      {
        schema: {
          summary: "Log lines and the session's results",
          params: IdParams,
          security: API_KEY_SECURITY,
          response: { 200: Details, ...errors(...V1_ERRORS, 404) },
        },
        config: { access: "key" },
      },
      async (req) => {
        const session = await mustGet(store, req.params.id, req);
        const logs = await readLog({ store, bus }, session.id, { limit: 10_000 });
        const o = session.output;
        return {
          session,
          logs,
          response: o?.response ?? "",
          thinking: o?.thinking ?? "",
          toolCalls: o?.toolCalls ?? [],
          todos: o?.todos ?? [],
          diffs: o?.diffs ?? [],
          artifacts: o?.artifacts ?? [],
        };
      },
    );

    app.get(
      "/v1/sessions/:id/metrics",
      {
        schema: {
          summary: "Setup breakdown and execution metrics",
          params: IdParams,
          security: API_KEY_SECURITY,
          response: { 200: Metrics, ...errors(...V1_ERRORS, 404) },
        },
        config: { access: "key" },
      },
      async (req) => {
        const s = await mustGet(store, req.params.id, req);
        const setup = Object.fromEntries(
          Object.entries(s.metrics.setup).filter((e): e is [string, number] => typeof e[1] === "number"),
        );
        const setupMs = setup.totalMs ?? 0;
        const executionMs = s.metrics.executionMs ?? 0;
        const totalMs = setupMs + executionMs;
        const pct = (v: number): number => (totalMs > 0 ? Math.round((v / totalMs) * 1_000) / 10 : 0);
        const order = [
          "queuedMs",
          "claimMs",
          "sandboxCreateMs",
          "restoreMs",
          "serverStartMs",
          "authMs",
          "sessionCreateMs",
          "promptSendMs",
        ];
        return {
          sessionId: s.id,
          status: s.status,
          setup,
          startedWarm: s.metrics.setup.warm === true,
          setupMs,
          executionMs,
          totalMs,
          setupPercent: pct(setupMs),
          executionPercent: pct(executionMs),
          counts: s.metrics.counts,
          usage: s.metrics.usage,
          steps: [
            ...order
              .filter((k) => setup[k] !== undefined)
              .map((k) => ({ step: k.replace(/Ms$/, ""), ms: setup[k] as number })),
            ...(s.metrics.executionMs !== undefined ? [{ step: "execution", ms: executionMs }] : []),
          ],
        };
      },
    );

    app.get(
      "/v1/cards/:cardId/active-session",
      {
        schema: {
          summary: "The card's active session with its latest log lines",
          params: CardParams,
          security: API_KEY_SECURITY,
          response: { 200: ActiveSession, ...errors(...V1_ERRORS, 404) },
        },
        config: { access: "key" },
      },
      async (req) => {
        const session = await store.activeForCard(req.params.cardId);
        if (!session || !reaches(req, session.projectId))
          throw new FleetError("not_found", `card ${req.params.cardId} has no active session`);
        const last = await lastLogSeqOf({ store, bus }, session.id);
        return { session, logs: await readLog({ store, bus }, session.id, { afterSeq: Math.max(0, last - 20) }) };
      },
    );
  };
