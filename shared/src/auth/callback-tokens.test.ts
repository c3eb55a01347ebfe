import { SignJWT, UnsecuredJWT } from "jose";
import { describe, expect, it } from "vitest";
import { CallbackKeys, mintCallbackToken, verifyCallbackToken } from "./callback-tokens.js";

const k1 = { kid: "k1", secret: "a".repeat(40) };
const k2 = { kid: "k2", secret: "b".repeat(40) };
const enc = new TextEncoder();

describe("callback tokens", () => {
  it("verify for their own session and carry the attempt", async () => {
    const t = await mintCallbackToken({ keys: [k1] }, "ses-1", 2);
    expect(await verifyCallbackToken({ keys: [k1] }, t, "ses-1")).toEqual({ attempt: 2 });
  });

  it("refuse another session, another audience or issuer, expiry, unknown keys, forged and unsigned tokens", async () => {
    const cfg = { keys: [k1] };
    const ok = await mintCallbackToken(cfg, "ses-1", 1);
    const bad = async (token: string, session = "ses-1") =>
      expect(verifyCallbackToken(cfg, token, session)).rejects.toMatchObject({ code: "unauthorized" });
    await bad(ok, "ses-2");
    await bad(await mintCallbackToken({ keys: [k1], audience: "other" }, "ses-1", 1));
    await bad(await mintCallbackToken({ keys: [k1], issuer: "other" }, "ses-1", 1));
    await bad(await mintCallbackToken({ keys: [{ kid: "k1", secret: "c".repeat(40) }] }, "ses-1", 1));
    await bad(await mintCallbackToken({ keys: [{ kid: "k9", secret: k1.secret }] }, "ses-1", 1));
    const expired = await new SignJWT({ sid: "ses-1", att: 1 })
      .setProtectedHeader({ alg: "HS256", kid: "k1" })
      .setIssuer("session-fleet")
      .setAudience("session-fleet/callbacks")
      .setSubject("ses-1")
      .setExpirationTime(Math.floor(Date.now() / 1000) - 10)
      .sign(enc.encode(k1.secret));
    await bad(expired);
    const unsigned = new UnsecuredJWT({ sid: "ses-1", att: 1 })
      .setIssuer("session-fleet")
      .setAudience("session-fleet/callbacks")
      .setSubject("ses-1")
      .setExpirationTime("1h")
      .encode();
    await bad(unsigned);
    const hs512 = await new SignJWT({ sid: "ses-1", att: 1 })
      .setProtectedHeader({ alg: "HS512", kid: "k1" })
      .setIssuer("session-fleet")
      .setAudience("session-fleet/callbacks")
      .setSubject("ses-1")
      .setExpirationTime("1h")
      .sign(enc.encode(k1.secret.repeat(2)));
    await bad(hs512);
    const [h, p] = ok.split(".");
    await bad(`${h}.${p}.${"A".repeat(43)}`);
    await bad("not-a-jwt");
  });

  it("rotate: the first key signs, older keys still verify until dropped", async () => {
    const old = await mintCallbackToken({ keys: [k1] }, "ses-1", 1);
    const rotated = { keys: [k2, k1] };
    const fresh = await mintCallbackToken(rotated, "ses-1", 1);
    expect(JSON.parse(Buffer.from(fresh.split(".")[0] as string, "base64url").toString()).kid).toBe("k2");
    await expect(verifyCallbackToken(rotated, old, "ses-1")).resolves.toEqual({ attempt: 1 });
    await expect(verifyCallbackToken({ keys: [k2] }, old, "ses-1")).rejects.toMatchObject({ code: "unauthorized" });
  });

  it("parse key lists from the environment", () => {
    expect(CallbackKeys.parse(`k2:${k2.secret}, k1:${k1.secret}`)).toEqual([k2, k1]);
    expect(CallbackKeys.safeParse("k1:short").success).toBe(false);
    expect(CallbackKeys.safeParse("").success).toBe(false);
  });
});
