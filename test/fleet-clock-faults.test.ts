import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { describe, expect, it } from "vitest";
import { SCHEMA_VERSION, subjectFor } from "../shared/src/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";

/** Projects whose sandbox creates the simulated provider fails on purpose (FLEET_SIM_CREATE_FAULTS). */
const FAULTS = "p-rate=rate_limit:2,p-busy=transient:1,p-denied=permanent,p-stuck=transient:50";

/**
 * What an outside system and a user meet, through the real api, spawner, poller and watchdog
 * processes (simulated sandboxes and agent, so no OpenCode is needed): requests published on the bus
 * with a clock of their own, sandbox creates that fail the way a cloud provider fails, and `./fleet
 * cancel`.
 */
describe("the fleet's clock, provider faults and ./fleet cancel, with real services", () => {
  const fleet = useTestFleet({
    prefix: "clk",
    simulated: true,
    env: {
      FLEET_SIM_EVENTS: "2",
      // Long enough for the watchdog (every 500 ms) to see a session whose deadline has passed.
      FLEET_SIM_EVENT_MS: "1000",
      FLEET_SIM_CREATE_FAULTS: FAULTS,
      WATCHDOG_INTERVAL_MS: "500",
      REAPER_INTERVAL_MS: "500",
      REAPER_GRACE_MS: "200",
    },
    services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
    store: true,
    nats: true,
    submitDefaults: { prompt: "go" },
  });
  const ns = fleet.namespace;
  const ended = (id: string, timeoutMs = 60_000) => fleet.ended(id, timeoutMs, 100);
  const submit = (projectId: string) => fleet.submit({ projectId });
  const publishRequest = (sessionId: string, requestedAt: number) =>
    jetstream(fleet.nc).publish(
      subjectFor(ns, "requested"),
      JSON.stringify({
        v: SCHEMA_VERSION,
        sessionId,
        projectId: "p-bus",
        prompt: "go",
        config: { timeoutMs: 120_000 },
        requestedAt,
      }),
      { msgID: `requested:${sessionId}` },
    );

  it("bases deadline and queue order on when the fleet took a bus request, keeping the publisher's requestedAt", async () => {
    const id = `epoch-${ns}`;
    const before = Date.now();
    await publishRequest(id, 0);
    const acked = Date.now();
    const s = await ended(id);
    expect({ status: s.status, error: s.error }).toEqual({ status: "completed", error: undefined });
    expect(s.requestedAt).toBe(0);
    // When the stream stored the request (the bus server's clock, on this host): before its ack came.
    expect(s.createdAt).toBeGreaterThanOrEqual(before);
    expect(s.createdAt).toBeLessThanOrEqual(acked);
    expect(s.deadlineAt).toBe(s.createdAt + 120_000);
  }, 90_000);

  it("dead-letters a request dated more than 5 minutes ahead of the fleet's clock, with the reason, storing nothing", async () => {
    const id = `future-${ns}`;
    await publishRequest(id, Date.now() + 3_600_000);
    const dead = await eventually(
      async () => (await fleet.store.deadLetters({ limit: 100 })).find((d) => d.excerpt.includes(id)),
      20_000,
      100,
    );
    expect(dead.reason).toMatch(/requestedAt .* ahead of the fleet's clock/);
    expect(await fleet.store.get(id)).toBeNull();
  }, 30_000);

  it("retries sandbox creates refused for a rate limit or a transient error, with backoff, and the sessions complete", async () => {
    const [rate, busy] = [await submit("p-rate"), await submit("p-busy")];
    const [r, b] = await Promise.all([ended(rate), ended(busy)]);
    // A rate limit is a quota answer: the session waits in the queue within its first attempt.
    expect({ status: r.status, attempt: r.attempt, error: r.error }).toEqual({
      status: "completed",
      attempt: 1,
      error: undefined,
    });
    expect({ status: b.status, attempt: b.attempt, error: b.error }).toEqual({
      status: "completed",
      attempt: 2,
      error: undefined,
    });
    // Two refusals cost at least their Retry-After (FLEET_SIM_RETRY_AFTER_MS, 1 s by default) each.
    expect((r.startedAt ?? 0) - r.createdAt).toBeGreaterThanOrEqual(2_000);
    const spawner = fleet.logsOf("spawner").join("\n");
    expect(spawner).toContain("provider quota answer: session queued again");
    const { provider } = fleet;
    await eventually(
      async () =>
        (await provider.list({ sessionId: rate })).length + (await provider.list({ sessionId: busy })).length === 0,
      15_000,
      100,
    );
  }, 90_000);

  it("fails a session at once, with a clear code, when its sandbox can never be made", async () => {
    const id = await submit("p-denied");
    const s = await ended(id, 30_000);
    expect(s.status).toBe("failed");
    expect(s.attempt).toBe(1);
    expect(s.error?.code).toBe("sandbox");
    expect(s.error?.message).toMatch(/template not found; creating this sandbox cannot succeed/);
    expect(await fleet.provider.list({ sessionId: id })).toEqual([]);
  }, 60_000);

  it("cancels with ./fleet cancel ID --reason, and explains its usage", async () => {
    // Its creates keep failing, so it stays pending while the spawner backs off: a session to cancel.
    const id = await submit("p-stuck");
    await eventually(async () => (await fleet.get(id)).attempt >= 1, 20_000, 100);
    const home = mkdtempSync(join(tmpdir(), "fleet-cli-cancel-"));
    const cli = (args: string[]) => {
      const r = spawnSync(process.execPath, [join(import.meta.dirname, "..", "cli", "dist", "main.js"), ...args], {
        env: { ...process.env, FLEET_HOME: home, FLEET_API_URL: fleet.apiUrl, FLEET_API_KEY: fleet.apiKey },
        encoding: "utf8",
        timeout: 30_000,
      });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    try {
      expect(cli(["help"]).out).toContain("./fleet cancel <id>");
      expect(cli(["cancel", "--help"]).out).toContain("--reason");
      expect(cli(["cancel"])).toMatchObject({
        code: 2,
        err: expect.stringContaining("Not enough non-option arguments"),
      });
      expect(cli(["cancel", "no-such-session"])).toMatchObject({ code: 1, err: expect.stringContaining("404") });
      const done = cli(["cancel", id, "--reason", "not needed any more"]);
      expect(done, done.err).toMatchObject({ code: 0, out: expect.stringContaining(`cancel requested for ${id}`) });
      const s = await ended(id, 20_000);
      expect({ status: s.status, error: s.error }).toEqual({
        status: "cancelled",
        error: { code: "cancelled", message: "not needed any more" },
      });
      expect(cli(["cancel", id])).toMatchObject({ code: 1, err: expect.stringContaining("already ended") });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("a provider that keeps refusing for a rate limit, with real services", () => {
  const fleet = useTestFleet({
    prefix: "rl",
    simulated: true,
    // Three deliveries: a quota answer must not spend them.
    env: {
      FLEET_SIM_CREATE_FAULTS: "p-limited=rate_limit:5",
      FLEET_SIM_RETRY_AFTER_MS: "200",
      FLEET_MAX_DELIVER: "3",
    },
    services: [["api"], ["spawner"], ["poller"]],
    store: true,
  });

  it("never fails a session for the provider's rate limit: it waits, queued, past the delivery limit, and completes", async () => {
    const id = await fleet.submit({ projectId: "p-limited", prompt: "go" });
    let queued = false;
    const s = await eventually(
      async () => {
        const d = await fleet.store.get(id);
        if (d?.phase === "queued" && d.queuePosition !== undefined) queued = true;
        return d && ["completed", "failed", "cancelled"].includes(d.status) ? d : undefined;
      },
      60_000,
      50,
    );
    expect({ status: s.status, error: s.error, attempt: s.attempt }).toEqual({
      status: "completed",
      error: undefined,
      attempt: 1,
    });
    expect(queued).toBe(true);
    // Five refusals, each waited out for at least its Retry-After.
    expect((s.startedAt ?? 0) - s.createdAt).toBeGreaterThanOrEqual(5 * 200);
    const logs = fleet.logsOf("spawner").join("\n");
    expect(logs.split("provider quota answer: session queued again").length - 1).toBe(5);
    expect(await fleet.store.deadLetters({ limit: 10 })).toEqual([]);
  }, 90_000);
});
