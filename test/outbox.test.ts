import { join } from "node:path";
import { AckPolicy, jetstreamManager, jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleRunning } from "../services/poller/src/watch.js";
import { createWatchdog } from "../services/watchdog/src/app.js";
import { enforceDeadlines } from "../services/watchdog/src/deadlines.js";
import { reap } from "../services/watchdog/src/reaper.js";
import {
  SCHEMA_VERSION,
  SessionCancelled,
  SessionConfig,
  endSession,
  streamName,
  subjectFor,
  type EndDeps,
} from "../shared/src/index.js";
import { createMetrics, type FleetMetrics } from "../shared/src/metrics/index.js";
import { SimulatedSandboxProvider, simulatedRuntime } from "../devtools/src/simulated/index.js";
import { useBus } from "./support/api-fixture.js";
import { eventually, logger, sleep } from "./support/fixtures.js";
import { useOwnNats } from "./support/restartable.js";
import { delivered, pollerDeps } from "./support/stages.js";

const FLEET = "outbox";

// The file's own nats-server, outside the describe: up before its fixture opens a bus on it, until after it closed.
const nats = useOwnNats("nats-outbox");

/**
 * The outbox (issue 14, items 1 and 5) on real servers: a nats-server of this file's own, stopped
 * for 10 s while sessions end, and the run's store. The outside reader is a durable consumer on the
 * terminal subjects of FLEET_EVENTS (a plain server: the auth server cannot be restarted in place).
 */
describe("terminal events are owed in the transition's write and paid after a bus outage", () => {
  let reader: NatsConnection;
  let metrics: FleetMetrics;
  let deps: EndDeps;

  const fixture = useBus({
    prefix: "obx",
    bus: () => ({ servers: nats.url, name: "outbox", publishTimeoutMs: 1_000 }),
    deadLetters: false,
  });
  const { namespace: ns, store, bus } = fixture;

  beforeAll(async () => {
    reader = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    metrics = createMetrics("outbox-test");
    const provider = new SimulatedSandboxProvider({ dir: join(nats.dir, "sim"), fleet: FLEET, events: 0 }, logger);
    deps = { store, bus, provider, logger, metrics };
  });

  afterAll(async () => {
    await reader?.close().catch(() => undefined);
  });

  /** A running session with a sandbox and an admission slot, as the spawner leaves it. */
  const running = async (id: string): Promise<void> => {
    await store.create({ id, projectId: "p-obx", prompt: "go", config: SessionConfig.parse({}) });
    const sandbox = await deps.provider.create({
      metadata: { fleet: FLEET, sessionId: id, projectId: "p-obx", attempt: "1" },
      envs: {},
      timeoutMs: 600_000,
    });
    expect(await store.acquireSlot("global", 100, id)).toBe(true);
    await store.transition(id, {
      from: ["pending"],
      to: "running",
      set: { attempt: 1, phase: "running", sandbox: { id: sandbox.id, provider: sandbox.provider }, slotsHeld: true },
    });
  };

  const terminalEvents = async (js: JetStreamClient, durable: string): Promise<string[]> => {
    const consumer = await js.consumers.get(streamName(ns, "events"), durable);
    const seen: string[] = [];
    for (;;) {
      const m = await consumer.next({ expires: 1_000 });
      if (!m) return seen;
      seen.push(`${m.subject.slice(ns.length + 1)} ${m.json<{ sessionId: string }>().sessionId}`);
      await m.ackAck();
    }
  };

  it("sessions completing, failing, cancelled and timing out while nats-server is down for 10 s: one event each after, slots free, no sandbox left", async () => {
    const ids = ["done", "fail", "cancel", "late"].map((k) => `${k}-${ns}`);
    for (const id of ids) await running(id);
    const [done, fail, cancel, late] = ids as [string, string, string, string];
    const jsm = await jetstreamManager(reader);
    const filters = (["completed", "failed", "cancelled"] as const).map((k) => subjectFor(ns, k));
    await jsm.consumers.add(streamName(ns, "events"), {
      durable_name: "acme",
      ack_policy: AckPolicy.Explicit,
      filter_subjects: filters,
    });

    const down = Date.now();
    await nats.server.stop();
    // As the stages do: the poller ends two, the watchdog one on a cancel request and one at its
    // deadline. A stage that sees an error carries on (the poller's tick logs it), so errors are kept.
    const errors: unknown[] = [];
    const ending = [
      endSession(deps, done, {
        status: "completed",
        output: { response: "ok", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] },
      }),
      endSession(deps, fail, { status: "failed", error: { code: "sandbox_lost", message: "gone" } }),
      endSession(deps, cancel, { status: "cancelled", reason: "user" }),
    ];
    for (const r of await Promise.allSettled(ending)) if (r.status === "rejected") errors.push(r.reason);
    const far = Date.now() + SessionConfig.parse({}).timeoutMs + 60_000;
    await enforceDeadlines(deps, far).catch((err: unknown) => errors.push(err));
    for (const id of ids) expect((await store.get(id))?.status, id).not.toMatch(/pending|running/);
    await sleep(Math.max(0, 10_000 - (Date.now() - down)));
    await nats.server.start();

    // The poller meets one ended session first, on a redelivered session.running: it pays the debt
    // itself (retried while the bus reconnects), before the watchdog would.
    const poller = pollerDeps(
      { ...deps, metrics, runtime: simulatedRuntime({ dir: join(nats.dir, "sim") }) },
      { agentSecret: "s" },
    );
    const sandboxId = (await store.get(done))?.sandbox?.id as string;
    const ctx = delivered("running", 2);
    const js = jetstream(reader, { timeout: 2_000 });
    const seen: string[] = [];
    await eventually(
      async () => {
        await handleRunning(
          poller,
          {
            v: SCHEMA_VERSION,
            sessionId: done,
            projectId: "p-obx",
            sandboxId,
            agentSessionId: "a",
            attempt: 1,
            at: Date.now(),
          },
          ctx,
        );
        seen.push(...(await terminalEvents(js, "acme").catch(() => [])));
        return seen.length > 0;
      },
      20_000,
      250,
    ).catch(() => undefined);
    expect(seen).toEqual([`session.completed ${done}`]);
    expect((await store.get(done))?.eventOwed).toBeUndefined();

    const watchdog = createWatchdog(deps, {
      fleet: FLEET,
      graceMs: 600_000,
      intervalMs: 500,
      reaperIntervalMs: 3_600_000,
      debtGraceMs: 1_000,
    });
    watchdog.start();
    try {
      // Bounded, and what arrived is asserted below (before the outbox: nothing, ever).
      await eventually(
        async () => {
          seen.push(...(await terminalEvents(js, "acme").catch(() => [])));
          return seen.length >= ids.length;
        },
        30_000,
        200,
      ).catch(() => undefined);
      // Two more payment rounds, and a stage meeting an ended session again: still one event each.
      await sleep(1_500);
      await endSession(deps, done, { status: "cancelled", reason: "late" });
      seen.push(...(await terminalEvents(js, "acme")));
      expect(seen.sort()).toEqual(
        [
          `session.cancelled ${cancel}`,
          `session.completed ${done}`,
          `session.failed ${fail}`,
          `session.failed ${late}`,
        ].sort(),
      );
      for (const id of ids) expect((await store.get(id))?.eventOwed, id).toBeUndefined();
      expect(await store.slotsInUse("global")).toBe(0);
      expect(await deps.provider.list({ fleet: FLEET })).toEqual([]);
    } finally {
      await watchdog.stop(1_000);
    }
    logger.debug({ errors: errors.length }, "errors seen while the bus was down");
  }, 90_000);

  it("counts each ended session once, where it ended, by status and error code", async () => {
    const ids = ["m-done", "m-agent", "m-cancel", "m-late"].map((k) => `${k}-${ns}`);
    for (const id of ids) await running(id);
    const [done, agent, cancel, late] = ids as [string, string, string, string];
    const before = await ended();
    const output = { response: "ok", thinking: "", toolCalls: [], todos: [], diffs: [], artifacts: [] };
    // Two paths racing to end one session (a callback and the poller): one winner, one count.
    await Promise.all([
      endSession(deps, done, { status: "completed", output }),
      endSession(deps, done, { status: "failed", error: { code: "agent", message: "x" } }),
    ]);
    await endSession(deps, agent, { status: "failed", error: { code: "agent", message: "boom" } });
    const watchdog = createWatchdog(deps, {
      fleet: FLEET,
      graceMs: 600_000,
      intervalMs: 3_600_000,
      reaperIntervalMs: 3_600_000,
      debtGraceMs: 1_000,
    });
    watchdog.start();
    try {
      await bus.publish("cancel", { v: SCHEMA_VERSION, sessionId: cancel, at: Date.now(), reason: "user" });
      await eventually(async () => (await store.get(cancel))?.status === "cancelled", 10_000, 50);
      // The request and the end are two subjects and two ids: the terminal event is not taken for
      // a duplicate of the request, and is the only message on session.cancelled for the session.
      await (await jetstreamManager(reader)).consumers.add(streamName(ns, "events"), {
        durable_name: "acme-cancelled",
        ack_policy: AckPolicy.Explicit,
        filter_subject: subjectFor(ns, "cancelled"),
      });
      const consumer = await jetstream(reader, { timeout: 2_000 }).consumers.get(
        streamName(ns, "events"),
        "acme-cancelled",
      );
      const bodies: unknown[] = [];
      await eventually(
        async () => {
          for (let m = await consumer.next({ expires: 1_000 }); m; m = await consumer.next({ expires: 1_000 })) {
            if (m.json<{ sessionId: string }>().sessionId === cancel) bodies.push(m.json());
            await m.ackAck();
          }
          return bodies.length > 0;
        },
        10_000,
        100,
      );
      expect(bodies.map((b) => SessionCancelled.parse(b))).toEqual([
        { v: SCHEMA_VERSION, sessionId: cancel, projectId: "p-obx", at: expect.any(Number), reason: "user" },
      ]);
    } finally {
      await watchdog.stop(1_000);
    }
    const far = Date.now() + SessionConfig.parse({}).timeoutMs + 60_000;
    await Promise.all([enforceDeadlines(deps, far), enforceDeadlines(deps, far)]);
    expect((await store.get(late))?.error?.code).toBe("timeout");
    const doneStatus = (await store.get(done))?.status as string;
    const delta = diff(before, await ended());
    expect(delta).toEqual({
      [`${doneStatus}|${doneStatus === "completed" ? "" : "agent"}`]: 1,
      "failed|agent": doneStatus === "failed" ? 2 : 1,
      "cancelled|cancelled": 1,
      "failed|timeout": 1,
    });
  }, 60_000);

  const ended = async (): Promise<Record<string, number>> => {
    const m = await metrics.sessionsEnded.get();
    return Object.fromEntries(m.values.map((v) => [`${String(v.labels.status)}|${String(v.labels.code)}`, v.value]));
  };

  it("the reaper ends a session past its deadline as a timeout before it kills its sandbox, so a watch does not read the kill as a lost sandbox", async () => {
    const id = `reap-late-${ns}`;
    await running(id);
    const sandboxId = (await store.get(id))?.sandbox?.id;
    const far = Date.now() + SessionConfig.parse({}).timeoutMs + 60_000;
    // The reaper's round comes before the deadline enforcer's (both run in the watchdog, apart).
    expect(await reap(deps, { fleet: FLEET, graceMs: 0 }, far)).toContain(sandboxId);
    const s = await store.get(id);
    expect({ status: s?.status, code: s?.error?.code }).toEqual({ status: "failed", code: "timeout" });
    expect(await deps.provider.connect(sandboxId as string)).toBeNull();
  });
});

function diff(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)])
      .filter(([, v]) => v !== 0),
  );
}
