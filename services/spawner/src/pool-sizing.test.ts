import { describe, expect, it } from "vitest";
import { creationBackoffMs } from "./pool.js";
import { poolDemandTarget, type PoolSizing } from "./pool-sizing.js";

const sizing: PoolSizing = { min: 0, max: 4, windowMs: 60_000, refillMs: 10_000, burst: 1, maxCreating: 1 };

describe("poolDemandTarget", () => {
  it("is the minimum without demand (zero when idle)", () => {
    expect(poolDemandTarget(sizing, [], 100_000)).toBe(0);
    expect(poolDemandTarget({ ...sizing, min: 2 }, [], 100_000)).toBe(2);
    expect(poolDemandTarget(sizing, [1_000], 100_000)).toBe(0);
  });
  it("follows claims per refill time plus the burst margin, bounded by max", () => {
    // 6 claims a minute, 10 s to refill: 1 expected during a refill, + 1 burst.
    const steady = Array.from({ length: 6 }, (_, i) => 50_000 + i * 10_000);
    expect(poolDemandTarget(sizing, steady, 110_000)).toBe(2);
    const burst = Array.from({ length: 60 }, (_, i) => 100_000 + i);
    expect(poolDemandTarget(sizing, burst, 110_000)).toBe(4);
  });
});

describe("creationBackoffMs", () => {
  it("doubles the wait after each failure in a row, up to a minute", () => {
    expect([0, 1, 2, 3, 10].map(creationBackoffMs)).toEqual([0, 1_000, 2_000, 4_000, 60_000]);
  });
});
