import { SignJWT, UnsecuredJWT } from "jose";
import { describe, expect, it } from "vitest";
import { mintCallbackToken } from "./callback-tokens.js";
import { mintGatewayToken, verifyGatewayToken } from "./gateway-tokens.js";

const k1 = { kid: "g1", secret: "a".repeat(40) };
const k2 = { kid: "g2", secret: "b".repeat(40) };
const enc = new TextEncoder();
const grant = { sessionId: "ses-1", attempt: 2, projectId: "p1", models: ["m1", "m2"] };

describe("gateway tokens", () => {
  it("carry the session, attempt, project and models, and verify with any listed key", async () => {
    const t = await mintGatewayToken({ keys: [k1] }, grant, 60);
    const verified = await verifyGatewayToken({ keys: [k1] }, t);
    expect(verified).toMatchObject(grant);
    expect(verified.expiresAt).toBeGreaterThan(Date.now() + 50_000);
    expect(verified.expiresAt).toBeLessThanOrEqual(Date.now() + 61_000);
    // Rotation: the new key signs, the old one still verifies what it signed.
    expect(await verifyGatewayToken({ keys: [k2, k1] }, t)).toMatchObject(grant);
  });

  it("refuse other audiences and issuers, expired, unknown-key, forged and unsigned tokens, and callback tokens", async () => {
    const cfg = { keys: [k1] };
    const bad = (token: string) =>
      expect(verifyGatewayToken(cfg, token)).rejects.toMatchObject({ code: "unauthorized" });
    await bad(await mintGatewayToken({ keys: [k1], audience: "other" }, grant, 60));
    await bad(await mintGatewayToken({ keys: [k1], issuer: "other" }, grant, 60));
    await bad(await mintGatewayToken({ keys: [{ kid: "g1", secret: "c".repeat(40) }] }, grant, 60));
    await bad(await mintGatewayToken({ keys: [{ kid: "g9", secret: k1.secret }] }, grant, 60));
    await bad(await mintCallbackToken({ keys: [k1] }, "ses-1", 2));
    const claims = { sid: "ses-1", att: 2, prj: "p1", mdl: ["m1"] };
    const signed = (b: SignJWT) =>
      b.setProtectedHeader({ alg: "HS256", kid: "g1" }).setIssuer("session-fleet").setAudience("fleet-gateway");
    await bad(
      await signed(new SignJWT(claims))
        .setSubject("ses-1")
        .setExpirationTime(Math.floor(Date.now() / 1000) - 10)
        .sign(enc.encode(k1.secret)),
    );
    // No expiry, or a subject that is not the session.
    await bad(await signed(new SignJWT(claims)).setSubject("ses-1").sign(enc.encode(k1.secret)));
    await bad(
      await signed(new SignJWT(claims)).setSubject("ses-2").setExpirationTime("1m").sign(enc.encode(k1.secret)),
    );
    // Missing models.
    await bad(
      await signed(new SignJWT({ sid: "ses-1", att: 2, prj: "p1" }))
        .setSubject("ses-1")
        .setExpirationTime("1m")
        .sign(enc.encode(k1.secret)),
    );
    await bad(
      new UnsecuredJWT(claims).setIssuer("session-fleet").setAudience("fleet-gateway").setSubject("ses-1").encode(),
    );
    await bad("not-a-token");
  });
});
