import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handleRunning } from "../services/poller/src/watch.js";
import { handleRequested, type SpawnDeps } from "../services/spawner/src/spawn.js";
import {
  SCHEMA_VERSION,
  SessionConfig,
  SessionRunning,
  type SessionRequested,
  endSession,
  streamName,
  subjectFor,
  type SessionStore,
} from "../shared/src/index.js";
import { SimulatedSandboxProvider, simulatedRuntime } from "../devtools/src/simulated/index.js";
import { useBus } from "./support/api-fixture.js";
import { eventually, logger, present } from "./support/fixtures.js";
import { delivered, pollerDeps, spawnerDeps } from "./support/stages.js";

const FLEET = "handover";
const SECRET = "handover-agent-secret-0123456789";
const STORE_CHECK_MS = 30_000;
const CREATE_MS = 1_500;

/** The run's store, with every call made on it named in order. */
function recording(store: SessionStore): { store: SessionStore; calls: string[] } {
  const calls: string[] = [];
  const proxy = new Proxy(store, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

/**
 * What a setup writes, and what it hands the watch, on the run's store and bus with the spawner's
 * and poller's own handlers. With no admission cap, the slot a session takes is recorded with its
 * sandbox (no write of its own), and session.running carries the document the `running` write
 * returned, so the first watch starts without reading the store.
 */
describe("a setup's writes and its hand-over to the watch", () => {
  const fixture = useBus({ prefix: "hov", nats: true });
  const { store, bus } = fixture;
  let dir: string;
  let provider: SimulatedSandboxProvider;
  let slowProvider: SimulatedSandboxProvider;
  const runtime = () => simulatedRuntime({ dir: join(dir, "sim") });
  const spawner = (p = provider, s: SessionStore = store): SpawnDeps =>
    spawnerDeps(
      { store: s, bus, provider: p, runtime: runtime(), logger },
      { fleet: FLEET, agentSecret: SECRET, agentReadyMs: 30_000 },
    );
  const poller = (s: SessionStore) =>
    pollerDeps(
      { store: s, bus, provider, runtime: runtime(), logger },
      { agentSecret: SECRET, statusIntervalMs: 200, storeCheckMs: STORE_CHECK_MS },
    );

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "fleet-handover-"));
    provider = new SimulatedSandboxProvider({ dir: join(dir, "sim"), fleet: FLEET, events: 2 }, logger);
    slowProvider = new SimulatedSandboxProvider(
      { dir: join(dir, "sim"), fleet: FLEET, events: 2, createMs: CREATE_MS },
      logger,
    );
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const request = (id: string): SessionRequested => ({
    v: SCHEMA_VERSION,
    sessionId: id,
    projectId: "p-hov",
    prompt: "a prompt the watch has no use for",
    config: SessionConfig.parse({}),
    files: [],
    requestedAt: Date.now(),
  });

  /** A session set up by the spawner's own handler; its session.running as the stream holds it. */
  async function setUp(id: string, deps = spawner()): Promise<SessionRunning> {
    await handleRequested(deps, request(id), delivered("session.requested", 1));
    const jsm = await jetstreamManager(fixture.nc);
    const stored = await jsm.streams.getMessage(streamName(fixture.namespace, "work"), {
      last_by_subj: subjectFor(fixture.namespace, "running"),
    });
    const msg = SessionRunning.parse(present(stored, "the session.running message").json());
    expect(msg.sessionId).toBe(id);
    return msg;
  }

  const slotsOf = async (id: string) => (await store.heldSlots()).filter((s) => s.sessionId === id);

  it("without a cap, the slot is recorded in the write that records the sandbox", { timeout: 60_000 }, async () => {
    const id = `s-slot-${fixture.namespace}`;
    const { store: counted, calls } = recording(store);
    await setUp(id, spawner(provider, counted));
    const s = present(await store.get(id), "the session");
    expect(s.status).toBe("running");
    expect(s.slotsHeld).toBe(true);
    expect(await slotsOf(id)).toHaveLength(1);
    // create (with the claim of attempt 1), slot, sandbox (with the slot), running: no write of the
    // claim or of the slot alone.
    expect(calls.filter((c) => c === "patch")).toHaveLength(1);
    expect(calls).toEqual(expect.arrayContaining(["create", "acquireSlot", "patch", "transition"]));
    expect(calls).not.toContain("claimAttempt");
    expect(s.attempt).toBe(1);
  });

  it("a session cancelled while its sandbox is created gives its slot back, its sandbox too", {
    timeout: 60_000,
  }, async () => {
    const id = `s-cancel-${fixture.namespace}`;
    const setup = handleRequested(spawner(slowProvider), request(id), delivered("session.requested", 1));
    // The slot is taken and the sandbox being created: the document does not name either yet.
    await eventually(async () => (await slotsOf(id)).length === 1 || undefined, 10_000, 20);
    const during = present(await store.get(id), "the session");
    expect(during.phase).toBe("sandbox_creating");
    expect(during.slotsHeld).toBeUndefined();
    await endSession({ store, bus, provider, logger, metrics: spawner().metrics }, id, {
      status: "cancelled",
      reason: "user",
    });
    await setup;
    expect((await store.get(id))?.status).toBe("cancelled");
    expect(await slotsOf(id)).toEqual([]);
    expect((await slowProvider.list({ fleet: FLEET, sessionId: id })).length).toBe(0);
  });

  it("a first delivery reads nothing from the store before the session completes", { timeout: 60_000 }, async () => {
    const id = `s-first-${fixture.namespace}`;
    const msg = await setUp(id);
    expect(msg.session?.status).toBe("running");
    expect(msg.session?.attempt).toBe(msg.attempt);
    expect(msg.session).not.toHaveProperty("prompt");

    const { store: watched, calls } = recording(store);
    await handleRunning(poller(watched), msg, delivered("session.running", 1));
    expect((await store.get(id))?.status).toBe("completed");
    expect(calls).not.toContain("get");
    expect(calls).toContain("transition");
  });

  it.each([
    { name: "an event that waited longer than the store check", at: -STORE_CHECK_MS - 1, deliveryCount: 1 },
    { name: "a redelivery", at: 0, deliveryCount: 2 },
  ])(
    "$name reads the store first: a session ended meanwhile is settled, not watched",
    async ({ at, deliveryCount }) => {
      const id = `s-${deliveryCount}-${-at}-${fixture.namespace}`;
      const msg = await setUp(id);
      const sandboxId = present(msg.session?.sandbox?.id, "the carried sandbox");
      // Cancelled by a stage that died before it killed the sandbox or paid the event.
      const ended = await store.transition(id, {
        from: ["running"],
        to: "cancelled",
        set: { error: { code: "cancelled", message: "user" } },
      });
      expect(ended?.eventOwed).toBeDefined();

      const { store: watched, calls } = recording(store);
      await handleRunning(poller(watched), { ...msg, at: msg.at + at }, delivered("session.running", deliveryCount));
      expect(calls[0]).toBe("get");
      expect(await provider.alive(sandboxId)).toBe(false);
      expect((await store.get(id))?.eventOwed).toBeUndefined();
    },
    60_000,
  );
});
