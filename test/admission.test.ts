import { describe, expect, it } from "vitest";
import { SCENARIOS, type ScenarioInput } from "../devtools/src/model/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";

describe("admission caps", () => {
  const fleet = useTestFleet({
    prefix: "adm",
    model: { scenario: "text-only", byModel: { slow: SCENARIOS.slow as ScenarioInput } },
    env: { FLEET_MAX_SANDBOXES: "1", POLLER_STATUS_INTERVAL_MS: "300" },
    services: [["api"], ["spawner"], ["spawner"], ["poller"], ["watchdog"]],
    submitDefaults: { projectId: "p-adm" },
  });

  it("queues requests over the cap in order, shows their place, and runs them all, one sandbox at a time", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await fleet.submit({ prompt: `q${i}` }));
      await new Promise((r) => setTimeout(r, 20));
    }
    let peak = 0;
    const positions = new Map<string, Set<number>>();
    const done = await eventually(
      async () => {
        peak = Math.max(peak, (await fleet.provider.list()).length);
        const docs = await Promise.all(ids.map((id) => fleet.get(id)));
        for (const d of docs)
          if (d.phase === "queued" && d.queuePosition !== undefined)
            positions.set(d.id, new Set([...(positions.get(d.id) ?? []), d.queuePosition]));
        return docs.every((d) => d.status === "completed") ? docs : undefined;
      },
      150_000,
      100,
    );
    expect(peak).toBe(1);
    // Started in the order they were submitted.
    const started = [...done].sort((a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0)).map((d) => d.id);
    expect(started).toEqual(ids);
    // The last one was seen waiting behind the others.
    expect([...(positions.get(ids[2] as string) ?? [])].some((p) => p >= 1)).toBe(true);
    expect(done.every((d) => d.error === undefined)).toBe(true);
  }, 200_000);

  it("runs a queued request whose spawner stopped while it waited: another spawner takes it over", async () => {
    const { get, submit } = fleet;
    const holder = await submit({ prompt: "hold the slot", model: "slow" });
    await fleet.running(holder, 60_000);
    const queued = await submit({ prompt: "wait for it" });
    await eventually(async () => (await get(queued)).phase === "queued", 30_000);
    // Every spawner goes (each releases what it holds at shutdown); a new one comes.
    for (const s of fleet.services.filter((x) => x.name === "spawner")) await s.process.stop();
    await fleet.add("spawner");
    const done = await eventually(
      async () => {
        const d = await get(queued);
        return d.status !== "pending" && d.status !== "running" ? d : undefined;
      },
      120_000,
      200,
    );
    expect(done.status).toBe("completed");
    // Each spawner that took the request over claimed the next attempt.
    expect(done.attempt).toBeGreaterThan(1);
    expect((await get(holder)).status).toBe("completed");
  }, 200_000);
});
