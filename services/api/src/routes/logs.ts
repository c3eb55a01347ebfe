import { FleetError, isTerminal, type Bus, type LogLine, type SessionStore } from "@fleet/shared";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { reaches } from "../auth.js";
import { API_KEY_SECURITY, IdParams, LogsQuery, LogsResponse, V1_ERRORS, errors } from "../schemas.js";

export interface LogRoutesDeps {
  store: SessionStore;
  bus: Bus;
  /** How often a follower checks whether the session has ended. */
  endCheckMs?: number;
}

export const logRoutes = (deps: LogRoutesDeps): FastifyPluginAsyncZod => async (app) => {
  app.get(
    "/v1/sessions/:id/logs",
    {
      schema: {
        summary: "Log lines as JSON; with Accept: text/event-stream or ?follow=1, history then live lines as server-sent events until the session ends (Last-Event-ID resumes)",
        params: IdParams,
        querystring: LogsQuery,
        security: API_KEY_SECURITY,
        response: { 200: LogsResponse, ...errors(...V1_ERRORS, 404) },
      },
      config: { access: "key" },
    },
    async (req, reply) => {
      const session = await deps.store.get(req.params.id);
      if (!session || !reaches(req, session.projectId)) throw new FleetError("not_found", `no session ${req.params.id}`);
      const follow = req.query.follow === "1" || req.query.follow === "true" || (req.headers.accept ?? "").includes("text/event-stream");
      if (!follow) return { sessionId: session.id, lines: await deps.store.logs(session.id, { afterSeq: req.query.afterSeq, limit: req.query.limit }) };
      const lastEventId = Number(req.headers["last-event-id"] ?? Number.NaN);
      const after = Number.isInteger(lastEventId) && lastEventId >= 0 ? lastEventId : req.query.afterSeq;
      reply.hijack();
      await streamLogs(deps, session.id, after, reply.raw, req.raw);
      return reply;
    },
  );
};

interface Sink {
  writeHead(status: number, headers: Record<string, string>): unknown;
  flushHeaders(): void;
  write(chunk: string): boolean;
  end(): void;
  readonly writableEnded: boolean;
}

/**
 * History from the store, then live lines from the bus (an ordered consumer that replays the
 * session's subject; lines already sent are skipped by seq), then an `end` event once the session
 * has ended and every stored line is out.
 */
async function streamLogs(deps: LogRoutesDeps, sessionId: string, after: number, res: Sink, req: NodeJS.EventEmitter): Promise<void> {
  const closed = new AbortController();
  req.once("close", () => closed.abort());
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
  // Sent at once: a session with no lines yet would otherwise leave the client without even the
  // status line until the first keep-alive, and clients time out waiting for it.
  res.flushHeaders();
  let last = after;
  const send = (l: Pick<LogLine, "seq" | "at" | "kind" | "line">): void => {
    if (l.seq <= last || res.writableEnded) return;
    // Lines arrive from two sources; anything out of order is taken from the store at the end.
    if (l.seq !== last + 1) return;
    last = l.seq;
    res.write(`id: ${l.seq}\nevent: log\ndata: ${JSON.stringify({ seq: l.seq, at: l.at, kind: l.kind, line: l.line })}\n\n`);
  };
  const catchUp = async (): Promise<void> => {
    for (const l of await deps.store.logs(sessionId, { afterSeq: last, limit: 10_000 })) send(l);
  };
  await catchUp();
  const live = (async () => {
    try {
      for await (const l of deps.bus.followLogs(sessionId, closed.signal)) {
        if (l.seq > last + 1) await catchUp();
        send(l);
      }
    } catch {
      // The store check below still ends the stream.
    }
  })();
  const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
  try {
    while (!closed.signal.aborted) {
      const s = await deps.store.get(sessionId);
      if (!s || isTerminal(s.status)) {
        await catchUp();
        res.write(`event: end\ndata: ${JSON.stringify({ status: s?.status ?? "unknown", lastSeq: last })}\n\n`);
        break;
      }
      await new Promise((r) => setTimeout(r, deps.endCheckMs ?? 500));
    }
  } finally {
    clearInterval(heartbeat);
    closed.abort();
    await live;
    if (!res.writableEnded) res.end();
  }
}
