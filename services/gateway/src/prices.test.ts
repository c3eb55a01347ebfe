import { describe, expect, it } from "vitest";
import { PriceTable, ProjectLimits, costOf, limitFor } from "./prices.js";
import { UsageScanner, readUsage } from "./upstream.js";

describe("gateway prices and limits", () => {
  it("parse the price table and cost a call, cached prompt tokens at their own price", () => {
    const table = PriceTable.parse("openai/gpt-4o=2.5/10/1.25, anthropic/claude:beta=3/15, *=1/2");
    expect(table.get("openai/gpt-4o")).toEqual({ in: 2.5, out: 10, cachedIn: 1.25 });
    expect(table.get("anthropic/claude:beta")).toEqual({ in: 3, out: 15 });
    // 1,000 in (400 cached) and 100 out.
    const usage = { tokensIn: 1_000, tokensOut: 100, cachedTokens: 400 };
    expect(costOf(table, "openai/gpt-4o", usage)).toBeCloseTo((600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6, 12);
    expect(costOf(table, "anthropic/claude:beta", usage)).toBeCloseTo((1_000 * 3 + 100 * 15) / 1e6, 12);
    expect(costOf(table, "unknown", usage)).toBeCloseTo((1_000 + 200) / 1e6, 12);
    expect(costOf(PriceTable.parse(""), "m", usage)).toBe(0);
    expect(() => PriceTable.parse("m=1")).toThrow(/model=in\/out/);
    expect(() => PriceTable.parse("m=a/b")).toThrow();
  });

  it("parse per-project limits with a default", () => {
    const limits = ProjectLimits.parse("p1=1000, *=50");
    expect(limitFor(limits, "p1")).toBe(1_000);
    expect(limitFor(limits, "other")).toBe(50);
    expect(limitFor(ProjectLimits.parse(""), "p1")).toBeUndefined();
    expect(() => ProjectLimits.parse("p1=-3")).toThrow();
  });
});

describe("usage in a stream", () => {
  it("is found in the last chunk however the stream is cut, and `usage: null` chunks are skipped", () => {
    const events = [
      'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n',
      'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}\n\n',
      "data: [DONE]\n\n",
    ].join("");
    for (const size of [1, 7, 64, events.length]) {
      const scanner = new UsageScanner();
      for (let i = 0; i < events.length; i += size) scanner.feed(Buffer.from(events.slice(i, i + size)));
      expect(scanner.usage).toEqual({ tokensIn: 12, tokensOut: 3, cachedTokens: 4 });
      expect(scanner.bytes).toBe(Buffer.byteLength(events));
    }
    expect(readUsage({ foo: 1 })).toBeUndefined();
    expect(readUsage({ prompt_tokens: 5 })).toEqual({ tokensIn: 5, tokensOut: 0, cachedTokens: 0 });
  });
});
