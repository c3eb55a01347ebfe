import { readFileSync } from "node:fs";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, inject, it } from "vitest";
import { streamName, subjectFor, type Session } from "../shared/src/index.js";
import { SCENARIOS, type ScenarioInput } from "../devtools/src/model/index.js";
import { eventually, present, sleep } from "./support/fixtures.js";
import { SANDBOX_KINDS, useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";

/** Several short steps, so a session runs long enough to lose a process in the middle of it. */
const steps: ScenarioInput = {
  name: "steps",
  turns: [
    ...[1, 2, 3, 4, 5].map((i) => ({
      type: "tools" as const,
      calls: [{ name: "bash", arguments: { command: `sleep 1; echo step ${i}` } }],
    })),
    { type: "text" as const, text: "All steps done." },
  ],
};

describe.each(SANDBOX_KINDS)("control and failover with real processes on %s sandboxes", (kind) => {
  // On the local E2B (SANDBOX_PROVIDER=e2b) the scenarios where the sandbox provider matters run:
  // cancel, deadline, a lost sandbox, a spawner or poller killed, the reaper. The rest is the fleet's.
  const localOnly = kind === "local" ? it : undefined;
  const fleet = useTestFleet({
    prefix: kind === "local" ? "fo" : `fo${kind}`,
    sandboxes: kind,
    model: { scenario: "demo", byModel: { ...SCENARIOS, steps } },
    env: {
      FLEET_ACK_WAIT_MS: "4000",
      FLEET_WATCH_ACK_WAIT_MS: "4000",
      POLLER_STATUS_INTERVAL_MS: "500",
      POLLER_QUIET_MS: "8000",
      POLLER_ESCALATION_STEP_MS: "1500",
      WATCHDOG_INTERVAL_MS: "500",
      REAPER_INTERVAL_MS: "1000",
      REAPER_GRACE_MS: "2000",
    },
    services: [["api"], ["spawner"], ["poller"], ["poller"], ["watchdog"]],
    store: true,
    submitDefaults: { projectId: "p-fo", prompt: "go" },
  });
  const { submit, get, ended, running, noSandbox } = fleet;
  const ns = fleet.namespace;
  /** A session's cancel requests and terminal events in the fleet's events stream, in order. */
  const eventsOf = async (id: string): Promise<string[]> => {
    const nc = await connect({ servers: inject("natsUrl") });
    try {
      const filters = (["cancel", "completed", "failed", "cancelled"] as const).map((k) => subjectFor(ns, k));
      const consumer = await jetstream(nc).consumers.get(streamName(ns, "events"), {
        filter_subjects: filters,
        deliver_policy: DeliverPolicy.All,
      });
      const seen: string[] = [];
      for (let m = await consumer.next({ expires: 1_000 }); m; m = await consumer.next({ expires: 1_000 })) {
        const sessionId = m.json<{ sessionId: string }>().sessionId;
        if (sessionId === id) seen.push(`${m.subject.slice(ns.length + 1)} ${sessionId}`);
      }
      return seen;
    } finally {
      await nc.close();
    }
  };
  /** A session of several steps, once its first step ran, and the poller watching it. */
  const watchedMidway = async () => {
    const id = await submit({ model: "steps" });
    await running(id);
    await eventually(
      async () =>
        (await api<{ lines: Array<{ line: string }> }>(fleet, "GET", `/v1/sessions/${id}/logs`)).body.lines.some((l) =>
          l.line.includes("step 1"),
        ),
      30_000,
    );
    const owner = present(
      fleet.services.find((x) => x.name === "poller" && x.process.running && hasWatchLine(x.process.logFile, id)),
      "the poller watching it",
    );
    return { id, owner };
  };
  /** The session completes with every log line once, in order: each step's start and end once. */
  const completesWhole = async (id: string) => {
    const s = await ended(id, 90_000);
    expect(s.status).toBe("completed");
    const lines = (await api<{ lines: Array<{ seq: number; line: string }> }>(fleet, "GET", `/v1/sessions/${id}/logs`))
      .body.lines;
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    const toolLines = lines.map((l) => l.line).filter((l) => l.startsWith("▸") || l.startsWith("✓"));
    expect(new Set(toolLines).size).toBe(toolLines.length);
    for (const i of [1, 2, 3, 4, 5]) expect(toolLines.filter((l) => l.includes(`echo step ${i}`))).toHaveLength(2);
    return { s, lines };
  };
  /** The terminal state holds: a while later nothing has rewritten it. */
  const stays = async (s: Session) => {
    await sleep(1_500);
    const again = await get(s.id);
    expect({ status: again.status, error: again.error, completedAt: again.completedAt }).toEqual({
      status: s.status,
      error: s.error,
      completedAt: s.completedAt,
    });
  };

  it("cancels a running session over HTTP: cancelled, sandbox killed, and it stays cancelled", async () => {
    const id = await submit({ model: "slow" });
    await running(id);
    expect((await api(fleet, "POST", `/v1/sessions/${id}/cancel`, { reason: "changed my mind" })).status).toBe(202);
    const s = await ended(id, 20_000);
    expect(s.status).toBe("cancelled");
    expect(s.error).toEqual({ code: "cancelled", message: "changed my mind" });
    await noSandbox(id);
    await stays(s);
    // On the bus: the api's request on session.cancel, then the one terminal event on session.cancelled.
    expect(await eventsOf(id)).toEqual([`session.cancel ${id}`, `session.cancelled ${id}`]);
  }, 120_000);

  localOnly?.(
    "cancels a session mid-setup: the spawner stops, its sandbox goes, and it never becomes running",
    async () => {
      const id = await submit({ model: "demo" });
      await eventually(async () => ["server_starting", "restoring"].includes((await get(id)).phase), 30_000, 20);
      expect((await api(fleet, "POST", `/v1/sessions/${id}/cancel`, {})).status).toBe(202);
      const s = await ended(id, 20_000);
      expect(s.status).toBe("cancelled");
      expect(s.startedAt).toBeUndefined();
      await noSandbox(id);
      await stays(s);
    },
    120_000,
  );

  it("fails a session past its deadline with code timeout", async () => {
    const id = await submit({ model: "slow", timeoutMs: 10_000 });
    const s = await ended(id, 40_000);
    expect(s.status).toBe("failed");
    expect(s.error?.code).toBe("timeout");
    expect(present(s.completedAt, "completedAt") - s.createdAt).toBeLessThan(15_000);
    await noSandbox(id);
    await stays(s);
  }, 120_000);

  localOnly?.(
    "escalates a stuck agent and fails it as stalled, well before its deadline",
    async () => {
      const id = await submit({ model: "stuck" });
      const s = await ended(id, 60_000);
      expect(s.status).toBe("failed");
      expect(s.error?.code).toBe("stalled");
      expect(s.error?.message).toMatch(/agent busy with no progress for \d+ s; tried: abort \((went idle|no effect)\)/);
      expect(present(s.completedAt, "completedAt") - (s.startedAt ?? 0)).toBeLessThan(30_000);
      await noSandbox(id);
    },
    120_000,
  );

  it("fails within seconds when the sandbox dies under the agent", async () => {
    const id = await submit({ model: "slow" });
    const s = await running(id);
    await fleet.killSandboxUnderAgent(s);
    const killedAt = Date.now();
    const done = await ended(id, 30_000);
    expect(done.status).toBe("failed");
    expect(done.error?.code).toBe("sandbox_lost");
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await noSandbox(id);
  }, 120_000);

  it("a poller killed with SIGKILL mid-watch: another takes over, no log line lost or doubled", async () => {
    const { id, owner } = await watchedMidway();
    process.kill(owner.process.pid, "SIGKILL");
    const { s, lines } = await completesWhole(id);
    expect(s.output?.response).toBe("All steps done.");
    // The survivor resumed after the lines in the stream.
    expect(fleet.logsOf("poller").join("\n")).toMatch(
      new RegExp(`"sessionId":"${id}".*"delivery":2.*watching session`),
    );
    // The archiver stored them all once, also those the killed poller's archiver held unacknowledged.
    const { store } = fleet;
    await eventually(async () => (await store.lastLogSeq(id)) === lines.length, 30_000, 250);
    expect((await store.logs(id, { limit: 10_000 })).map((l) => [l.seq, l.line])).toEqual(
      lines.map((l) => [l.seq, l.line]),
    );
    await noSandbox(id);
    await fleet.add("poller");
  }, 150_000);

  localOnly?.(
    "a poller frozen past its watch's ack wait lets the session go when it wakes: one poller acts on it, no line lost or doubled",
    async () => {
      const { id, owner } = await watchedMidway();
      const other = present(
        fleet.services.find((x) => x.name === "poller" && x.process.running && x !== owner),
        "a second poller",
      );
      // A stalled event loop, as far as the bus can tell: no heartbeat, no ack, the socket still open.
      process.kill(owner.process.pid, "SIGSTOP");
      try {
        await eventually(() => hasWatchLine(other.process.logFile, id), 20_000, 100);
      } finally {
        process.kill(owner.process.pid, "SIGCONT");
      }
      // Awake again, the owner lets go of the session rather than go on watching beside the other one.
      await eventually(
        () =>
          readFileSync(owner.process.logFile, "utf8").includes(
            "heartbeats were not confirmed in time; another instance takes them over",
          ),
        10_000,
        100,
      );
      await completesWhole(id);
      // The owner wrote nothing for the session after it woke: its last word on it is the watch it started.
      const ownerLines = readFileSync(owner.process.logFile, "utf8")
        .split("\n")
        .filter((l) => l.includes(`"sessionId":"${id}"`));
      expect(ownerLines.filter((l) => l.includes("watching session"))).toHaveLength(1);
      expect(ownerLines.some((l) => /"level":(40|50)/.test(l) && !l.includes("no longer sure to hold"))).toBe(false);
    },
    150_000,
  );

  it("a spawner killed with SIGKILL mid-spawn: another replaces its sandbox and the session completes once", async () => {
    const second = await fleet.add("spawner");
    const first = present(
      fleet.services.find((x) => x.name === "spawner" && x !== second),
      "the first spawner",
    );
    // Hold the second spawner back until the first owns the request.
    process.kill(second.process.pid, "SIGSTOP");
    const id = await submit({ model: "text-only" });
    const s1 = await eventually(async () => {
      const s = await get(id);
      return s.sandbox && s.phase !== "queued" ? s : undefined;
    }, 30_000);
    process.kill(first.process.pid, "SIGKILL");
    process.kill(second.process.pid, "SIGCONT");
    const s = await ended(id, 90_000);
    expect(s.status).toBe("completed");
    expect(s.attempt).toBe(2);
    expect(s.sandbox?.id).not.toBe(s1.sandbox?.id);
    expect(await fleet.provider.connect(present(s1.sandbox, "the first attempt's sandbox").id)).toBeNull();
    await noSandbox(id);
  }, 150_000);

  it("reaps sandboxes whose session is unknown or ended", async () => {
    const orphan = await fleet.provider.create({
      metadata: { fleet: "fleet", sessionId: "no-such-session", projectId: "p", attempt: "1" },
      envs: {},
      timeoutMs: 60_000,
    });
    await orphan.startBackground({ command: "sleep", args: ["60"] });
    await eventually(async () => (await fleet.provider.connect(orphan.id)) === null, 15_000);
  }, 30_000);

  localOnly?.(
    "keeps the first terminal state when cancel races completion and the watchdog fires twice",
    async () => {
      const id = await submit({ model: "text-only" });
      const s = await ended(id, 90_000);
      expect(s.status).toBe("completed");
      // Late cancel, a second deadline pass, a duplicate completion: none changes anything.
      await api(fleet, "POST", `/v1/sessions/${id}/cancel`, {});
      expect(
        await fleet.store.transition(id, {
          from: ["pending", "running"],
          to: "failed",
          set: { error: { code: "timeout", message: "late" } },
        }),
      ).toBeNull();
      await stays(s);
    },
    120_000,
  );
});

function hasWatchLine(file: string, id: string): boolean {
  return readFileSync(file, "utf8")
    .split("\n")
    .some((l) => l.includes(`"sessionId":"${id}"`) && l.includes("watching session"));
}
