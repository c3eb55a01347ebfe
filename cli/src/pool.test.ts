import { describe, expect, it } from "vitest";
import { poolLines } from "./pool.js";

describe("./fleet pool", () => {
  it("shows ready against target, starting, claimed and the hit ratio per key, and creation errors", () => {
    const now = 100_000;
    const lines = poolLines(
      [
        {
          fleet: "f",
          owner: "a",
          key: "local-1",
          target: 2,
          ready: 1,
          starting: 1,
          hits: 9,
          misses: 1,
          failures: 0,
          at: now,
        },
        {
          fleet: "f",
          owner: "b",
          key: "local-1",
          target: 1,
          ready: 0,
          starting: 0,
          hits: 0,
          misses: 0,
          failures: 2,
          lastError: "boom",
          at: now,
        },
      ],
      [
        {
          sandboxId: "s1",
          fleet: "f",
          key: "local-1",
          owner: "a",
          state: "warm",
          createdAt: 0,
          readyAt: 40_000,
          seenAt: now,
        },
        { sandboxId: "s2", fleet: "f", key: "local-1", owner: "a", state: "starting", createdAt: 90_000, seenAt: now },
        { sandboxId: "s3", fleet: "f", key: "local-1", owner: "b", state: "claimed", createdAt: 0, seenAt: now },
      ],
      now,
    );
    expect(lines[1]).toMatch(/^local-1\s+1\/3\s+1\s+1\s+90% \(9\/10\)\s+60 s$/);
    expect(lines[2]).toContain("b: 2 creation failure(s) in a row, last: boom");
    expect(poolLines([], [], now)[0]).toContain("no warm pool");
  });
});
