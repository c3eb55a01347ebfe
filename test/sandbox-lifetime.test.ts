import { describe, expect, it } from "vitest";
import { readSimulatedState } from "../devtools/src/simulated/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";

/** The provider's longest timeout: far shorter than the sessions, as E2B's hour is for a long session. */
const MAX_TIMEOUT_MS = 3_000;
const EVENTS = 8;
const EVENT_MS = 1_000;

/**
 * Sessions longer than the provider lets a sandbox live at a time (simulated provider with
 * FLEET_SIM_MAX_TIMEOUT_MS, which ends a sandbox at its timeout as E2B does), behind the real api,
 * spawner, poller and watchdog.
 */
describe("long sessions on a provider that caps a sandbox's lifetime", () => {
  const fleet = useTestFleet({
    prefix: "life",
    simulated: true,
    env: {
      FLEET_SIM_MAX_TIMEOUT_MS: String(MAX_TIMEOUT_MS),
      FLEET_SIM_EVENTS: String(EVENTS),
      FLEET_SIM_EVENT_MS: String(EVENT_MS),
      POLLER_STATUS_INTERVAL_MS: "250",
      REAPER_INTERVAL_MS: "500",
      REAPER_GRACE_MS: "200",
    },
    services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
    submitDefaults: { projectId: "p-life", prompt: "a long task" },
  });

  it("extends a running sandbox's timeout while its session runs, and the session completes", async () => {
    const id = await fleet.submit();
    const s = await fleet.ended(id, 60_000, 100);
    expect({ status: s.status, error: s.error }).toEqual({ status: "completed", error: undefined });
    const ran = (s.completedAt ?? 0) - (s.startedAt ?? 0);
    expect(ran).toBeGreaterThan(2 * MAX_TIMEOUT_MS);
    // The sandbox is killed just after the session's end is written: wait for it.
    const state = await eventually(async () => {
      const st = await readSimulatedState(fleet.simDir, s.sandbox?.id ?? "");
      return st?.killedAt !== undefined ? st : undefined;
    }, 10_000);
    // Kept alive past the provider's maximum, never lapsed.
    expect(state?.expiredAt).toBeUndefined();
    // At least one extension per third of the maximum while it ran.
    expect(state?.extensions).toBeGreaterThanOrEqual(Math.floor(ran / MAX_TIMEOUT_MS) * 2);
    console.log(`lifetime: a ${ran} ms session on ${MAX_TIMEOUT_MS} ms timeouts, ${state?.extensions} extensions`);
  }, 90_000);

  it("ends a session whose sandbox lapsed while no poller watched it sandbox_lost, with the cause", async () => {
    const id = await fleet.submit();
    await fleet.running(id, 30_000, 100);
    const poller = fleet.services.find((x) => x.name === "poller" && x.process.running);
    if (!poller) throw new Error("no running poller");
    await poller.process.stop(10_000);
    // Nothing extends it now: the provider ends it at its timeout.
    const running = await fleet.get(id);
    const sandboxId = running.sandbox?.id ?? "";
    await eventually(async () => (await readSimulatedState(fleet.simDir, sandboxId))?.alive === false, 15_000, 100);
    const state = await readSimulatedState(fleet.simDir, sandboxId);
    expect(state?.expiredAt).toBeDefined();
    await fleet.add("poller");
    const s = await fleet.ended(id, 30_000, 100);
    expect(s.status).toBe("failed");
    expect(s.error?.code).toBe("sandbox_lost");
    expect(s.error?.message).toMatch(
      new RegExp(`^sandbox ${sandboxId} is gone: its provider timeout \\(${MAX_TIMEOUT_MS} ms at a time\\) lapsed`),
    );
    expect(fleet.logsOf("poller").join("\n")).toContain("sandbox gone before the watch");
  }, 90_000);
});
