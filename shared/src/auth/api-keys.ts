import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";

/**
 * API keys look like `fk_<id>_<secret>`. Only the id and a SHA-256 of the secret are stored; the
 * whole key is shown once, when it is made. A key reaches the projects it names, or all with `*`.
 */
export const ApiKeyRecord = z.object({
  id: z.string().regex(/^[a-f0-9]{16}$/),
  hash: z.string().regex(/^[a-f0-9]{64}$/),
  projects: z.array(z.string().min(1)).min(1),
  label: z.string().max(200).default(""),
  createdAt: z.number().int(),
  revokedAt: z.number().int().optional(),
});
export type ApiKeyRecord = z.infer<typeof ApiKeyRecord>;

const KEY = /^fk_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

function digest(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function newApiKey(
  projects: readonly string[],
  label = "",
  now = Date.now(),
): { key: string; record: ApiKeyRecord } {
  const id = randomBytes(8).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return {
    key: `fk_${id}_${secret}`,
    record: { id, hash: digest(secret), projects: [...projects], label, createdAt: now },
  };
}

/** The id of a well-formed key (not yet verified), or undefined. */
export function apiKeyId(key: string): string | undefined {
  return KEY.exec(key)?.[1];
}

/** True when the key matches the record and the record is not revoked. Constant time on the secret. */
export function verifyApiKey(key: string, record: ApiKeyRecord): boolean {
  const m = KEY.exec(key);
  if (!m || m[1] !== record.id || record.revokedAt !== undefined) return false;
  const a = Buffer.from(digest(m[2] as string), "hex");
  const b = Buffer.from(record.hash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

export function keyReaches(record: Pick<ApiKeyRecord, "projects">, projectId: string): boolean {
  return record.projects.includes("*") || record.projects.includes(projectId);
}
