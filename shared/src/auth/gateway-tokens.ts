import { z } from "zod";
import type { CallbackKey } from "./callback-tokens.js";
import { signToken, verifyToken } from "./jwt.js";

/**
 * What an agent holds instead of a model key: a JWT for the model gateway, minted by the spawner per
 * session and attempt, naming the session's project and the models it may call. HS256 only, with
 * issuer, audience `fleet-gateway`, expiry and key id checked; keys rotate like the callback keys
 * (the first of FLEET_GATEWAY_KEYS signs, the others still verify).
 *
 * The token alone is not enough: the gateway also checks, on every call (cached for at most
 * GATEWAY_SESSION_CACHE_MS), that its session is still active and on the token's attempt. So a token
 * stops working when its session ends or another attempt starts, whatever its expiry says; the
 * expiry only bounds it when the store cannot be asked (docs/security.md, "Model gateway").
 */
export interface GatewayTokenConfig {
  keys: readonly CallbackKey[];
  issuer?: string;
  audience?: string;
}

export const GATEWAY_AUDIENCE = "fleet-gateway";

export const GatewayClaims = z.object({
  sid: z.string().min(1),
  att: z.number().int().nonnegative(),
  prj: z.string().min(1),
  /** The models this session may call, its first choice first; later ones are its fallbacks. */
  mdl: z.array(z.string().min(1)).min(1).max(50),
});
export type GatewayClaims = z.infer<typeof GatewayClaims>;

export interface GatewayGrant {
  sessionId: string;
  attempt: number;
  projectId: string;
  models: readonly string[];
  /** When the token expires (epoch ms); set by verification, ignored when minting. */
  expiresAt?: number;
}

function signing(config: GatewayTokenConfig) {
  return {
    keys: config.keys,
    audience: config.audience ?? GATEWAY_AUDIENCE,
    ...(config.issuer ? { issuer: config.issuer } : {}),
  };
}

export function mintGatewayToken(config: GatewayTokenConfig, grant: GatewayGrant, ttlSeconds: number): Promise<string> {
  const claims: GatewayClaims = {
    sid: grant.sessionId,
    att: grant.attempt,
    prj: grant.projectId,
    mdl: [...grant.models],
  };
  return signToken(signing(config), claims, grant.sessionId, ttlSeconds, "gateway");
}

/** The session id a warm-pool agent's token names: none yet, only its sandbox. */
export const POOL_TOKEN_PREFIX = "pool:";

/**
 * A token for an agent started in the warm pool, before any session exists. Inert: the gateway
 * refuses it until a session has claimed the sandbox (the pool's record names that session, its
 * attempt and project), and then treats it as that session's token, checked live like any other.
 */
export function mintPoolGatewayToken(
  config: GatewayTokenConfig,
  sandboxId: string,
  models: readonly string[],
  ttlSeconds: number,
): Promise<string> {
  return mintGatewayToken(
    config,
    { sessionId: `${POOL_TOKEN_PREFIX}${sandboxId}`, attempt: 0, projectId: "pool", models },
    ttlSeconds,
  );
}

/** The pooled sandbox a token names, when it is a warm-pool token. */
export function pooledSandboxOf(grant: Pick<GatewayGrant, "sessionId">): string | undefined {
  return grant.sessionId.startsWith(POOL_TOKEN_PREFIX) ? grant.sessionId.slice(POOL_TOKEN_PREFIX.length) : undefined;
}

/** The token's grant when its signature, issuer, audience and expiry hold; a FleetError("unauthorized") otherwise. */
export function verifyGatewayToken(config: GatewayTokenConfig, token: string): Promise<GatewayGrant> {
  return verifyToken(signing(config), token, ["sid", "att", "prj", "mdl"], "gateway token", (payload) => {
    const claims = GatewayClaims.parse(payload);
    if (payload.sub !== claims.sid) throw new Error("subject and session differ");
    return {
      sessionId: claims.sid,
      attempt: claims.att,
      projectId: claims.prj,
      models: claims.mdl,
      expiresAt: (payload.exp ?? 0) * 1000,
    };
  });
}
