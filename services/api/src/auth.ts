import { FleetError, apiKeyId, keyReaches, verifyApiKey, type ApiKeyRecord, type SessionStore } from "@fleet/shared";
import type { FastifyInstance, FastifyRequest } from "fastify";

/**
 * Who may call a route, declared by the route itself (`config: { access }`):
 * - `key`: an API key (Authorization: Bearer <key> or X-Api-Key);
 * - `callback`: a session's callback token, which the route checks itself (routes/callbacks.ts);
 * - `public`: anyone (health, metrics, the OpenAPI document).
 */
export type Access = "key" | "callback" | "public";
const ACCESS: ReadonlySet<unknown> = new Set<Access>(["key", "callback", "public"]);

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    apiKey?: ApiKeyRecord;
  }
}

export interface AuthOptions {
  mode: "keys" | "off";
  /** How long a verified key is trusted before the store is asked again (and so how fast a revoke bites). */
  cacheMs?: number;
}

/**
 * Access is decided on the route the router matched, never on the URL as sent: the router decodes
 * and matches `/%761/sessions` as `/v1/sessions`, so any check on the raw URL can be walked around.
 * A route that declares no access cannot be registered, and one that somehow has none is refused.
 * Call before any route is registered, so that every route passes the check.
 */
export function installAuth(app: FastifyInstance, store: SessionStore, options: AuthOptions): void {
  app.addHook("onRoute", (route) => {
    if (!ACCESS.has(route.config?.access)) {
      throw new Error(
        `route ${String(route.method)} ${route.url} declares no access: give it config.access ("key", "callback" or "public")`,
      );
    }
  });
  const verify = keyVerifier(store, options.cacheMs ?? 5_000);
  app.addHook("onRequest", async (req) => {
    // No route matched: the not-found handler answers 404 (or 405) and says nothing else.
    if (req.is404) return;
    const access = req.routeOptions.config.access;
    switch (access) {
      case "public":
      case "callback":
        return;
      case "key":
        if (options.mode === "keys") req.apiKey = await verify(req);
        return;
      default:
        throw new FleetError("unauthorized", "this route declares no access");
    }
  });
}

function keyVerifier(store: SessionStore, cacheMs: number): (req: FastifyRequest) => Promise<ApiKeyRecord> {
  // The check itself is cached, so a crowd of requests with one new key costs one store read.
  const cache = new Map<string, { check: Promise<ApiKeyRecord>; until: number }>();
  return async (req) => {
    const header = req.headers.authorization;
    const xApiKey = req.headers["x-api-key"];
    const key = header?.startsWith("Bearer ")
      ? header.slice(7).trim()
      : typeof xApiKey === "string"
        ? xApiKey
        : undefined;
    const id = key ? apiKeyId(key) : undefined;
    if (!key || !id) throw new FleetError("unauthorized", "an API key is required (Authorization: Bearer <key>)");
    const now = Date.now();
    const cached = cache.get(key);
    if (cached && cached.until >= now) return cached.check;
    const check = store.apiKey(id).then((stored) => {
      if (!stored || !verifyApiKey(key, stored)) throw new FleetError("unauthorized", "unknown or revoked API key");
      return stored;
    });
    const entry = { check, until: now + cacheMs };
    cache.set(key, entry);
    // A refused or failed check is not kept: the next request asks the store again.
    check.catch(() => cache.get(key) === entry && cache.delete(key));
    return check;
  };
}

/** True when the request may act on this project (always, with auth off). */
export function reaches(req: FastifyRequest, projectId: string): boolean {
  return !req.apiKey || keyReaches(req.apiKey, projectId);
}
