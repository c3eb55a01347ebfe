import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { z } from "zod";
import {
  Accepted,
  CreateSessionBody,
  Details,
  EndEventData,
  ErrorBody,
  LogEventData,
  LogsBody,
  Metrics,
  ProjectUsage,
  SessionPage,
} from "./contracts/http.js";
import { isTerminal, type LogLine, Session } from "./contracts/session.js";
import { FleetApiError, FleetUnreachable } from "./errors.js";

export interface FleetHttpClientOptions {
  /** The api's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string | URL;
  /** An API key (`fk_<id>_<secret>`), sent as `Authorization: Bearer`. */
  apiKey?: string;
  /** A fetch of your own (proxies, tests); default: the global fetch. */
  fetch?: typeof globalThis.fetch;
  /** How long to wait before following a log again after its stream broke off (default 1 s). */
  reconnectMs?: number;
  /** How many reconnects in a row without a new line before `follow` gives up (default 10). */
  maxReconnects?: number;
}

/** What `submit` sends: the body of `POST /v1/sessions` (docs/api.md). */
export type SubmitInput = z.input<typeof CreateSessionBody>;

/** One event of a followed log: each line once, in `seq` order, then the end. */
export type FollowEvent = { type: "log"; line: LogEventData } | { type: "end"; end: EndEventData };

export interface FollowOptions {
  /** Only lines after this seq (to resume where a reader stopped). */
  afterSeq?: number;
  signal?: AbortSignal;
}

const id = (sessionId: string) => encodeURIComponent(sessionId);

/**
 * The fleet's HTTP api, typed: every answer is checked against the public contract before it is
 * returned, and errors carry the api's status and code.
 */
export class FleetHttpClient {
  private readonly baseUrl: URL;
  private readonly fetchFn: typeof globalThis.fetch;

  constructor(private readonly options: FleetHttpClientOptions) {
    this.baseUrl = new URL(options.baseUrl);
    this.fetchFn = options.fetch ?? globalThis.fetch;
  }

  /**
   * Submits a session. With an `idempotencyKey` (or a `sessionId` in the input), a retry of the same
   * request answers the same session instead of starting another.
   */
  async submit(input: SubmitInput, options: { idempotencyKey?: string } = {}): Promise<Accepted> {
    const body = CreateSessionBody.parse(input);
    const headers = options.idempotencyKey ? { "idempotency-key": options.idempotencyKey } : undefined;
    return this.call(Accepted, "POST", "/v1/sessions", { body, headers });
  }

  /** The session document (with its model usage once it has any). */
  get(sessionId: string): Promise<Session> {
    return this.call(Session, "GET", `/v1/sessions/${id(sessionId)}`);
  }

  /** One page of a project's sessions, newest first; pass `nextCursor` back for the next page. */
  list(query: { projectId: string; limit?: number; cursor?: string }): Promise<SessionPage> {
    const params = new URLSearchParams({ projectId: query.projectId });
    if (query.limit !== undefined) params.set("limit", String(query.limit));
    if (query.cursor !== undefined) params.set("cursor", query.cursor);
    return this.call(SessionPage, "GET", `/v1/sessions?${params}`);
  }

  /** Every session of a project, page by page. */
  async *listAll(query: { projectId: string; pageSize?: number }): AsyncGenerator<Session> {
    let cursor: string | undefined;
    do {
      const page = await this.list({
        projectId: query.projectId,
        ...(query.pageSize !== undefined ? { limit: query.pageSize } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      });
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  }

  /** Asks the fleet to end the session; `get` or `waitForEnd` tells when it has. */
  cancel(sessionId: string, reason?: string): Promise<Accepted> {
    const body = reason !== undefined ? { reason } : undefined;
    return this.call(Accepted, "POST", `/v1/sessions/${id(sessionId)}/cancel`, { body });
  }

  /** Log lines after `afterSeq` (default 0), up to `limit` (default 1000). */
  async logs(sessionId: string, query: { afterSeq?: number; limit?: number } = {}): Promise<LogLine[]> {
    const params = new URLSearchParams();
    if (query.afterSeq !== undefined) params.set("afterSeq", String(query.afterSeq));
    if (query.limit !== undefined) params.set("limit", String(query.limit));
    const res = await this.call(LogsBody, "GET", `/v1/sessions/${id(sessionId)}/logs?${params}`);
    return res.lines;
  }

  /** The session with its whole log and result (response, thinking, tool calls, todos, diffs). */
  details(sessionId: string): Promise<Details> {
    return this.call(Details, "GET", `/v1/sessions/${id(sessionId)}/details`);
  }

  /** The setup breakdown, counts and usage of a session. */
  metrics(sessionId: string): Promise<Metrics> {
    return this.call(Metrics, "GET", `/v1/sessions/${id(sessionId)}/metrics`);
  }

  /** A project's model usage per UTC day (`YYYY-MM-DD`, both days included). */
  usage(projectId: string, range: { from?: string; to?: string } = {}): Promise<ProjectUsage> {
    const params = new URLSearchParams(range as Record<string, string>);
    return this.call(ProjectUsage, "GET", `/v1/projects/${id(projectId)}/usage?${params}`);
  }

  /**
   * Follows a session's log live (server-sent events): each line once, in order, then one `end`
   * event, after which the iteration finishes. A stream that breaks off (network, an api restarting)
   * is opened again from the last line seen (`Last-Event-ID`), so nothing is skipped or repeated.
   */
  async *follow(sessionId: string, options: FollowOptions = {}): AsyncGenerator<FollowEvent> {
    let lastSeq = options.afterSeq ?? 0;
    let failures = 0;
    const maxReconnects = this.options.maxReconnects ?? 10;
    for (;;) {
      let progressed = false;
      try {
        for await (const event of this.openFollow(sessionId, lastSeq, options.signal)) {
          if (event.type === "end") {
            yield event;
            return;
          }
          if (event.line.seq <= lastSeq) continue;
          lastSeq = event.line.seq;
          progressed = true;
          yield event;
        }
      } catch (err) {
        // The api's own refusals (no such session, no key) are final; a broken connection is not.
        if (err instanceof FleetApiError || options.signal?.aborted) throw err;
      }
      failures = progressed ? 0 : failures + 1;
      if (failures > maxReconnects)
        throw new FleetUnreachable(`following ${sessionId} broke off ${failures} times without a new line`);
      await sleep(this.options.reconnectMs ?? 1_000, options.signal);
    }
  }

  /** Resolves with the session once it has ended (completed, failed or cancelled). */
  async waitForEnd(sessionId: string, options: { signal?: AbortSignal; pollMs?: number } = {}): Promise<Session> {
    for (;;) {
      const session = await this.get(sessionId);
      if (isTerminal(session.status)) return session;
      await sleep(options.pollMs ?? 500, options.signal);
    }
  }

  private async *openFollow(sessionId: string, afterSeq: number, signal?: AbortSignal): AsyncGenerator<FollowEvent> {
    const res = await this.send("GET", `/v1/sessions/${id(sessionId)}/logs?follow=1`, {
      headers: { accept: "text/event-stream", ...(afterSeq > 0 ? { "last-event-id": String(afterSeq) } : {}) },
      signal,
    });
    if (!res.ok) throw await apiError(res);
    if (!res.body) throw new FleetUnreachable("the api answered a log stream without a body");
    const events: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (e) => events.push(e) });
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      parser.feed(decoder.decode(chunk, { stream: true }));
      while (events.length > 0) {
        const e = events.shift() as EventSourceMessage;
        if (e.event === "log") yield { type: "log", line: LogEventData.parse(JSON.parse(e.data)) };
        else if (e.event === "end") {
          yield { type: "end", end: EndEventData.parse(JSON.parse(e.data)) };
          return;
        }
      }
    }
  }

  private async call<S extends z.ZodType>(
    schema: S,
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string> | undefined } = {},
  ): Promise<z.infer<S>> {
    const res = await this.send(method, path, init);
    if (!res.ok) throw await apiError(res);
    const parsed = schema.safeParse(await res.json());
    if (!parsed.success)
      throw new FleetApiError(res.status, "bad_answer", `${method} ${path}: the answer is not what the contract says`);
    return parsed.data;
  }

  private async send(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string> | undefined; signal?: AbortSignal | undefined },
  ): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    try {
      return await this.fetchFn(new URL(path, this.baseUrl), {
        method,
        headers,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        ...(init.signal ? { signal: init.signal } : {}),
      });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      throw new FleetUnreachable(`cannot reach the api at ${this.baseUrl.origin}: ${(err as Error).message}`);
    }
  }
}

async function apiError(res: Response): Promise<FleetApiError> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const parsed = ErrorBody.safeParse(body);
  return parsed.success
    ? new FleetApiError(res.status, parsed.data.error.code, parsed.data.error.message, parsed.data.error.issues)
    : new FleetApiError(res.status, `http_${res.status}`, text.slice(0, 500) || res.statusText);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
