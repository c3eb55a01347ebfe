import { describe, expect, it } from "vitest";
import { FleetError } from "../errors/index.js";
import {
  isConcurrencyMessage,
  isProviderQuota,
  limitInMessage,
  MAX_RETRY_AFTER_MS,
  parseRetryAfter,
  ProviderQuotaError,
} from "./quota.js";

describe("provider quota answers", () => {
  it("reads Retry-After as delta-seconds or an HTTP-date, and nothing else", () => {
    const now = Date.parse("2026-11-29T14:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Sun, 29 Nov 2026 14:00:05 GMT", now)).toBe(5_000);
    expect(parseRetryAfter("Sun, 29 Nov 2026 13:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("999999999", now)).toBe(MAX_RETRY_AFTER_MS);
    for (const bad of ["", "-1", "1.5", "soon", "12abc", undefined, 3, null])
      expect(parseRetryAfter(bad, now), String(bad)).toBeUndefined();
  });

  it("is a retryable rate_limited FleetError that carries its advice", () => {
    const e = new ProviderQuotaError("429", { kind: "concurrency", retryAfterMs: 1_500, limit: 5 });
    expect(e).toBeInstanceOf(FleetError);
    expect([e.code, e.retryable, e.kind, e.retryAfterMs, e.limit]).toEqual([
      "rate_limited",
      true,
      "concurrency",
      1_500,
      5,
    ]);
    expect(isProviderQuota(e)).toBe(true);
    expect(isProviderQuota(new FleetError("rate_limited", "an api client's own limit"))).toBe(false);
  });

  it("finds the concurrent limit a provider's message names", () => {
    expect(limitInMessage("You have reached the maximum number of concurrent E2B sandboxes (20)")).toBe(20);
    expect(limitInMessage("a limit of 5 concurrent sandboxes")).toBe(5);
    expect(limitInMessage("Rate limit exceeded, please try again later")).toBeUndefined();
    expect(isConcurrencyMessage("You have reached the maximum number of concurrent E2B sandboxes")).toBe(true);
    expect(isConcurrencyMessage("Rate limit exceeded, please try again later")).toBe(false);
  });
});
