import { describe, expect, it } from "vitest";
import { backoffMs } from "./backoff.js";

describe("backoff", () => {
  it("doubles per attempt within [step/2, step] and stops at the cap", () => {
    const opts = { baseMs: 100, maxMs: 1_000 };
    expect(backoffMs(1, opts, () => 0)).toBe(50);
    expect(backoffMs(1, opts, () => 1)).toBe(100);
    expect(backoffMs(3, opts, () => 0)).toBe(200);
    expect(backoffMs(3, opts, () => 1)).toBe(400);
    expect(backoffMs(20, opts, () => 1)).toBe(1_000);
    expect(backoffMs(20, opts, () => 0)).toBe(500);
  });
});
