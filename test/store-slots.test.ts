import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { SlotStore } from "../shared/src/index.js";
import { useStore } from "./support/fixtures.js";

describe(`admission slots on a real ${inject("storeKind")}`, () => {
  const slots: SlotStore & { close(): Promise<void> } = useStore("slots");

  it("gives the capacity of a scope to that many of many racing sessions, once each", async () => {
    const sessions = Array.from({ length: 12 }, (_, i) => `race-${i}`);
    const got = await Promise.all(sessions.map((s) => slots.acquireSlot("global", 3, s)));
    const holders = sessions.filter((_, i) => got[i]);
    expect(holders).toHaveLength(3);
    expect(await slots.slotsInUse("global")).toBe(3);
    // Asking again while holding one takes no second slot.
    const holder = holders[0] as string;
    expect(await slots.acquireSlot("global", 3, holder)).toBe(true);
    expect(await slots.slotsInUse("global")).toBe(3);
    // A freed slot goes to the next session that asks.
    await slots.releaseSlots(holder);
    await slots.releaseSlots(holder);
    expect(await slots.slotsInUse("global")).toBe(2);
    const waiting = sessions.find((s) => !holders.includes(s)) as string;
    expect(await slots.acquireSlot("global", 3, waiting)).toBe(true);
    expect(await slots.acquireSlot("global", 3, holder)).toBe(false);
  });

  it("keeps scopes apart and lists every held slot, all freed with their session", async () => {
    expect(await slots.acquireSlot("project:a", 1, "s-a")).toBe(true);
    expect(await slots.acquireSlot("project:b", 1, "s-b")).toBe(true);
    expect(await slots.acquireSlot("project:a", 1, "s-b")).toBe(false);
    expect(await slots.acquireSlot("other", 2, "s-a")).toBe(true);
    const held = (await slots.heldSlots()).filter((h) => h.scope !== "global");
    expect(held.map((h) => `${h.scope}=${h.sessionId}`).sort()).toEqual([
      "other=s-a",
      "project:a=s-a",
      "project:b=s-b",
    ]);
    await slots.releaseSlots("s-a");
    expect(await slots.slotsInUse("project:a")).toBe(0);
    expect(await slots.slotsInUse("other")).toBe(0);
    expect(await slots.slotsInUse("project:b")).toBe(1);
  });

  it("tells in one read how many slots of a scope each project holds, a pool's slot counting only in the total", async () => {
    const scope = "share";
    expect(await slots.acquireSlot(scope, 10, "sh-a1", "pa")).toBe(true);
    expect(await slots.acquireSlot(scope, 10, "sh-a2", "pa")).toBe(true);
    expect(await slots.acquireSlot(scope, 10, "sh-b1", "pb")).toBe(true);
    expect(await slots.acquireSlot(scope, 10, "pool:warm-1")).toBe(true);
    let now = await slots.slotsByProject(scope);
    expect([now.total, Object.fromEntries(now.byProject)]).toEqual([4, { pa: 2, pb: 1 }]);
    // The warm sandbox's slot becomes the session's that claimed it, and counts for its project.
    expect(await slots.transferSlots("pool:warm-1", "sh-c1", "pc")).toBe(1);
    await slots.releaseSlots("sh-a1");
    now = await slots.slotsByProject(scope);
    expect([now.total, Object.fromEntries(now.byProject)]).toEqual([3, { pa: 1, pb: 1, pc: 1 }]);
    for (const s of ["sh-a2", "sh-b1", "sh-c1"]) await slots.releaseSlots(s);
    expect((await slots.slotsByProject(scope)).total).toBe(0);
  });

  it("counts slots under a large capacity with one insert each, and keeps the capacity", async () => {
    const holders = Array.from({ length: 6 }, (_, i) => `big-${i}`);
    expect(await Promise.all(holders.map((h) => slots.acquireSlot("big", 100_000, h)))).toEqual(
      holders.map(() => true),
    );
    expect(await slots.slotsInUse("big")).toBe(6);
    await slots.releaseSlots("big-0");
    expect(await slots.acquireSlot("big", 6, "big-6")).toBe(true);
    expect(await slots.acquireSlot("big", 6, "big-7")).toBe(false);
  });

  it("changes the learned cap by compare-and-set: of racing spawners one wins each revision", async () => {
    const scope = "learned-test";
    expect(await slots.learnedCap(scope)).toBeNull();
    const first = { scope, cap: 5, providerLimit: 5, hits: 1, lastHitAt: 1_000, lastChangeAt: 1_000 };
    const created = await Promise.all(Array.from({ length: 8 }, () => slots.replaceLearnedCap(-1, first)));
    expect(created.filter(Boolean)).toHaveLength(1);
    expect(await slots.learnedCap(scope)).toMatchObject({ ...first, rev: 0 });
    const lowered = await Promise.all(
      [4, 3, 2].map((cap) => slots.replaceLearnedCap(0, { ...first, cap, hits: 2, lastChangeAt: 2_000 })),
    );
    expect(lowered.filter(Boolean)).toHaveLength(1);
    const now = await slots.learnedCap(scope);
    expect(now?.rev).toBe(1);
    expect([4, 3, 2]).toContain(now?.cap);
    // A stale revision changes nothing.
    expect(await slots.replaceLearnedCap(0, { ...first, cap: 9 })).toBe(false);
    expect((await slots.learnedCap(scope))?.cap).toBe(now?.cap);
  });
});
