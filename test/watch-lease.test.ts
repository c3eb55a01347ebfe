import { readFileSync } from "node:fs";
import { jetstreamManager } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { WatchLease } from "../services/poller/src/lease.js";
import { SessionConfig, streamName, subjectFor } from "../shared/src/index.js";
import { terminalEvents } from "./support/cluster-checks.js";
import { eventually, logger, present } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";

const EVENTS = 16;
const LEASE_MS = 3_000;

/**
 * The watch lease (docs/guarantees.md §9): a session whose held session.running message the bus
 * loses is still watched to its end, because its lease lapses and the watchdog publishes the
 * message again for another poller.
 */
describe("the watch lease", () => {
  const fleet = useTestFleet({
    prefix: "wl",
    simulated: true,
    env: {
      FLEET_SIM_EVENTS: String(EVENTS),
      FLEET_SIM_EVENT_MS: "300",
      FLEET_WATCH_ACK_WAIT_MS: "4000",
      FLEET_WATCH_LEASE_MS: String(LEASE_MS),
      WATCHDOG_LEASE_GRACE_MS: "500",
      WATCHDOG_INTERVAL_MS: "300",
      POLLER_STATUS_INTERVAL_MS: "300",
      REAPER_INTERVAL_MS: "1000",
    },
    services: [["api"], ["spawner"], ["poller"], ["poller"], ["watchdog"]],
    store: true,
    nats: true,
    submitDefaults: { projectId: "p-wl", prompt: "go" },
  });
  const logOf = (file: string, id: string) =>
    readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l.includes(`"sessionId":"${id}"`));
  const watching = (file: string, id: string) => logOf(file, id).some((l) => l.includes("watching session"));

  it.concurrent("a held session.running deleted from the stream: the lease lapses, another poller completes the session once", async () => {
    const id = await fleet.submit();
    await fleet.running(id, 60_000, 100);
    const pollers = fleet.services.filter((s) => s.name === "poller");
    const owner = await eventually(() => pollers.find((p) => watching(p.process.logFile, id)), 30_000, 100);
    const other = present(
      pollers.find((p) => p !== owner),
      "a second poller",
    );
    // The owner stalls (no heartbeat, no renewal) while its message is lost on the bus: nothing
    // redelivers it, so only the lease can bring the session back to a poller.
    process.kill(owner.process.pid, "SIGSTOP");
    try {
      const jsm = await jetstreamManager(fleet.nc);
      const work = streamName(fleet.namespace, "work");
      const held = await jsm.streams.getMessage(work, { last_by_subj: subjectFor(fleet.namespace, "running") });
      expect(present(held, "the running message").json<{ sessionId: string }>().sessionId).toBe(id);
      expect(await jsm.streams.deleteMessage(work, present(held, "held").seq)).toBe(true);
      await eventually(() => watching(other.process.logFile, id), 30_000, 100);
    } finally {
      process.kill(owner.process.pid, "SIGCONT");
    }
    const ended = await fleet.ended(id, 60_000, 200);
    expect(ended.status, ended.error?.message).toBe("completed");
    // One republish round, taken by one watchdog, under a new message id.
    expect(ended.rewatches).toBe(1);
    const watchdog = present(
      fleet.services.find((s) => s.name === "watchdog"),
      "watchdog",
    );
    expect(
      logOf(watchdog.process.logFile, id).filter((l) => l.includes("publishing session.running again")),
    ).toHaveLength(1);
    // Every line once, in order; each simulated step once; one terminal event. The archiver stores
    // batches two at a time, so the last line can be stored just before the one ahead of it: the
    // log is read once it is whole up to its last line (a line never stored fails here).
    const lines = await eventually(
      async () => {
        const ls = await fleet.store.logs(id, { limit: 1_000 });
        const whole = ls.every((l, i) => l.seq === i + 1);
        return whole && ls.some((l) => l.line.startsWith("Finished in")) ? ls : undefined;
      },
      30_000,
      200,
    );
    expect(lines.at(-1)?.line).toMatch(/^Finished in/);
    for (let i = 1; i <= EVENTS; i++)
      expect(
        lines.some((l) => new RegExp(`simulated step ${i}\\b`).test(l.line)),
        `step ${i}`,
      ).toBe(true);
    expect(new Set(lines.map((l) => l.line)).size).toBe(lines.length);
    expect((await terminalEvents(fleet.nc, fleet.namespace)).get(id)).toHaveLength(1);
    // Awake again, the stalled owner let the session go and wrote nothing more for it.
    await eventually(
      () => readFileSync(owner.process.logFile, "utf8").includes("another instance takes them over"),
      10_000,
      100,
    );
    expect(logOf(owner.process.logFile, id).filter((l) => l.includes("watching session"))).toHaveLength(1);
  }, 120_000);

  it.concurrent("renews no sooner than half the lease, and a watch that lost its lease learns it at the next renewal", async () => {
    const config = SessionConfig.parse({});
    const store = fleet.store;
    const id = `lease-unit-${Date.now()}`;
    await store.create({ id, projectId: "p-wl", prompt: "x", config });
    await store.claimAttempt(id, 1);
    const startedAt = Date.now();
    const running = present(
      await store.transition(id, { from: ["pending"], to: "running", set: { startedAt } }),
      "running",
    );
    const lease = new WatchLease(store, running, 0, 60_000, logger);
    // Within the first half of the lease: no write at all (a session that ends by then costs nothing).
    expect(await lease.renewIfDue(startedAt + 29_000)).toBe("held");
    expect((await store.get(id))?.watchedUntil).toBeUndefined();
    expect(lease.valid(startedAt + 59_000)).toBe(true);
    expect(lease.valid(startedAt + 60_000)).toBe(false);
    // Half gone: one renewal, which names this watch.
    expect(await lease.renewIfDue(startedAt + 30_000)).toBe("held");
    const renewed = present(await store.get(id), "renewed");
    expect(renewed.watchedBy).toBeDefined();
    expect(renewed.watchedUntil).toBeGreaterThanOrEqual(startedAt + 60_000);
    // A second watch of the same round (a redelivery) that read the document takes it over ...
    const next = new WatchLease(store, renewed, 0, 60_000, logger);
    expect(await next.renewIfDue(Number.MAX_SAFE_INTEGER)).toBe("held");
    // ... and the first learns it lost the lease at its next renewal.
    expect(await lease.renewIfDue(Number.MAX_SAFE_INTEGER)).toBe("lost");
    expect(lease.takenFrom(present(await store.get(id), "taken"))).toBe(true);
  });
});
