import { describe, expect, it } from "vitest";
import type { LearnedCap } from "@fleet/shared";
import {
  afterQuiet,
  afterQuotaHit,
  effectiveCap,
  fairPosition,
  quotaBackoffMs,
  type CapChange,
  type CapPolicy,
  type QuotaHit,
} from "./admission-cap.js";

const policy: CapPolicy = { raiseEveryMs: 10_000, decreaseGapMs: 2_000, limitMemoryMs: 60_000 };
const stored = (c: CapChange, rev = 0): LearnedCap => ({ ...c, rev, updatedAt: c.lastChangeAt });
const hit = (held: number, at: number, extra: Pick<QuotaHit, "limit" | "retryAfterMs"> = {}): QuotaHit => ({
  scope: "global",
  held,
  at,
  ...extra,
});

describe("learning the provider's quota (AIMD-like)", () => {
  it("learns at the first quota answer what the fleet held, or the limit the answer named", () => {
    expect(afterQuotaHit(null, hit(7, 1_000), policy)).toMatchObject({ cap: 7, hits: 1, lastChangeAt: 1_000 });
    expect(afterQuotaHit(null, hit(0, 1_000), policy).cap).toBe(1);
    const named = afterQuotaHit(null, hit(3, 1_000, { limit: 5, retryAfterMs: 1_500 }), policy);
    expect(named).toMatchObject({ cap: 5, providerLimit: 5, lastRetryAfterMs: 1_500 });
  });

  it("a burst of answers to one overload lowers the cap once per gap, never below one", () => {
    let cap = stored(afterQuotaHit(null, hit(5, 0, { limit: 5 }), policy));
    // 40 more refusals within the gap (the rest of the burst): counted, the cap stays.
    for (let i = 1; i <= 40; i++) cap = stored(afterQuotaHit(cap, hit(5, i * 10, { limit: 5 }), policy), i);
    expect([cap.cap, cap.hits]).toEqual([5, 41]);
    // Refused within the cap after the gap: less is available than learned, one fewer.
    cap = stored(afterQuotaHit(cap, hit(5, 2_500, { limit: 5 }), policy));
    expect(cap.cap).toBe(4);
    // The gap is at least the answer's Retry-After.
    const early = afterQuotaHit(cap, hit(4, 2_500 + 3_000, { retryAfterMs: 5_000 }), policy);
    expect(early.cap).toBe(4);
    // Proof of less than the cap lowers it at once, whatever the gap.
    expect(afterQuotaHit(cap, hit(2, 2_600), policy).cap).toBe(2);
    let one = stored({ scope: "global", cap: 1, hits: 1, lastChangeAt: 0 });
    one = stored(afterQuotaHit(one, hit(1, 100_000), policy));
    expect(one.cap).toBe(1);
  });

  it("counts a refusal against the cap only when the session was admitted under it as it stands", () => {
    const cap = stored({ scope: "global", cap: 5, providerLimit: 5, hits: 3, lastHitAt: 0, lastChangeAt: 0 }, 7);
    // Admitted before the latest answer (revision 6): old news, counted but the cap stays.
    expect(afterQuotaHit(cap, { ...hit(5, 10, { limit: 5 }), admittedUnderRev: 6 }, policy)).toMatchObject({
      cap: 5,
      hits: 4,
    });
    // Admitted under revision 7 and still refused: one fewer at once, no gap needed.
    expect(afterQuotaHit(cap, { ...hit(5, 10, { limit: 5 }), admittedUnderRev: 7 }, policy).cap).toBe(4);
  });

  it("raises a quiet cap by one per interval, up to the configured cap and a recently named limit", () => {
    const base = stored({ scope: "global", cap: 3, hits: 4, lastHitAt: 0, lastChangeAt: 0, providerLimit: 5 });
    expect(afterQuiet(base, 9_999, Number.POSITIVE_INFINITY, policy)).toBeNull();
    const up = afterQuiet(base, 10_000, Number.POSITIVE_INFINITY, policy);
    expect(up).toMatchObject({ cap: 4, lastChangeAt: 10_000, hits: 4 });
    // The next step waits a full interval from the last change.
    expect(afterQuiet(stored(up as CapChange, 1), 15_000, Number.POSITIVE_INFINITY, policy)).toBeNull();
    expect(afterQuiet(stored(up as CapChange, 1), 20_000, Number.POSITIVE_INFINITY, policy)?.cap).toBe(5);
    // Never past the named limit while it is remembered, nor past the configured cap.
    const atLimit = stored({ ...base, cap: 5 });
    expect(afterQuiet(atLimit, 30_000, Number.POSITIVE_INFINITY, policy)).toBeNull();
    expect(afterQuiet(base, 30_000, 3, policy)).toBeNull();
    // A limit named long ago no longer bounds it: the fleet probes past it again.
    expect(afterQuiet(atLimit, 61_000, Number.POSITIVE_INFINITY, policy)?.cap).toBe(6);
    // Nothing learned: nothing to raise.
    expect(afterQuiet(stored({ scope: "global", hits: 0, lastChangeAt: 0 }), 1e9, 10, policy)).toBeNull();
  });

  it("applies the lower of the configured and the learned cap", () => {
    const learned = stored({ scope: "global", cap: 5, hits: 1, lastChangeAt: 0 });
    expect(effectiveCap(8, learned)).toBe(5);
    expect(effectiveCap(3, learned)).toBe(3);
    expect(effectiveCap(0, learned)).toBe(5);
    expect(effectiveCap(0, null)).toBe(Number.POSITIVE_INFINITY);
    expect(effectiveCap(4, null)).toBe(4);
  });

  it("backs off at least the Retry-After, up to half again; without one, 1 s doubling to 30 s", () => {
    expect(quotaBackoffMs(2_000, 1, () => 0)).toBe(2_000);
    expect(quotaBackoffMs(2_000, 1, () => 1)).toBe(3_000);
    expect(quotaBackoffMs(undefined, 1, () => 0)).toBe(500);
    expect(quotaBackoffMs(undefined, 3, () => 1)).toBe(4_000);
    expect(quotaBackoffMs(undefined, 20, () => 1)).toBe(30_000);
  });
});

describe("fair admission order", () => {
  const w = (id: string, projectId: string, createdAt: number) => ({ id, projectId, createdAt });

  it("takes the oldest waiting session of each project in turn, so a crowded project cannot starve another", () => {
    // Project a sent 5 first, then b 2, then c 1.
    const waiting = [
      ...[0, 1, 2, 3, 4].map((i) => w(`a${i}`, "a", i)),
      w("b0", "b", 10),
      w("b1", "b", 11),
      w("c0", "c", 20),
    ];
    const order = [...waiting].sort((x, y) => fairPosition(waiting, x) - fairPosition(waiting, y)).map((x) => x.id);
    expect(order).toEqual(["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]);
    // A newcomer not yet marked waiting is placed as if it were.
    expect(fairPosition(waiting, w("d0", "d", 30))).toBe(3);
    expect(fairPosition(waiting, w("a5", "a", 30))).toBe(8);
    expect(fairPosition([], w("x", "p", 0))).toBe(0);
  });

  it("serves the project holding the fewest sandboxes first, whatever the age of its requests", () => {
    // a sent everything first and already holds 3 sandboxes, c holds none, b one.
    const waiting = [
      w("a3", "a", 3),
      w("a4", "a", 4),
      w("b1", "b", 11),
      w("b2", "b", 12),
      w("c0", "c", 20),
      w("c1", "c", 21),
    ];
    const held = new Map([
      ["a", 3],
      ["b", 1],
    ]);
    const order = [...waiting]
      .sort((x, y) => fairPosition(waiting, x, held) - fairPosition(waiting, y, held))
      .map((x) => x.id);
    // Shares (held + own sessions ahead): c0 0, b1 1 and c1 1 (b1 older), b2 2, a3 3, a4 4.
    expect(order).toEqual(["c0", "b1", "c1", "b2", "a3", "a4"]);
    // Without what is held, it is round-robin by age again.
    expect([...waiting].sort((x, y) => fairPosition(waiting, x) - fairPosition(waiting, y)).map((x) => x.id)).toEqual([
      "a3",
      "b1",
      "c0",
      "a4",
      "b2",
      "c1",
    ]);
  });
});
