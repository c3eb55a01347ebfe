import { describe, expect, it } from "vitest";
import { FleetHttpClient } from "../client/src/index.js";
import { readSimulatedState, simulatedIdleAt } from "../devtools/src/simulated/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";

const SESSIONS = 20;
const EVENTS = 4;
const EVENT_MS = 25;

/**
 * The simulated provider and agent (benchmarks only) behind the real api, spawner, poller and
 * watchdog processes: sessions go all the way through, and no simulated sandbox outlives them.
 */
describe("simulated sandboxes and agent through the real services", () => {
  const fleet = useTestFleet({
    prefix: "sim",
    simulated: true,
    env: {
      FLEET_SIM_EVENTS: String(EVENTS),
      FLEET_SIM_EVENT_MS: String(EVENT_MS),
      FLEET_MAX_SANDBOXES: "0",
      REAPER_INTERVAL_MS: "500",
      REAPER_GRACE_MS: "200",
    },
    services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
  });

  it(`completes ${SESSIONS} sessions with the scripted log lines, leaving no sandbox alive`, async () => {
    const client = new FleetHttpClient({ baseUrl: fleet.apiUrl, apiKey: fleet.apiKey });
    const started = Date.now();
    const ids = await Promise.all(
      Array.from(
        { length: SESSIONS },
        async (_, i) => (await client.submit({ projectId: "p-sim", prompt: `task ${i}` })).sessionId,
      ),
    );
    const done = await Promise.all(
      ids.map((id) =>
        eventually(
          async () => {
            const s = await client.get(id);
            return ["completed", "failed", "cancelled"].includes(s.status) ? s : undefined;
          },
          60_000,
          100,
        ),
      ),
    );
    console.log(`simulated: ${SESSIONS} sessions submitted and ended in ${Date.now() - started} ms`);
    for (const s of done) {
      expect(s.status, `${s.id}: ${s.error?.message ?? ""}`).toBe("completed");
      expect(s.attempt).toBe(1);
      expect(s.sandbox?.provider).toBe("simulated");
      expect(s.output?.toolCalls).toHaveLength(EVENTS);
      const lines = await client.logs(s.id);
      expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
      const steps = Array.from({ length: EVENTS }, (_, i) => `echo simulated step ${i + 1}`);
      expect(lines.filter((l) => l.line.startsWith("✓ Bash")).map((l) => l.line)).toEqual(
        steps.map((c) => `✓ Bash ${c}`),
      );
      expect(lines.filter((l) => l.line.startsWith("▸ Bash")).map((l) => l.line)).toEqual(
        steps.map((c) => `▸ Bash ${c}`),
      );
      expect(lines.some((l) => l.line.startsWith(`Sandbox ${s.sandbox?.id} ready (simulated`))).toBe(true);
      expect(lines.at(-1)?.line).toMatch(new RegExp(`^Finished in .*: ${EVENTS} tool call\\(s\\), 2 message\\(s\\)$`));

      // What a benchmark reads afterwards: when the agent went idle, against when the fleet recorded the end.
      const state = await readSimulatedState(fleet.simDir, s.sandbox?.id ?? "");
      expect(state?.alive).toBe(false);
      const idleAt = simulatedIdleAt(state ?? { events: 0, eventMs: 0 });
      expect(idleAt).toBe((state?.promptedAt ?? 0) + EVENTS * EVENT_MS);
      expect(s.completedAt).toBeGreaterThanOrEqual(idleAt ?? Infinity);
    }
    await eventually(async () => (await fleet.provider.list()).length === 0, 10_000);
  }, 120_000);

  it("lets the watchdog in its own process list and reap a simulated sandbox of no session", async () => {
    const orphan = await fleet.provider.create({
      metadata: { fleet: "fleet", sessionId: `unknown-${fleet.namespace}`, projectId: "p-sim", attempt: "1" },
      envs: {},
      timeoutMs: 60_000,
    });
    expect(await orphan.isAlive()).toBe(true);
    await eventually(async () => !(await orphan.isAlive()), 15_000, 100);
    expect(fleet.logsOf("watchdog").join("\n")).toContain(orphan.id);
  }, 30_000);
});
