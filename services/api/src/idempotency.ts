import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { SessionConfig, type Session } from "@fleet/shared";
import { HttpError } from "./errors.js";
import type { CreateSessionBody } from "./schemas.js";

/** A retried submit with the same Idempotency-Key names the same session. */
export function sessionIdFor(body: CreateSessionBody, idempotencyKey: string | undefined): string {
  if (body.sessionId) return body.sessionId;
  if (idempotencyKey)
    return `ses-${createHash("sha256").update(`${body.projectId}\0${idempotencyKey}`).digest("base64url").slice(0, 32).replace(/^[-_]/, "x")}`;
  return `ses-${crypto.randomUUID()}`;
}

/** The session settings a create body asks for, defaults applied (what the session keeps). */
export function configOf(b: CreateSessionBody): SessionConfig {
  return SessionConfig.parse({
    ...(b.model ? { model: b.model } : {}),
    ...(b.fallbackModels ? { fallbackModels: b.fallbackModels } : {}),
    ...(b.maxTokens ? { maxTokens: b.maxTokens } : {}),
    ...(b.tools ? { tools: b.tools } : {}),
    ...(b.systemPrompt ? { systemPrompt: b.systemPrompt } : {}),
    ...(b.timeoutMs ? { timeoutMs: b.timeoutMs } : {}),
    ...(b.budget ? { budget: b.budget } : {}),
  });
}

/**
 * A reused Idempotency-Key must come with the request it was first used with (IETF
 * draft-ietf-httpapi-idempotency-key-header: 422 otherwise), so that a client bug that reuses a
 * key is told instead of silently getting another request's session. Compared on what the session
 * keeps of its request: prompt, card and settings; the restored files are not kept, so not compared.
 */
export function mustBeSameRequest(session: Session, b: CreateSessionBody, config: SessionConfig): void {
  const kept = SessionConfig.parse(session.config);
  const differ = [
    ...(session.prompt !== b.prompt ? ["prompt"] : []),
    ...(session.cardId !== b.cardId ? ["cardId"] : []),
    ...(Object.keys({ ...kept, ...config }) as Array<keyof SessionConfig>).filter(
      (k) => !isDeepStrictEqual(kept[k], config[k]),
    ),
  ];
  if (differ.length > 0) {
    throw new HttpError(
      422,
      "idempotency_key_reused",
      `this Idempotency-Key was first used with a different request (it differs in ${differ.sort().join(", ")}); use a new key for a new request`,
    );
  }
}
