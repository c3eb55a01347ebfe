import { z } from "zod";
import { signToken, verifyToken } from "./jwt.js";

/**
 * Short-lived tokens that let something inside a sandbox (an agent hook, a forwarder) call back
 * about its own session, and nothing else. HS256 only, with issuer, audience, expiry, session id and
 * key id checked; keys rotate by listing the new one first (it signs) and keeping the old ones (they
 * still verify) until their tokens have expired.
 */
export const CallbackKey = z.object({ kid: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/), secret: z.string().min(32) });
export type CallbackKey = z.infer<typeof CallbackKey>;

/** `kid:secret,kid:secret`, the first one signing. */
export const CallbackKeys = z.string().transform((s, ctx) => {
  const keys = s
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const at = p.indexOf(":");
      return { kid: p.slice(0, at), secret: p.slice(at + 1) };
    });
  const parsed = z.array(CallbackKey).min(1).safeParse(keys);
  if (!parsed.success) {
    ctx.addIssue({
      code: "custom",
      message: "expected kid:secret[,kid:secret…] with secrets of at least 32 characters",
    });
    return z.NEVER;
  }
  return parsed.data;
});

export interface CallbackTokenConfig {
  keys: readonly CallbackKey[];
  issuer?: string;
  audience?: string;
  ttlSeconds?: number;
}

const AUDIENCE = "session-fleet/callbacks";

function signing(config: CallbackTokenConfig) {
  return {
    keys: config.keys,
    audience: config.audience ?? AUDIENCE,
    ...(config.issuer ? { issuer: config.issuer } : {}),
  };
}

export function mintCallbackToken(config: CallbackTokenConfig, sessionId: string, attempt: number): Promise<string> {
  return signToken(
    signing(config),
    { sid: sessionId, att: attempt },
    sessionId,
    config.ttlSeconds ?? 3_600,
    "callback",
  );
}

const Claims = z.object({ sid: z.string().min(1), att: z.number().int().nonnegative() });

/** The token's attempt when it is valid for this session; a FleetError("unauthorized") otherwise. */
export function verifyCallbackToken(
  config: CallbackTokenConfig,
  token: string,
  sessionId: string,
): Promise<{ attempt: number }> {
  return verifyToken(signing(config), token, ["sid"], "callback token", (payload) => {
    const claims = Claims.parse(payload);
    if (claims.sid !== sessionId || payload.sub !== sessionId) throw new Error("token is for another session");
    return { attempt: claims.att };
  });
}
