import { FleetError, apiKeyId, keyReaches, verifyApiKey, type ApiKeyRecord, type SessionStore } from "@fleet/shared";
import type { FastifyInstance, FastifyRequest } from "fastify";

declare module "fastify" {
  interface FastifyRequest {
    apiKey?: ApiKeyRecord;
  }
}

export interface AuthOptions {
  mode: "keys" | "off";
  /** How long a verified key is trusted before the store is asked again (and so how fast a revoke bites). */
  cacheMs?: number;
}

/** Every /v1 route needs a key (Authorization: Bearer <key> or X-Api-Key); health, metrics and the spec do not. */
export function installAuth(app: FastifyInstance, store: SessionStore, options: AuthOptions): void {
  if (options.mode === "off") return;
  const cache = new Map<string, { record: ApiKeyRecord; until: number }>();
  app.addHook("onRequest", async (req) => {
    // Sandbox callbacks carry their own session-scoped token instead of an API key.
    if (!req.url.startsWith("/v1/") || req.url.startsWith("/v1/callbacks/")) return;
    const header = req.headers.authorization;
    const key = header?.startsWith("Bearer ") ? header.slice(7).trim() : (req.headers["x-api-key"] as string | undefined);
    const id = key ? apiKeyId(key) : undefined;
    if (!key || !id) throw new FleetError("unauthorized", "an API key is required (Authorization: Bearer <key>)");
    const now = Date.now();
    let record = cache.get(key);
    if (!record || record.until < now) {
      const stored = await store.apiKey(id);
      if (!stored || !verifyApiKey(key, stored)) {
        cache.delete(key);
        throw new FleetError("unauthorized", "unknown or revoked API key");
      }
      record = { record: stored, until: now + (options.cacheMs ?? 5_000) };
      cache.set(key, record);
    }
    req.apiKey = record.record;
  });
}

/** True when the request may act on this project (always, with auth off). */
export function reaches(req: FastifyRequest, projectId: string): boolean {
  return !req.apiKey || keyReaches(req.apiKey, projectId);
}
