import { describe, expect, it } from "vitest";
import { SCENARIOS } from "../devtools/src/model/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";

/** The plan's longest timeout, as E2B_MAX_TIMEOUT_MS tells the fleet: far shorter than the sessions. */
const MAX_TIMEOUT_MS = 20_000;

/**
 * Sessions longer than the E2B plan lets a sandbox live at a time, on the local E2B through the
 * fleet's e2b provider and a real OpenCode: the poller watching a session extends its sandbox's
 * timeout (E2B's set-timeout), and a sandbox that lapses anyway while watched ends its session
 * sandbox_lost with the cause.
 */
describe("long sessions on E2B, whose plan caps a sandbox's timeout", () => {
  const fleet = useTestFleet({
    prefix: "lifee2b",
    sandboxes: "e2b",
    // `slow`: one bash call of 30 s, then an answer.
    model: { scenario: "demo", byModel: SCENARIOS },
    env: {
      E2B_MAX_TIMEOUT_MS: String(MAX_TIMEOUT_MS),
      POLLER_STATUS_INTERVAL_MS: "500",
      REAPER_INTERVAL_MS: "1000",
    },
    services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
    submitDefaults: { projectId: "p-lifee2b", prompt: "a long task" },
  });

  it("extends the sandbox past the plan's maximum while the session runs, and it completes", async () => {
    const before = fleet.e2b.stats();
    const id = await fleet.submit({ model: "slow" });
    const s = await fleet.ended(id, 120_000, 250);
    expect({ status: s.status, error: s.error }).toEqual({ status: "completed", error: undefined });
    const lived = (s.completedAt ?? 0) - (s.startedAt ?? 0);
    expect(lived).toBeGreaterThan(MAX_TIMEOUT_MS);
    const after = fleet.e2b.stats();
    // Every third of the maximum while it ran (the first at once), and nothing lapsed.
    expect(after.timeoutsSet - before.timeoutsSet).toBeGreaterThanOrEqual(Math.floor(lived / MAX_TIMEOUT_MS) * 2);
    expect(after.expired - before.expired).toBe(0);
    console.log(
      `e2b lifetime: a sandbox kept ${lived} ms on ${MAX_TIMEOUT_MS} ms timeouts, ${after.timeoutsSet - before.timeoutsSet} extensions`,
    );
  }, 150_000);

  it("a sandbox that lapses while watched (E2B refuses the extensions) ends its session sandbox_lost, with the cause", async () => {
    const before = fleet.e2b.stats();
    const id = await fleet.submit({ model: "slow" });
    const running = await fleet.running(id, 90_000, 250);
    // The poller extends once as its watch starts; from then on, E2B fails every set-timeout.
    await eventually(() => fleet.e2b.stats().timeoutsSet > before.timeoutsSet, 30_000, 100);
    fleet.e2b.setFaults({ failSetTimeouts: 1_000 });
    try {
      const s = await fleet.ended(id, 60_000, 250);
      expect(s.status).toBe("failed");
      expect(s.error?.code).toBe("sandbox_lost");
      expect(s.error?.message).toMatch(
        new RegExp(
          `^the sandbox ended under the agent: its provider timeout lapsed at \\S+ \\(last set at \\S+; the provider allows ${MAX_TIMEOUT_MS} ms at a time\\)`,
        ),
      );
      // The sandbox is past its end as soon as it lapses; the local E2B's sweep counts it within ~250 ms.
      await eventually(() => fleet.e2b.stats().expired - before.expired === 1, 10_000, 100);
      const stats = fleet.e2b.stats();
      expect(stats.expired - before.expired).toBe(1);
      expect(stats.timeoutsFailed).toBeGreaterThan(0);
      expect(fleet.e2b.sandboxIds()).not.toContain(running.sandbox?.id);
      // The extensions that failed were said, and the end is in the session's own log for its readers.
      expect(fleet.logsOf("poller").join("\n")).toContain("could not extend the sandbox's timeout");
      const log = await api<{ lines: Array<{ line: string }> }>(fleet, "GET", `/v1/sessions/${id}/logs`);
      expect(log.body.lines.map((l) => l.line).join("\n")).toContain("its provider timeout lapsed");
    } finally {
      fleet.e2b.setFaults({});
    }
  }, 150_000);
});
