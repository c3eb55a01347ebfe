import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  FleetError,
  errorMessage,
  pooledSandboxOf,
  verifyGatewayToken,
  type Bus,
  type GatewayGrant,
  type GatewayTokenConfig,
  type Logger,
  type SessionStore,
} from "@fleet/shared";
import type { Registry } from "prom-client";
import { z } from "zod";
import { budgetRefusal, type Budgets } from "./budgets.js";
import { type GatewayMetrics, gatewayMetrics } from "./metrics.js";
import type { PriceTable } from "./prices.js";
import { UpstreamUnavailable, relay } from "./relay.js";
import { Upstream } from "./upstream.js";
import { Views } from "./views.js";

export interface GatewaySettings {
  tokens: GatewayTokenConfig;
  upstream: { baseUrl: string; apiKey: string; firstByteTimeoutMs: number };
  prices: PriceTable;
  budgets: Budgets;
  /** How long a session's status and totals are trusted before the store is read again. */
  sessionCacheMs: number;
  maxBodyBytes: number;
}

export type GatewayStore = Pick<
  SessionStore,
  "get" | "patch" | "recordUsage" | "sessionUsage" | "projectDayUsage" | "ping" | "poolEntry"
>;

export interface GatewayDeps {
  store: GatewayStore;
  /** Only to ask the poller watching a session to log a model switch. */
  bus: Pick<Bus, "sendProgress">;
  logger: Logger;
  registry: Registry;
  settings: GatewaySettings;
}

export interface Gateway {
  readonly server: Server;
  /** Resolves with the base URL agents use (ending in /v1). */
  listen(host: string, port: number): Promise<string>;
  close(): Promise<void>;
}

/** An answer in OpenAI's error shape, which OpenAI-compatible clients (and so the agent) show as they are. */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    /** The label of fleet_gateway_refusals_total, when this is a refusal. */
    readonly refusal?: string,
  ) {
    super(message);
  }
}

export function sendError(res: ServerResponse, err: GatewayError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { message: err.message, type: err.type, param: null, code: err.code } });
  res.writeHead(err.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * What the gateway reads of a chat request. Loose: providers take many fields the gateway has no
 * business with, and they go upstream unchanged (but for the model and stream_options).
 */
const ChatBody = z.looseObject({
  model: z.string().min(1).max(200),
  messages: z.array(z.unknown()).min(1).max(100_000),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({}).optional(),
});
export type ChatBody = z.infer<typeof ChatBody>;

const unauthorized = (message: string) =>
  new GatewayError(401, "invalid_request_error", "invalid_api_key", message, "token");

/**
 * The model gateway: OpenAI-compatible routes for agents (`POST /v1/chat/completions`, `GET
 * /v1/models`), authorised by a session's token, plus `/healthz` and `/readyz`. Metrics go on a port
 * of their own (GATEWAY_METRICS_PORT): agents reach this one, and must not read other projects' figures.
 * Plain node:http, so a streamed answer goes from the provider to the agent chunk by chunk.
 */
export function createGateway(deps: GatewayDeps): Gateway {
  const { settings, logger } = deps;
  const metrics: GatewayMetrics = gatewayMetrics(deps.registry);
  const views = new Views(deps.store, settings.sessionCacheMs);
  const upstream = new Upstream(settings.upstream);
  /** Sessions this instance already asked to end, so a refused agent retrying does not write again. */
  const endAsked = new Set<string>();
  const ctx = { deps, metrics, views, upstream, endAsked };

  /**
   * Tokens whose signature, claims and expiry held, until they expire: an agent sends the same token
   * on every call, and WebCrypto's HMAC check would cost each call a trip through the thread pool.
   */
  const tokens = new Map<string, { grant: GatewayGrant; expiresAt: number }>();
  async function verified(token: string): Promise<GatewayGrant> {
    const known = tokens.get(token);
    if (known && known.expiresAt > Date.now()) return known.grant;
    try {
      const grant = await verifyGatewayToken(settings.tokens, token);
      if (tokens.size >= 10_000) tokens.clear();
      tokens.set(token, { grant, expiresAt: grant.expiresAt ?? 0 });
      return grant;
    } catch (err) {
      tokens.delete(token);
      throw unauthorized(errorMessage(err));
    }
  }

  /**
   * A warm-pool agent's token names its sandbox, not a session: inert until a session claimed that
   * sandbox, then that session's (checked live like any session token). A claim never changes, so a
   * resolved one is kept; an unclaimed one is asked again on every call.
   */
  const claims = new Map<string, GatewayGrant>();
  async function bound(grant: GatewayGrant): Promise<GatewayGrant> {
    const sandboxId = pooledSandboxOf(grant);
    if (sandboxId === undefined) return grant;
    const known = claims.get(sandboxId);
    if (known) return known;
    const entry = await deps.store.poolEntry(sandboxId);
    if (entry?.state !== "claimed" || !entry.sessionId || entry.attempt === undefined || !entry.projectId)
      throw unauthorized("this warm-pool agent has not been claimed by a session");
    const resolved = { ...grant, sessionId: entry.sessionId, attempt: entry.attempt, projectId: entry.projectId };
    if (claims.size >= 10_000) claims.clear();
    claims.set(sandboxId, resolved);
    return resolved;
  }

  /** The token's session, checked live (within the cache's age): active, on this attempt, this project. */
  async function authorise(req: IncomingMessage): Promise<GatewayGrant> {
    const header = req.headers.authorization ?? "";
    if (!header.startsWith("Bearer "))
      throw unauthorized("a session token is required (Authorization: Bearer <token>)");
    const grant = await bound(await verified(header.slice(7).trim()));
    const view = await views.session(grant.sessionId);
    const why = Views.refusal(view, grant);
    if (why) throw new GatewayError(401, "invalid_request_error", "invalid_api_key", why, "session_ended");
    return grant;
  }

  async function chat(req: IncomingMessage, res: ServerResponse, receivedAt: number): Promise<void> {
    const grant = await authorise(req);
    const raw = await readBody(req, settings.maxBodyBytes);
    let json: unknown;
    try {
      json = JSON.parse(raw.toString("utf8"));
    } catch {
      throw new GatewayError(400, "invalid_request_error", "invalid_json", "the body is not JSON", "bad_request");
    }
    const parsed = ChatBody.safeParse(json);
    if (!parsed.success)
      throw new GatewayError(
        400,
        "invalid_request_error",
        "invalid_body",
        `not a chat completion request: ${z.prettifyError(parsed.error)}`,
        "bad_request",
      );
    const body = parsed.data;
    const at = grant.models.indexOf(body.model);
    if (at === -1)
      throw new GatewayError(
        403,
        "invalid_request_error",
        "model_not_allowed",
        `model ${body.model} is not allowed for this session (allowed: ${grant.models.join(", ")})`,
        "model",
      );
    const view = await views.session(grant.sessionId);
    const over = await budgetRefusal(settings.budgets, view, grant, () => views.projectDay(grant.projectId));
    if (over) {
      await askEnd(grant, over.message);
      throw new GatewayError(402, "insufficient_quota", "budget_exceeded", over.message, over.kind);
    }
    await relay(ctx, {
      req,
      res,
      grant,
      body,
      requestBytes: raw.length,
      candidates: grant.models.slice(at),
      callId: `${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`,
      receivedAt,
    });
  }

  /**
   * The gateway may not end a session itself (the poller owns a running session's log and end): it
   * records why on the session's document, and the poller watching it ends it `budget_exceeded`.
   */
  async function askEnd(grant: GatewayGrant, message: string): Promise<void> {
    const key = `${grant.sessionId}:${grant.attempt}`;
    if (endAsked.has(key)) return;
    const asked = await deps.store
      .patch(grant.sessionId, {
        endRequested: { code: "budget_exceeded", message, attempt: grant.attempt, at: Date.now() },
      })
      .catch((err: unknown) => {
        logger.warn({ sessionId: grant.sessionId, err: errorMessage(err) }, "could not record the end request");
        return false;
      });
    if (asked) {
      endAsked.add(key);
      if (endAsked.size > 100_000) endAsked.clear();
      logger.info({ sessionId: grant.sessionId, attempt: grant.attempt, reason: message }, "session over budget");
    }
  }

  async function models(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const grant = await authorise(req);
    sendJson(res, 200, {
      object: "list",
      data: grant.models.map((id) => ({ id, object: "model", created: 0, owned_by: "fleet" })),
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAt = performance.now();
    const path = (req.url ?? "/").split("?")[0]?.replace(/\/+$/, "") ?? "";
    if (path === "/v1/chat/completions") {
      if (req.method !== "POST") throw notAllowed("POST");
      return chat(req, res, receivedAt);
    }
    if (path === "/v1/models") {
      if (req.method !== "GET") throw notAllowed("GET");
      return models(req, res);
    }
    if (req.method === "GET" && path === "/healthz") return sendJson(res, 200, { ok: true });
    if (req.method === "GET" && path === "/readyz") {
      await deps.store.ping().catch((err: unknown) => {
        throw new GatewayError(503, "api_error", "store_unavailable", `store: ${errorMessage(err)}`);
      });
      return sendJson(res, 200, { ok: true });
    }
    throw new GatewayError(404, "invalid_request_error", "not_found", `no route ${req.method} ${path}`);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e =
        err instanceof GatewayError
          ? err
          : err instanceof UpstreamUnavailable
            ? new GatewayError(502, "api_error", "upstream_unavailable", err.message)
            : err instanceof FleetError && err.code === "store_unavailable"
              ? new GatewayError(503, "api_error", "store_unavailable", "the fleet's store is unavailable; retry")
              : new GatewayError(500, "api_error", "internal", "internal error");
      if (e.refusal) metrics.refusals.inc({ reason: e.refusal });
      if (e.status >= 500) logger.error({ err: errorMessage(err), url: req.url }, "gateway call failed");
      else logger.debug({ status: e.status, code: e.code, reason: e.message }, "call refused");
      sendError(res, e);
    });
  });
  server.keepAliveTimeout = 65_000;

  let closing: Promise<void> | undefined;
  return {
    server,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          const a = server.address() as AddressInfo;
          const h = a.family === "IPv6" ? `[${a.address}]` : a.address;
          resolve(`http://${h}:${a.port}/v1`);
        });
      }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Streams still open after the shutdown deadline are cut by the process's exit.
      }).finally(() => upstream.close());
      return closing;
    },
  };
}

function notAllowed(allow: string): GatewayError {
  return new GatewayError(405, "invalid_request_error", "method_not_allowed", `use ${allow}`);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        reject(
          new GatewayError(413, "invalid_request_error", "request_too_large", `body over ${max} bytes`, "bad_request"),
        );
        req.resume();
        return;
      }
      parts.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}
