import { SignJWT, jwtVerify, type JWTHeaderParameters, type JWTPayload } from "jose";
import { FleetError } from "../errors/index.js";
import type { CallbackKey } from "./callback-tokens.js";

/** The issuer of every token the fleet signs. */
export const ISSUER = "session-fleet";

const enc = new TextEncoder();

export interface TokenSigning {
  /** The first key signs; every listed key verifies (keys rotate by putting a new one first). */
  keys: readonly CallbackKey[];
  audience: string;
  issuer?: string;
}

/** An HS256 JWT of `claims` for `subject`, signed with the first key and expiring after `ttlSeconds`. */
export function signToken(
  signing: TokenSigning,
  claims: Record<string, unknown>,
  subject: string,
  ttlSeconds: number,
  what: string,
): Promise<string> {
  const key = signing.keys[0];
  if (!key) throw new FleetError("config", `no ${what} signing key`);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", kid: key.kid, typ: "JWT" })
    .setIssuer(signing.issuer ?? ISSUER)
    .setAudience(signing.audience)
    .setSubject(subject)
    .setIssuedAt()
    .setExpirationTime(`${Math.max(1, Math.ceil(ttlSeconds))}s`)
    .sign(enc.encode(key.secret));
}

/**
 * The payload of a token signed by one of the keys (HS256 only; issuer, audience and expiry held;
 * `required` claims present), passed to `check`, which returns what the caller needs or throws. Any
 * failure is a FleetError("unauthorized") naming `what`.
 */
export async function verifyToken<T>(
  signing: TokenSigning,
  token: string,
  required: readonly string[],
  what: string,
  check: (payload: JWTPayload) => T,
): Promise<T> {
  try {
    const { payload } = await jwtVerify(
      token,
      (header: JWTHeaderParameters) => {
        const key = signing.keys.find((k) => k.kid === header.kid);
        if (!key) throw new Error("unknown key id");
        return enc.encode(key.secret);
      },
      {
        algorithms: ["HS256"],
        issuer: signing.issuer ?? ISSUER,
        audience: signing.audience,
        requiredClaims: ["exp", "sub", ...required],
      },
    );
    return check(payload);
  } catch (err) {
    throw new FleetError("unauthorized", `invalid ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
