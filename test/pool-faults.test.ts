import { describe, expect, it } from "vitest";
import { freePort, type RunningService } from "../devtools/src/infra/index.js";
import { poolSlotHolder, type PoolEntry, type Session } from "../shared/src/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { terminalEvents } from "./support/jetstream.js";

const FLEET = "poolfaults";
/** Every spawner of this file: a short tick, no burst margin unless a test says otherwise. */
const SPAWNER_ENV = { FLEET_MAX_SANDBOXES: "4", FLEET_POOL_BURST: "0", FLEET_POOL_TICK_MS: "300" };
/** One warm agent kept at all times. */
const ONE_WARM = { ...SPAWNER_ENV, FLEET_POOL_MIN: "1", FLEET_POOL_MAX: "1" };
/** Long enough for a pooled agent to become ready on a loaded machine, short enough to wait for. */
const MAX_AGE_MS = 12_000;
/** Demand is counted over this window: a pool without claims in it falls to its minimum. */
const WINDOW_MS = 5_000;

describe("warm pool: a spawner killed mid-claim, max-age and idle reaping", () => {
  const fleet = useTestFleet({
    prefix: "poolf",
    model: { scenario: "demo" },
    env: {
      FLEET_NAME: FLEET,
      FLEET_ACK_WAIT_MS: "6000",
      POLLER_STATUS_INTERVAL_MS: "500",
      WATCHDOG_INTERVAL_MS: "500",
      REAPER_INTERVAL_MS: "1000",
      REAPER_GRACE_MS: "1000",
      REAPER_POOL_STALE_MS: "5000",
    },
    // Each test starts the spawner (and pool) it needs.
    services: [["gateway"], ["api"], ["poller"], ["watchdog"]],
    store: true,
    submitDefaults: { projectId: "p-poolf" },
    timeoutMs: 180_000,
  });

  const entries = (state?: PoolEntry["state"]) => fleet.store.poolEntries(FLEET, state ? { state } : {});
  const pooledSandboxes = async () => (await fleet.provider.list()).filter((s) => s.metadata.pool !== undefined);
  /** Ends a test's spawner (its pool kills its unclaimed sandboxes) and waits until the pool has left nothing. */
  const stopPool = async (spawner: RunningService) => {
    await spawner.process.stop(10_000);
    await eventually(async () => (await entries()).length === 0 && (await pooledSandboxes()).length === 0, 45_000, 250);
    await eventually(async () => !(await fleet.store.heldSlots()).some((s) => s.sessionId.startsWith("pool:")), 30_000);
  };

  // Two moments of the window between a claim and the prompt: before the claim has done anything
  // else (the sandbox's slot may still be the pool's, the session names no sandbox), and once the
  // sandbox is recorded on the session and its files are being restored.
  it.each([
    ["the moment its claim is stored", (_s: Session) => true],
    ["while it restores the session's files", (s: Session) => s.phase === "restoring"],
  ])(
    "a spawner SIGKILLed %s: the session completes once elsewhere, its claimed sandbox is killed and never reused",
    async (_when, at) => {
      // The spawner left running by the case before, or a new one.
      const first =
        fleet.services.find((x) => x.name === "spawner" && x.process.running) ?? (await fleet.add("spawner", ONE_WARM));
      await eventually(async () => (await entries("warm")).length >= 1, 90_000);
      // Many files: restoring them and their baseline commit widen the claim-to-prompt window (see the
      // restore time printed below), time for a store poll to see each moment.
      const files = Array.from({ length: 200 }, (_, i) => ({
        path: `src/m${i % 10}/f${i}.txt`,
        content: `file ${i}\n`.padEnd(3_500, "."),
      }));
      const id = await fleet.submit({ prompt: "many files, then the spawner dies", files });
      // The claim is in the store, the session is not running yet: the spawner dies.
      const { claimed, phase } = await eventually(
        async () => {
          const [claims, s] = await Promise.all([entries("claimed"), fleet.store.get(id)]);
          const e = claims.find((c) => c.sessionId === id);
          if (!e || s?.status !== "pending" || !at(s)) return undefined;
          process.kill(first.process.pid, "SIGKILL");
          return { claimed: e, phase: s.phase };
        },
        60_000,
        1,
      );
      const slotOf = (await fleet.store.heldSlots()).some((x) => x.sessionId === claimed.slotHolder)
        ? "pool"
        : "session";
      console.log(
        `pool faults: spawner killed with the claim stored, the session pending in phase ${phase}, the slot the ${slotOf}'s`,
      );
      expect(claimed).toMatchObject({ sessionId: id, attempt: 1, projectId: "p-poolf" });
      // Another session while the claimed sandbox still lives: it can only get a sandbox of its own.
      const otherId = await fleet.submit({ prompt: "another session" });
      // The redelivered request goes to another spawner, which takes a new attempt.
      await fleet.add("spawner", ONE_WARM);
      // Running again, it counts once under FLEET_MAX_SANDBOXES, on a warm sandbox or a cold one.
      await fleet.running(id, 150_000);
      const slots = (await fleet.store.heldSlots()).filter((x) => x.scope === "global" && x.sessionId === id);
      expect(slots).toHaveLength(1);
      const [s, other] = await Promise.all([fleet.ended(id, 150_000, 250), fleet.ended(otherId, 150_000, 250)]);
      expect(s.status, JSON.stringify(s.error)).toBe("completed");
      expect(other.status, JSON.stringify(other.error)).toBe("completed");
      // The kill came before the session ran: a later attempt completed it, on another sandbox.
      expect(s.attempt).toBeGreaterThan(1);
      console.log(
        `pool faults: attempt ${s.attempt} (${s.metrics.setup.warm ? "warm" : "cold"}) restored the 200 files in ${s.metrics.setup.restoreMs} ms`,
      );
      expect(s.sandbox?.id).toBeDefined();
      expect(s.sandbox?.id).not.toBe(claimed.sandboxId);
      expect(other.sandbox?.id).not.toBe(claimed.sandboxId);
      // Its record, while it lasts, still names the one session and attempt that claimed it.
      const record = await fleet.store.poolEntry(claimed.sandboxId);
      if (record) expect(record).toMatchObject({ state: "claimed", sessionId: id, attempt: 1 });
      // Exactly once: one terminal event for outside subscribers.
      const events = await eventually(async () => {
        const seen = await terminalEvents(fleet.namespace, id);
        return seen.length > 0 ? seen : undefined;
      }, 15_000);
      expect(events).toEqual(["completed"]);
      // Nothing of the dead attempt is left: its sandbox killed, its pool record gone, its slots freed.
      await eventually(async () => (await fleet.provider.connect(claimed.sandboxId)) === null, 30_000, 250);
      await eventually(async () => (await fleet.store.poolEntry(claimed.sandboxId)) === null, 30_000, 250);
      const alive = await fleet.provider.list();
      expect(alive.map((x) => x.id)).not.toContain(claimed.sandboxId);
      expect(alive.filter((x) => x.metadata.sessionId === id)).toEqual([]);
      await eventually(async () => {
        const held = (await fleet.store.heldSlots()).map((x) => x.sessionId);
        return !held.includes(id) && !held.includes(claimed.slotHolder ?? id);
      }, 30_000);
    },
    300_000,
  );

  it("replaces a warm sandbox older than FLEET_POOL_MAX_AGE_MS, its reason max_age in the metrics", async () => {
    for (const sp of fleet.services.filter((x) => x.name === "spawner" && x.process.running)) await stopPool(sp);
    const port = await freePort();
    const spawner = await fleet.add("spawner", {
      ...ONE_WARM,
      FLEET_POOL_MAX_AGE_MS: String(MAX_AGE_MS),
      SPAWNER_METRICS_PORT: String(port),
    });
    const first = await eventually(async () => (await entries())[0], 60_000, 100);
    await eventually(async () => (await reaps(port, "max_age")) >= 1, 90_000, 250);
    expect(Date.now() - first.createdAt).toBeGreaterThanOrEqual(MAX_AGE_MS);
    // The old one is gone with its record and its slot, and a younger one is warm in its place.
    await eventually(async () => (await fleet.provider.connect(first.sandboxId)) === null, 15_000);
    expect(await fleet.store.poolEntry(first.sandboxId)).toBeNull();
    expect((await fleet.store.heldSlots()).map((x) => x.sessionId)).not.toContain(first.slotHolder);
    const next = await eventually(
      async () => (await entries("warm")).find((e) => e.sandboxId !== first.sandboxId),
      60_000,
      100,
    );
    expect(next.createdAt).toBeGreaterThan(first.createdAt);
    // Demand never changed: nothing was reaped as surplus.
    expect(await reaps(port, "idle")).toBe(0);
    await stopPool(spawner);
  }, 240_000);

  it("a pool whose demand has gone shrinks to its minimum (here none), killing the surplus as idle", async () => {
    const port = await freePort();
    const since = Date.now();
    const spawner = await fleet.add("spawner", {
      ...SPAWNER_ENV,
      FLEET_POOL_MIN: "0",
      FLEET_POOL_MAX: "1",
      FLEET_POOL_BURST: "1",
      FLEET_POOL_WINDOW_MS: String(WINDOW_MS),
      SPAWNER_METRICS_PORT: String(port),
    });
    /** This spawner's latest report (the stopped ones report no more). */
    const report = () => eventually(async () => (await fleet.store.poolStatuses(FLEET)).find((r) => r.at >= since));
    // Without demand nothing is kept ready.
    expect(await report()).toMatchObject({ target: 0, ready: 0, starting: 0 });
    expect(await entries()).toEqual([]);
    // A session finds no ready agent and starts cold; its claim is demand, so the pool makes one.
    const id = await fleet.submit({ prompt: "demand" });
    const made = await eventually(async () => (await entries())[0], 30_000, 100);
    const s = await fleet.ended(id, 150_000, 250);
    expect(s.status, JSON.stringify(s.error)).toBe("completed");
    expect(s.metrics.setup.warm).toBeUndefined();
    // The window passes without a claim: the target falls to the minimum and the surplus is killed.
    await eventually(async () => (await reaps(port, "idle")) >= 1, 60_000, 250);
    await eventually(async () => (await fleet.provider.connect(made.sandboxId)) === null, 15_000);
    await eventually(async () => (await entries()).length === 0, 15_000);
    expect(await report()).toMatchObject({ target: 0 });
    expect((await fleet.store.heldSlots()).map((x) => x.sessionId)).not.toContain(made.slotHolder);
    // It was idleness, not age.
    expect(await reaps(port, "max_age")).toBe(0);
    await stopPool(spawner);
  }, 240_000);

  it("the reaper frees the pool slot of a sandbox claimed by a spawner that died before handing the slot to its session", async () => {
    const holder = "pool:claimed-then-lost";
    const sb = await fleet.provider.create({
      metadata: { fleet: FLEET, pool: "k-test", state: "warm", owner: "dead-spawner" },
      envs: {},
      timeoutMs: 60_000,
    });
    await sb.startBackground({ command: "sleep", args: ["60"] });
    await fleet.store.addPoolEntry({
      sandboxId: sb.id,
      fleet: FLEET,
      key: "k-test",
      owner: "dead-spawner",
      slotHolder: holder,
    });
    expect(await fleet.store.markPoolWarm(sb.id)).toBe(true);
    expect(await fleet.store.acquireSlot("global", 100, holder)).toBe(true);
    // What a spawner killed right after its claim leaves: the claim, the slot still the pool's, no session.
    const claim = { sessionId: "ses-claimed-then-lost", attempt: 1, projectId: "p-poolf" };
    expect(await fleet.store.claimPooled(FLEET, "k-test", claim)).toMatchObject({ sandboxId: sb.id, state: "claimed" });
    await eventually(async () => (await fleet.provider.connect(sb.id)) === null, 15_000);
    await eventually(async () => (await fleet.store.poolEntry(sb.id)) === null, 15_000);
    await eventually(async () => !(await fleet.store.heldSlots()).some((x) => x.sessionId === holder), 15_000);
  }, 60_000);

  it("frees a pool slot no sandbox was recorded for once its spawner has stopped reporting, and not while it reports", async () => {
    const status = (owner: string) => ({
      fleet: FLEET,
      owner,
      key: "k-test",
      target: 1,
      ready: 0,
      starting: 1,
      hits: 0,
      misses: 0,
      failures: 0,
      at: Date.now(),
    });
    // A spawner that took a slot for a new pooled sandbox and died before it recorded one; and one
    // still alive (it reports every tick) in the middle of the same step.
    const dead = poolSlotHolder("spawner-dead", "s1");
    const live = poolSlotHolder("spawner-live", "s2");
    await fleet.store.reportPoolStatus(status("spawner-dead"));
    expect(await fleet.store.acquireSlot("global", 100, dead)).toBe(true);
    expect(await fleet.store.acquireSlot("global", 100, live)).toBe(true);
    const reporting = setInterval(() => void fleet.store.reportPoolStatus(status("spawner-live")), 500);
    try {
      await eventually(async () => !(await fleet.store.heldSlots()).some((x) => x.sessionId === dead), 30_000, 250);
      // Past the same age, the live spawner's slot stays: it may record its sandbox yet.
      expect((await fleet.store.heldSlots()).map((x) => x.sessionId)).toContain(live);
    } finally {
      clearInterval(reporting);
      await fleet.store.releaseSlots(live);
    }
  }, 60_000);
});

/** `fleet_pool_reaps_total` of one reason (all keys), from a spawner's /metrics. */
async function reaps(port: number, reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^fleet_pool_reaps_total\{([^}]*)\} (\S+)$/gm))
    if (m[1]?.includes(`reason="${reason}"`)) total += Number(m[2]);
  return total;
}
