import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { ClaimStore } from "../shared/src/index.js";
import { useStore } from "./support/fixtures.js";

describe(`claims on a real ${inject("storeKind")}`, () => {
  const claims: ClaimStore & { close(): Promise<void> } = useStore("claims");

  it("grants a claim to exactly one of many racing callers, in every round", async () => {
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => claims.claim(`s-claim/spawn:${round}`, `owner-${i}`)),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
    }
    // Taken once, a claim stays taken, also for the caller that took it.
    expect(await claims.claim("s-claim/spawn:0", "owner-0")).toBe(false);
    expect(await claims.claim("s-claim/spawn:10", "x")).toBe(true);
  });
});
