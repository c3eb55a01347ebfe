import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import { newApiKey, type ApiKeyStore } from "../shared/src/index.js";
import { useStore } from "./support/fixtures.js";

describe(`API keys on a real ${inject("storeKind")}`, () => {
  const keys: ApiKeyStore & { close(): Promise<void> } = useStore("apikeys");

  it("saves, finds, lists oldest first and revokes once", async () => {
    const first = newApiKey(["p1"], "first", 1_000).record;
    const second = newApiKey(["p1", "p2"], "second", 2_000).record;
    await keys.saveApiKey(second);
    await keys.saveApiKey(first);
    expect(await keys.apiKey(first.id)).toEqual(first);
    expect(await keys.apiKey("0000000000000000")).toBeNull();
    expect((await keys.listApiKeys()).map((k) => k.label)).toEqual(["first", "second"]);
    // Saving a key id twice is refused, so a record is never overwritten.
    await expect(keys.saveApiKey(first)).rejects.toMatchObject({ code: "store_unavailable", retryable: false });

    expect(await keys.revokeApiKey(first.id)).toBe(true);
    const revoked = await keys.apiKey(first.id);
    expect(revoked?.revokedAt).toBeTypeOf("number");
    expect(await keys.revokeApiKey(first.id)).toBe(false);
    expect((await keys.apiKey(first.id))?.revokedAt).toBe(revoked?.revokedAt);
    expect(await keys.revokeApiKey("0000000000000000")).toBe(false);
    expect((await keys.apiKey(second.id))?.revokedAt).toBeUndefined();
  });
});
