import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { handleRequested, type SpawnDeps } from "../services/spawner/src/spawn.js";
import { reap } from "../services/watchdog/src/reaper.js";
import {
  SCHEMA_VERSION,
  SessionConfig,
  type AgentRuntime,
  Superseded,
  consumerName,
  streamName,
  type SessionRequested,
} from "../shared/src/index.js";
import { SimulatedSandboxProvider, sandboxIdOfUrl, simulatedRuntime } from "../devtools/src/simulated/index.js";
import { useBus } from "./support/api-fixture.js";
import { delivered, spawnerDeps } from "./support/stages.js";
import { eventually, logger, present } from "./support/fixtures.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";

const FLEET = "stale";
const PROJECT = "p-stale";
const ACK_WAIT_MS = 2_000;

/** The request the test's sessions are made from, stored at `storedAt`. */
function requested(sessionId: string, storedAt: number): SessionRequested {
  return {
    v: SCHEMA_VERSION,
    sessionId,
    projectId: PROJECT,
    prompt: "go",
    config: SessionConfig.parse({}),
    files: [],
    requestedAt: storedAt,
  };
}

/**
 * Agent servers that come up when the test says so: each sandbox's health check is held until its
 * gate opens, then answers as told: `live` (healthy while its sandbox lives, as a real server) or
 * `late` (healthy: an answer sent just before its sandbox was killed). Everything else is the
 * simulated agent's.
 */
function gatedRuntime(dir: string, provider: SimulatedSandboxProvider) {
  const base = simulatedRuntime({ dir });
  type Answer = "live" | "late";
  const gates = new Map<string, { reached: boolean; open: (a: Answer) => void; opened: Promise<Answer> }>();
  const gate = (sandboxId: string) => {
    let entry = gates.get(sandboxId);
    if (!entry) {
      let open = (_: Answer): void => undefined;
      const opened = new Promise<Answer>((r) => {
        open = r;
      });
      entry = { reached: false, open, opened };
      gates.set(sandboxId, entry);
    }
    return entry;
  };
  const runtime: AgentRuntime = {
    ...base,
    connect(endpoint) {
      const client = base.connect(endpoint);
      const sandboxId = present(sandboxIdOfUrl(endpoint.baseUrl), "a simulated agent address");
      return new Proxy(client, {
        get(target, key) {
          if (key === "health")
            return async (timeoutMs: number) => {
              const g = gate(sandboxId);
              g.reached = true;
              if ((await g.opened) === "late") return true;
              return (await provider.alive(sandboxId)) && client.health(timeoutMs);
            };
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    },
  };
  return {
    runtime,
    /** The sandbox of the session whose setup is now waiting for its agent, once there is one. */
    waiting: (sandboxId: string | undefined) => (sandboxId && gates.get(sandboxId)?.reached ? sandboxId : undefined),
    open: (sandboxId: string, answer: Answer = "live") => gate(sandboxId).open(answer),
  };
}

/**
 * A setup attempt overtaken by a later one (its delivery's ack wait lapsed during setup and the
 * redelivery claimed attempt 2) must not end the session the later attempt owns: on the real store
 * and bus, the spawner's handler runs both deliveries in-process, attempt 1 held while its agent
 * starts, then failing once attempt 2 has claimed the session and killed attempt 1's sandbox.
 */
describe("a stale setup attempt never ends a session it no longer owns", () => {
  // Deliveries not kept alive by heartbeats pass to the next after ACK_WAIT_MS.
  const fixture = useBus({ prefix: "stale", bus: { tuning: { ackWaitMs: ACK_WAIT_MS, maxDeliver: 5 } } });
  const { store, bus } = fixture;
  let dir: string;
  let provider: SimulatedSandboxProvider;
  let agents: ReturnType<typeof gatedRuntime>;
  let deps: SpawnDeps;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "fleet-stale-"));
    provider = new SimulatedSandboxProvider({ dir: join(dir, "sim"), fleet: FLEET, events: 1 }, logger);
    agents = gatedRuntime(join(dir, "sim"), provider);
    deps = spawnerDeps(
      { store, bus, provider, runtime: agents.runtime, logger },
      { fleet: FLEET, agentSecret: "stale-test-agent-secret-0123456789" },
    );
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    { name: "attempt 1 fails for good (its sandbox ended before its agent was healthy)", failure: "final" },
    { name: "attempt 1 meets a retryable error with deliveries left", failure: "retryable" },
  ] as const;

  it.concurrent.each(cases)(
    "$name",
    async ({ failure }) => {
      const id = `s-${failure}-${fixture.namespace}`;
      const storedAt = Date.now();
      const req = requested(id, storedAt);
      const sandboxOf = async (attempt: number) => {
        const s = await store.get(id);
        return s?.attempt === attempt ? s.sandbox?.id : undefined;
      };

      // Attempt 1 sets up and waits for its agent.
      const first = handleRequested(deps, req, delivered("session.requested", 1, { storedAt }));
      first.catch(() => undefined);
      const sandbox1 = await eventually(async () => agents.waiting(await sandboxOf(1)), 30_000);

      // Its ack wait lapses; the redelivery claims attempt 2 (replacing attempt 1's sandbox) and waits for its own agent.
      const second = handleRequested(deps, req, delivered("session.requested", 2, { storedAt }));
      second.catch(() => undefined);
      // Until attempt 2 records its own sandbox, the session still names attempt 1's.
      const sandbox2 = await eventually(async () => {
        const recorded = await sandboxOf(2);
        return recorded === sandbox1 ? undefined : agents.waiting(recorded);
      }, 30_000);
      expect(await provider.alive(sandbox1)).toBe(false);

      // Attempt 1 now fails: for good (its agent never answers: "the sandbox ended before the agent
      // server became healthy"), or retryably (its agent answered just before the kill; the prompt then
      // finds the sandbox gone). Either way it stops without a verdict on the session.
      agents.open(sandbox1, failure === "final" ? "live" : "late");
      const stopped = await first.then(
        () => "returned",
        (err: unknown) => err,
      );

      // The session is attempt 2's, untouched: pending, no error, no terminal event owed.
      const during = present(await store.get(id), "the session");
      expect(during.status).toBe("pending");
      expect(during.attempt).toBe(2);
      expect(during.error).toBeUndefined();
      expect(during.eventOwed).toBeUndefined();
      expect(during.sandbox?.id).toBe(sandbox2);
      // Its admission slot is attempt 2's now: the stale attempt gave nothing back.
      expect((await store.heldSlots()).filter((slot) => slot.sessionId === id)).not.toHaveLength(0);
      expect(await provider.alive(sandbox2)).toBe(true);
      // Superseded: the consume loop gives no verdict on the message (no ack, nak or dead letter).
      expect(stopped).toBeInstanceOf(Superseded);

      // The reaper sees attempt 2's sandbox as the session's own, and only attempt 1's as replaced.
      const reaped = await reap(deps, { fleet: FLEET, graceMs: 0 });
      expect(reaped).not.toContain(sandbox2);
      expect(await provider.alive(sandbox2)).toBe(true);

      // Attempt 2 carries on to running with its own sandbox.
      agents.open(sandbox2);
      await second;
      const after = present(await store.get(id), "the session");
      expect(after.status).toBe("running");
      expect(after.attempt).toBe(2);
      expect(after.sandbox?.id).toBe(sandbox2);
      expect(await provider.alive(sandbox2)).toBe(true);
      expect(await provider.alive(sandbox1)).toBe(false);
    },
    90_000,
  );
  it.concurrent("a first delivery that reaches its handler after the redelivery claimed the attempt leaves the message to it", async () => {
    const id = `s-late-first-${fixture.namespace}`;
    const storedAt = Date.now();
    const req = requested(id, storedAt);
    // Delivery 1's holder stalled before its handler ran (frozen past the ack wait); delivery 2
    // claims attempt 1 and waits for its agent.
    const second = handleRequested(deps, req, delivered("session.requested", 2, { storedAt }));
    second.catch(() => undefined);
    const sandbox = await eventually(async () => {
      const s = await store.get(id);
      return s?.attempt === 1 ? agents.waiting(s.sandbox?.id) : undefined;
    }, 30_000);
    expect((await store.get(id))?.claimedBy).toEqual({ seq: 1, delivery: 2 });

    // Delivery 1 reaches its handler now: Superseded, so the consume loop does not acknowledge the
    // message (which would leave nothing to redeliver should delivery 2's spawner die), and the
    // session is untouched.
    await expect(handleRequested(deps, req, delivered("session.requested", 1, { storedAt }))).rejects.toBeInstanceOf(
      Superseded,
    );
    const during = present(await store.get(id), "the session");
    expect([during.status, during.attempt, during.sandbox?.id]).toEqual(["pending", 1, sandbox]);
    // A duplicate request (another message of the stream) is still answered as one: acknowledged.
    await expect(
      handleRequested(deps, req, delivered("session.requested", 1, { storedAt, seq: 2 })),
    ).resolves.toBeUndefined();

    agents.open(sandbox);
    await second;
    const after = present(await store.get(id), "the session");
    expect([after.status, after.attempt, after.sandbox?.id]).toEqual(["running", 1, sandbox]);
  }, 90_000);

  it.concurrent("through the spawner's consumer: the stale delivery leaves the message to the one that owns attempt 2", async () => {
    const id = `s-bus-${fixture.namespace}`;
    const ended: number[] = [];
    // The spawner's handler on its real consumer. Delivery 1 sends no heartbeat, so its ack wait
    // lapses while its agent is held; later deliveries keep theirs alive, as a live spawner does.
    const sub = bus.consume("spawner", {
      maxInFlight: 4,
      handler: async (msg, ctx) => {
        if (msg.sessionId !== id) return;
        const beat = ctx.deliveryCount > 1 ? setInterval(() => ctx.working(), ACK_WAIT_MS / 8) : undefined;
        try {
          await handleRequested(deps, msg, ctx);
        } finally {
          clearInterval(beat);
          ended.push(ctx.deliveryCount);
        }
      },
    });
    const nc = await connect({ servers: inject("natsUrl") });
    const jsm = await jetstreamManager(nc);
    const heldBySpawners = async () =>
      (await jsm.consumers.info(streamName(fixture.namespace, "work"), consumerName(fixture.namespace, "spawner")))
        .num_ack_pending;
    try {
      await bus.publish("requested", {
        v: SCHEMA_VERSION,
        sessionId: id,
        projectId: PROJECT,
        prompt: "go",
        requestedAt: Date.now(),
      });
      const sandboxOf = async (attempt: number) => {
        const s = await store.get(id);
        return s?.attempt === attempt ? s.sandbox?.id : undefined;
      };
      const sandbox1 = await eventually(async () => agents.waiting(await sandboxOf(1)), 30_000);
      const sandbox2 = await eventually(async () => {
        const recorded = await sandboxOf(2);
        return recorded === sandbox1 ? undefined : agents.waiting(recorded);
      }, 30_000);

      agents.open(sandbox1);
      await eventually(() => ended.includes(1), 30_000);
      const during = present(await store.get(id), "the session");
      expect(during.status).toBe("pending");
      expect(during.attempt).toBe(2);
      // For one ack wait after delivery 1 stopped, delivery 2 still holds the message: delivery 1
      // neither acked it (which would drop the redelivery a crash of delivery 2's spawner needs) nor
      // naked it (which would hand attempt 3 to another spawner).
      const until = Date.now() + ACK_WAIT_MS;
      while (Date.now() < until) {
        expect(await heldBySpawners()).toBe(1);
        expect(ended).toEqual([1]);
        await new Promise((r) => setTimeout(r, 100));
      }

      agents.open(sandbox2);
      await eventually(() => ended.includes(2), 30_000);
      const after = present(await store.get(id), "the session");
      expect(after.status).toBe("running");
      expect(after.attempt).toBe(2);
      expect(after.sandbox?.id).toBe(sandbox2);
      await eventually(async () => (await heldBySpawners()) === 0, 10_000);
      expect(ended).toEqual([1, 2]);
    } finally {
      await sub.stop(1_000);
      await nc.close();
    }
  }, 90_000);
});
