import { describe, expect, it } from "vitest";
import { shouldProbe } from "./heal.js";

describe("healing a stuck store client", () => {
  it("probes only after the store was unknown for long, and not again right after a reconnect", () => {
    expect(shouldProbe({ unknownSince: undefined, lastHealAt: undefined }, 100_000, 20_000)).toBe(false);
    expect(shouldProbe({ unknownSince: 90_000, lastHealAt: undefined }, 100_000, 20_000)).toBe(false);
    expect(shouldProbe({ unknownSince: 80_000, lastHealAt: undefined }, 100_000, 20_000)).toBe(true);
    expect(shouldProbe({ unknownSince: 50_000, lastHealAt: 90_000 }, 100_000, 20_000)).toBe(false);
    expect(shouldProbe({ unknownSince: 50_000, lastHealAt: 80_000 }, 100_000, 20_000)).toBe(true);
  });
});
