import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { PoolStore } from "../shared/src/index.js";
import { useStore } from "./support/fixtures.js";

describe(`the warm pool's records on a real ${inject("storeKind")}`, () => {
  const pool: PoolStore = useStore("pool");

  const warmUp = async (key: string, n: number): Promise<string[]> => {
    const ids = Array.from({ length: n }, (_, i) => `${key}-sb-${i}`);
    for (const id of ids) {
      await pool.addPoolEntry({ sandboxId: id, fleet: "f", key, owner: "o", slotHolder: `pool:${id}` });
      expect(await pool.markPoolWarm(id, 123)).toBe(true);
    }
    return ids;
  };

  it("gives each warm sandbox to exactly one of many racing sessions, oldest first, never twice", async () => {
    const ids = await warmUp("race", 3);
    // A starting one (its agent not ready) is not claimable.
    await pool.addPoolEntry({ sandboxId: "race-starting", fleet: "f", key: "race", owner: "o" });
    const sessions = Array.from({ length: 12 }, (_, i) => `s-${i}`);
    const got = await Promise.all(
      sessions.map((s) => pool.claimPooled("f", "race", { sessionId: s, attempt: 1, projectId: "p" })),
    );
    const won = got.filter((e) => e !== null);
    expect(won.map((e) => e?.sandboxId).sort()).toEqual(ids);
    expect(new Set(won.map((e) => e?.sessionId)).size).toBe(3);
    for (const e of won) {
      expect(e).toMatchObject({ state: "claimed", attempt: 1, projectId: "p", agentPid: 123 });
      // The record names the winner, and stays so.
      expect((await pool.poolEntry(e?.sandboxId ?? ""))?.sessionId).toBe(e?.sessionId);
    }
    expect(await pool.claimPooled("f", "race", { sessionId: "late", attempt: 1, projectId: "p" })).toBeNull();
    // Another key's or another fleet's warm sandboxes are not taken.
    await warmUp("other", 1);
    expect(await pool.claimPooled("g", "other", { sessionId: "x", attempt: 1, projectId: "p" })).toBeNull();
  });

  it("a sandbox is either claimed or removed from the pool, never both", async () => {
    const ids = await warmUp("reap", 20);
    const results = await Promise.all(
      ids.flatMap((id, i) => [
        pool.claimPooled("f", "reap", { sessionId: `c-${i}`, attempt: 1, projectId: "p" }).then((e) => e?.sandboxId),
        pool.removeUnclaimed(id).then((removed) => (removed ? `removed:${id}` : undefined)),
      ]),
    );
    const claimed = results.filter((r): r is string => r !== undefined && !r.startsWith("removed:"));
    const removed = results.filter((r): r is string => r?.startsWith("removed:") ?? false).map((r) => r.slice(8));
    expect(claimed.filter((id) => removed.includes(id))).toEqual([]);
    expect([...claimed, ...removed].sort()).toEqual([...ids].sort());
    // A claimed record cannot be removed as unclaimed; a removed one is gone.
    for (const id of claimed) expect(await pool.removeUnclaimed(id)).toBe(false);
    for (const id of removed) expect(await pool.poolEntry(id)).toBeNull();
  });

  it("refreshes an owner's unclaimed records and keeps each instance's latest report", async () => {
    await warmUp("touch", 1);
    await pool.touchPool("f", "o", 9_999_999_999_999);
    expect((await pool.poolEntry("touch-sb-0"))?.seenAt).toBe(9_999_999_999_999);
    const report = {
      fleet: "f",
      owner: "o",
      key: "touch",
      target: 2,
      ready: 1,
      starting: 0,
      hits: 1,
      misses: 0,
      failures: 0,
    };
    await pool.reportPoolStatus({ ...report, at: 1 });
    await pool.reportPoolStatus({ ...report, hits: 2, at: 2 });
    expect(await pool.poolStatuses("f")).toEqual([{ ...report, hits: 2, at: 2 }]);
  });
});
