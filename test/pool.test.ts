import { describe, expect, it } from "vitest";
import type { PoolEntry, Session } from "../shared/src/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";

const FLEET = "pooltest";
/** Pooled sandboxes kept ready; fewer than the sessions that race for them. */
const POOL = 2;

/** The pool settings of the fleet's spawner (also for one started again after a kill). */
const POOL_ENV = {
  FLEET_MAX_SANDBOXES: "4",
  FLEET_POOL_MAX: String(POOL),
  FLEET_POOL_MIN: String(POOL),
  FLEET_POOL_BURST: "0",
  FLEET_POOL_TICK_MS: "300",
};

describe("warm pool: ready agents claimed by exactly one session each", () => {
  const fleet = useTestFleet({
    prefix: "pool",
    model: { scenario: "demo" },
    env: {
      FLEET_NAME: FLEET,
      POLLER_STATUS_INTERVAL_MS: "500",
      WATCHDOG_INTERVAL_MS: "500",
      REAPER_INTERVAL_MS: "1000",
      REAPER_GRACE_MS: "1000",
      REAPER_POOL_STALE_MS: "10000",
    },
    services: [["gateway"], ["api"], ["spawner", POOL_ENV], ["poller"], ["watchdog"]],
    store: true,
    submitDefaults: { projectId: "p-pool" },
    timeoutMs: 180_000,
  });

  const entries = (state?: PoolEntry["state"]) => fleet.store.poolEntries(FLEET, state ? { state } : {});
  const warmPool = () =>
    eventually(async () => ((await entries("warm")).length >= POOL ? entries("warm") : undefined), 90_000, 200);

  it("fills the pool, and sessions racing for fewer pooled sandboxes all complete, each sandbox serving one", async () => {
    const warm = await warmPool();
    expect(warm).toHaveLength(POOL);
    // Nothing of a session reaches a warm sandbox before its claim: no session, no slot of a session.
    for (const e of warm) expect(e.sessionId).toBeUndefined();
    // What `./fleet pool` shows: the spawner's report for the key, its target the configured minimum.
    const [status] = await fleet.store.poolStatuses(FLEET);
    expect(status).toMatchObject({ key: warm[0]?.key, target: POOL });

    const ids = await Promise.all(
      Array.from({ length: POOL + 2 }, (_, i) =>
        fleet.submit({ prompt: `race ${i}`, files: [{ path: `in-${i}.txt`, content: `file ${i}\n` }] }),
      ),
    );
    const done: Session[] = [];
    for (const id of ids) done.push(await fleet.ended(id, 150_000));
    for (const s of done) expect(s.status, JSON.stringify(s.error)).toBe("completed");

    // Every session had a sandbox of its own; the warm ones are those the pool's records name.
    const sandboxes = done.map((s) => s.sandbox?.id);
    expect(new Set(sandboxes).size).toBe(done.length);
    const warmRuns = done.filter((s) => s.metrics.setup.warm === true);
    expect(warmRuns.length).toBeGreaterThanOrEqual(POOL);
    expect((await fleet.store.poolStatuses(FLEET))[0]?.hits).toBeGreaterThanOrEqual(POOL);
    for (const s of warmRuns) {
      expect(s.sandbox?.pooled).toBe(true);
      expect(s.metrics.setup.serverStartMs).toBe(0);
      const entry = await fleet.store.poolEntry(s.sandbox?.id ?? "");
      // The claim's record names this session, or the reaper has removed it since the session ended.
      if (entry) expect(entry).toMatchObject({ state: "claimed", sessionId: s.id, attempt: s.attempt });
    }
    // A claimed record names exactly one session, and no session's sandbox is claimed by another.
    const claimed = await entries("claimed");
    for (const e of claimed)
      expect(done.find((s) => s.sandbox?.id === e.sandboxId)?.id ?? e.sessionId).toBe(e.sessionId);
    // The cold ones started their own server.
    for (const s of done.filter((x) => x.metrics.setup.warm !== true)) {
      expect(s.sandbox?.pooled).toBeUndefined();
      expect(s.metrics.setup.serverStartMs ?? 0).toBeGreaterThan(0);
    }
    // No sandbox outlives its session, the pooled ones included.
    await eventually(async () => {
      const alive = new Set((await fleet.provider.list()).map((s) => s.id));
      return sandboxes.every((id) => id === undefined || !alive.has(id));
    }, 30_000);
  }, 240_000);

  it("restores the session's files into a warm workspace and the agent's diff holds only its own work", async () => {
    await warmPool();
    const id = await fleet.submit({ prompt: "warm files", files: [{ path: "restored.txt", content: "kept\n" }] });
    const s = await fleet.ended(id, 120_000);
    expect(s.status, JSON.stringify(s.error)).toBe("completed");
    expect(s.metrics.setup.warm).toBe(true);
    const diffPaths = (s.output?.diffs ?? []).map((d) => d.file);
    expect(diffPaths).not.toContain("restored.txt");
    const lines = (
      await api<{ lines: Array<{ line: string }> }>(fleet, "GET", `/v1/sessions/${id}/logs`)
    ).body.lines.map((l) => l.line);
    expect(lines.some((l) => l.includes("claimed from the pool"))).toBe(true);
    // The setup breakdown says so.
    const metrics = await api<{ startedWarm: boolean; steps: Array<{ step: string }> }>(
      fleet,
      "GET",
      `/v1/sessions/${id}/metrics`,
    );
    expect(metrics.body.startedWarm).toBe(true);
    expect(metrics.body.steps.map((x) => x.step)).toContain("claim");
  }, 180_000);

  it("skips a pooled sandbox that died before its claim, and the session still completes", async () => {
    const warm = await warmPool();
    for (const e of warm) await fleet.provider.kill(e.sandboxId);
    const id = await fleet.submit({ prompt: "after the pool died" });
    const s = await fleet.ended(id, 120_000);
    expect(s.status, JSON.stringify(s.error)).toBe("completed");
    expect(warm.map((e) => e.sandboxId)).not.toContain(s.sandbox?.id);
  }, 180_000);

  it("the reaper kills pooled sandboxes abandoned by their owner or without a record, and frees their slots", async () => {
    const stale = await fleet.provider.create({
      metadata: { fleet: FLEET, pool: "k-test", state: "warm", owner: "dead-instance" },
      envs: {},
      timeoutMs: 60_000,
    });
    await stale.startBackground({ command: "sleep", args: ["60"] });
    await fleet.store.addPoolEntry({
      sandboxId: stale.id,
      fleet: FLEET,
      key: "k-test",
      owner: "dead-instance",
      slotHolder: "pool:dead-holder",
    });
    await fleet.store.acquireSlot("global", 100, "pool:dead-holder");
    const orphan = await fleet.provider.create({
      metadata: { fleet: FLEET, pool: "k-test", state: "warm", owner: "dead-instance" },
      envs: {},
      timeoutMs: 60_000,
    });
    // The owner never refreshes its record: past REAPER_POOL_STALE_MS the reaper takes it.
    await eventually(async () => (await fleet.provider.connect(orphan.id)) === null, 15_000);
    await eventually(async () => (await fleet.provider.connect(stale.id)) === null, 30_000);
    expect(await fleet.store.poolEntry(stale.id)).toBeNull();
    await eventually(
      async () => !(await fleet.store.heldSlots()).some((s) => s.sessionId === "pool:dead-holder"),
      10_000,
    );
  }, 60_000);

  it("never holds more sandboxes than FLEET_MAX_SANDBOXES, pooled ones included", async () => {
    await warmPool();
    const ids = await Promise.all(Array.from({ length: 5 }, (_, i) => fleet.submit({ prompt: `cap ${i}` })));
    let most = 0;
    const watching = (async () => {
      for (;;) {
        const slots = (await fleet.store.heldSlots()).filter((s) => s.scope === "global").length;
        most = Math.max(most, slots);
        const ss = await Promise.all(ids.map((id) => fleet.get(id)));
        if (ss.every((s) => ["completed", "failed", "cancelled"].includes(s.status))) return ss;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const done = await watching;
    for (const s of done) expect(s.status, JSON.stringify(s.error)).toBe("completed");
    expect(most).toBeLessThanOrEqual(4);
    expect((await fleet.provider.list()).length).toBeLessThanOrEqual(4);
  }, 300_000);

  it("a pool owner killed with SIGKILL and claims whose spawner died leave nothing behind, and nothing is used twice", async () => {
    const done = await fleet.ended(await fleet.submit({ prompt: "before the kill" }), 120_000);
    expect(done.status).toBe("completed");
    const warm = await warmPool();
    // Claims whose spawner died before it recorded the sandbox on the session: one for a session
    // that has ended since, one for a session the store never had.
    const ghosts = await fleet.store.poolEntries(FLEET, { state: "warm" });
    const key = warm[0]?.key ?? "";
    const a = await fleet.store.claimPooled(FLEET, key, {
      sessionId: done.id,
      attempt: done.attempt,
      projectId: "p-pool",
    });
    const b = await fleet.store.claimPooled(FLEET, key, {
      sessionId: "ses-never-was",
      attempt: 1,
      projectId: "p-pool",
    });
    expect(a && b).toBeTruthy();
    // The pool's owner dies while it refills (or holds) what is left.
    const owner = fleet.services.find((x) => x.name === "spawner" && x.process.running);
    expect(owner).toBeDefined();
    process.kill(owner?.process.pid ?? 0, "SIGKILL");
    // The reaper kills the ghosts' sandboxes and everything the dead owner kept, recorded or not.
    await eventually(
      async () => (await fleet.provider.list()).every((x) => x.metadata.pool === undefined),
      45_000,
      250,
    );
    // Their records go too: a reaped sandbox's at once, a claimed one whose sandbox is gone at a later
    // sweep (after the grace), so the state is awaited rather than read once.
    await eventually(async () => (await fleet.store.poolEntries(FLEET)).length === 0, 30_000, 250);
    // A spawner started again fills the pool anew; its sessions never get a ghost's sandbox.
    await fleet.add("spawner", POOL_ENV);
    const id = await fleet.submit({ prompt: "after the kill" });
    const s = await fleet.ended(id, 120_000);
    expect(s.status, JSON.stringify(s.error)).toBe("completed");
    expect(ghosts.map((g) => g.sandboxId)).not.toContain(s.sandbox?.id);
  }, 240_000);
});
