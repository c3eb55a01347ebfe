import type { IncomingMessage, ServerResponse } from "node:http";
import { errorMessage } from "@fleet/shared/errors";
import type { Logger } from "@fleet/shared/log";
import { z } from "zod";
import { readBody } from "./connect.js";
import type { LocalE2BFaults, LocalE2BStats } from "./faults.js";
import type { LocalE2BSandbox, SandboxPool } from "./sandboxes.js";

/**
 * The control plane's REST routes the E2B SDK calls (shapes from its OpenAPI types): create
 * (POST /v2/sandboxes), list (GET /v2/sandboxes, metadata filter, pagination by x-next-token),
 * get (GET /sandboxes/{id}), connect (POST /v2/sandboxes/{id}/connect), set timeout
 * (POST /sandboxes/{id}/timeout) and kill (DELETE /sandboxes/{id}). Errors are `{code, message}`.
 */

export const ENVD_VERSION = "0.5.7";
const SANDBOX_ID = /^[A-Za-z0-9_-]{1,128}$/;
const Metadata = z.record(z.string().max(256), z.string().max(1024));

const CreateBody = z.looseObject({
  templateID: z.string().min(1).max(256),
  metadata: Metadata.optional(),
  envVars: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
  timeout: z.number().int().min(0).optional(),
  autoPause: z.boolean().optional(),
  allow_internet_access: z.boolean().optional(),
  secure: z.boolean().optional(),
});
const TimeoutBody = z.object({ timeout: z.number().int().min(0) });
const ConnectBody = z.looseObject({ timeout: z.number().int().min(0).optional() });
const ListQuery = z.object({
  metadata: z.string().optional(),
  state: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(100).default(100),
  nextToken: z.string().regex(/^\d+$/).optional(),
});

export interface ApiDeps {
  apiKey: string;
  pool: SandboxPool;
  faults: () => LocalE2BFaults;
  stats: LocalE2BStats;
  /** In-flight creates, counted against the concurrency quota. */
  creating: { count: number };
  defaultTimeoutMs: number;
  maxLifetimeMs: number;
  logger: Logger;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

async function json<T extends z.ZodType>(req: IncomingMessage, schema: T): Promise<z.output<T>> {
  const body = await readBody(req, 1024 * 1024).catch(() => {
    throw new HttpError(400, "request body too large");
  });
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString("utf8") || "{}");
  } catch {
    throw new HttpError(400, "body is not JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new HttpError(400, z.prettifyError(parsed.error));
  return parsed.data;
}

const iso = (ms: number) => new Date(ms).toISOString();

function summary(s: LocalE2BSandbox) {
  return {
    sandboxID: s.id,
    templateID: s.templateId,
    clientID: "local",
    startedAt: iso(s.startedAt),
    endAt: iso(s.endAt),
    cpuCount: 2,
    memoryMB: 512,
    diskSizeMB: 1024,
    metadata: s.metadata,
    state: "running",
    envdVersion: ENVD_VERSION,
  };
}

function connection(s: LocalE2BSandbox) {
  return {
    sandboxID: s.id,
    templateID: s.templateId,
    clientID: "local",
    envdVersion: ENVD_VERSION,
    envdAccessToken: s.accessToken,
    domain: null,
  };
}

/** The SDK sends the metadata filter as one url-encoded query string of url-encoded pairs. */
function metadataFilter(raw: string | undefined): Array<[string, string]> {
  if (!raw) return [];
  return [...new URLSearchParams(raw)].map(([k, v]) => [decodeURIComponent(k), decodeURIComponent(v)]);
}

export function createApiHandler(deps: ApiDeps) {
  const { pool, stats } = deps;

  async function create(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await json(req, CreateBody);
    if (body.autoPause) throw new HttpError(400, "the local E2B does not model paused sandboxes");
    const faults = deps.faults();
    if (faults.createDelayMs > 0) await new Promise((r) => setTimeout(r, faults.createDelayMs));
    if (faults.rateLimitCreates > 0) {
      faults.rateLimitCreates -= 1;
      stats.rateLimited += 1;
      throw new HttpError(429, "Rate limit exceeded, please try again later.", {
        "retry-after": String(faults.retryAfterSeconds),
      });
    }
    if (faults.failCreates > 0) {
      faults.failCreates -= 1;
      stats.failed += 1;
      throw new HttpError(faults.failStatus, "Internal server error (injected)");
    }
    if (faults.maxConcurrent !== undefined && pool.all().length + deps.creating.count >= faults.maxConcurrent) {
      stats.quotaRejected += 1;
      throw new HttpError(
        429,
        `You have reached the maximum number of concurrent E2B sandboxes (${faults.maxConcurrent}). Please kill some sandboxes first.`,
      );
    }
    const timeoutMs = body.timeout === undefined ? deps.defaultTimeoutMs : body.timeout * 1000;
    if (timeoutMs > deps.maxLifetimeMs)
      throw new HttpError(400, `timeout exceeds the maximum sandbox lifetime of ${deps.maxLifetimeMs / 1000} s`);
    deps.creating.count += 1;
    let sandbox: LocalE2BSandbox;
    try {
      sandbox = await pool.create({
        templateId: body.templateID,
        metadata: body.metadata ?? {},
        envs: body.envVars ?? {},
        timeoutMs,
      });
    } catch (err) {
      deps.logger.warn({ err: errorMessage(err) }, "local E2B: create failed");
      throw new HttpError(500, `cannot start sandbox: ${errorMessage(err)}`);
    } finally {
      deps.creating.count -= 1;
    }
    stats.created += 1;
    stats.running = pool.size;
    stats.peakRunning = Math.max(stats.peakRunning, stats.running);
    send(res, 201, connection(sandbox));
  }

  function list(url: URL, res: ServerResponse): void {
    const parsed = ListQuery.safeParse(Object.fromEntries(url.searchParams));
    if (!parsed.success) throw new HttpError(400, z.prettifyError(parsed.error));
    const q = parsed.data;
    const states = q.state ? q.state.split(",") : ["running", "paused"];
    const wanted = metadataFilter(q.metadata);
    const all = states.includes("running")
      ? pool
          .all()
          .filter((s) => wanted.every(([k, v]) => s.metadata[k] === v))
          .sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1))
      : [];
    const from = Number(q.nextToken ?? 0);
    const page = all.slice(from, from + q.limit);
    const next: Record<string, string> = from + q.limit < all.length ? { "x-next-token": String(from + q.limit) } : {};
    send(res, 200, page.map(summary), next);
  }

  function found(id: string): LocalE2BSandbox {
    const s = SANDBOX_ID.test(id) ? pool.get(id) : undefined;
    if (!s) throw new HttpError(404, `sandbox "${id}" doesn't exist or you don't have access to it`);
    return s;
  }

  return async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.headers["x-api-key"] !== deps.apiKey) throw new HttpError(401, "Invalid API key");
      const url = new URL(req.url ?? "/", "http://api");
      const path = url.pathname;
      if (path === "/v2/sandboxes" && req.method === "POST") return await create(req, res);
      if ((path === "/v2/sandboxes" || path === "/sandboxes") && req.method === "GET") return list(url, res);
      const connectPath = /^\/v2\/sandboxes\/([^/]+)\/connect$/.exec(path);
      const timeoutPath = /^\/sandboxes\/([^/]+)\/timeout$/.exec(path);
      const sandboxPath = /^\/sandboxes\/([^/]+)$/.exec(path);
      if (connectPath && req.method === "POST") {
        const m = connectPath;
        const body = await json(req, ConnectBody);
        const s = found(decodeURIComponent(m[1] as string));
        // Connecting extends a running sandbox's timeout, never shortens it.
        if (body.timeout !== undefined && Date.now() + body.timeout * 1000 > s.endAt)
          pool.setTimeout(s.id, body.timeout * 1000);
        return send(res, 200, connection(s));
      }
      if (timeoutPath && req.method === "POST") {
        const m = timeoutPath;
        const body = await json(req, TimeoutBody);
        const s = found(decodeURIComponent(m[1] as string));
        const faults = deps.faults();
        if (faults.failSetTimeouts > 0) {
          faults.failSetTimeouts -= 1;
          stats.timeoutsFailed += 1;
          throw new HttpError(faults.failStatus, "Internal server error (injected)");
        }
        pool.setTimeout(s.id, body.timeout * 1000);
        stats.timeoutsSet += 1;
        return send(res, 204);
      }
      if (sandboxPath) {
        const m = sandboxPath;
        const s = found(decodeURIComponent(m[1] as string));
        if (req.method === "GET") return send(res, 200, { ...summary(s), domain: null });
        if (req.method === "DELETE") {
          await pool.kill(s.id);
          stats.running = pool.size;
          return send(res, 204);
        }
      }
      throw new HttpError(404, `${req.method} ${path} not found`);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, errorMessage(err));
      if (!res.headersSent) send(res, e.status, { code: e.status, message: e.message }, e.headers);
      else res.destroy();
    }
  };
}
