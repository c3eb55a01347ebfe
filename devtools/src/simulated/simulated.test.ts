import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { AgentClient, AgentEvent } from "@fleet/shared/agent";
import { loadConfig, sandboxEnv } from "@fleet/shared/config";
import { FleetError } from "@fleet/shared/errors";
import { isProviderQuota } from "@fleet/shared/sandbox";
import { createLogger } from "@fleet/shared/log";
import type { SessionSandboxMetadata } from "@fleet/shared/sandbox";
import { createAgentRuntime, createSandboxProvider } from "@fleet/shared/service";
import { agentFinished, extractOutput, extractUsage, toolLines } from "@fleet/shared/sessions";
import {
  SimulatedSandboxProvider,
  readAllSimulatedStates,
  readSimulatedState,
  simulatedIdleAt,
  simulatedRuntime,
  type SimulatedSandbox,
} from "./index.js";

const logger = createLogger({ name: "test", level: "silent" });
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), "fleet-sim-test-"));
  dirs.push(d);
  return d;
}

let n = 0;
const meta = (over: Partial<SessionSandboxMetadata> = {}): SessionSandboxMetadata => ({
  fleet: "simtest",
  sessionId: `s-${++n}`,
  projectId: "p1",
  attempt: "1",
  ...over,
});

async function collect(
  client: AgentClient,
  until: (e: AgentEvent) => boolean,
  timeoutMs = 5_000,
): Promise<Array<{ at: number; event: AgentEvent }>> {
  const signal = AbortSignal.timeout(timeoutMs);
  const out: Array<{ at: number; event: AgentEvent }> = [];
  for await (const event of client.events(signal)) {
    out.push({ at: Date.now(), event });
    if (until(event)) break;
  }
  return out;
}

async function prompted(
  dir: string,
  options: { events?: number; eventMs?: number } = {},
): Promise<{ sandbox: SimulatedSandbox; client: AgentClient; sessionId: string }> {
  const provider = new SimulatedSandboxProvider({ dir, fleet: "simtest", ...options }, logger);
  const sandbox = await provider.create({ metadata: meta(), envs: {}, timeoutMs: 60_000 });
  const client = simulatedRuntime({ dir }).connect({ baseUrl: sandbox.url(sandbox.agentPort), password: "x" });
  expect(await client.health(1_000)).toBe(true);
  const { id } = await client.createSession("t");
  expect(await client.status()).toEqual({});
  await client.prompt(id, { text: "go", model: "m" });
  return { sandbox, client, sessionId: id };
}

describe("SimulatedSandboxProvider", () => {
  it("lists oldest first, and sandboxes started in the same millisecond by id, as the port promises", async () => {
    const dir = stateDir();
    const provider = new SimulatedSandboxProvider({ dir, fleet: "simtest" }, logger);
    // Many at once, so several share a millisecond whatever order the directory gives them back in.
    const made = await Promise.all(
      Array.from({ length: 24 }, () => provider.create({ metadata: meta(), envs: {}, timeoutMs: 60_000 })),
    );
    const listed = await provider.list();
    expect(listed.map((s) => s.id).sort()).toEqual(made.map((s) => s.id).sort());
    for (const [i, s] of listed.entries()) {
      const next = listed[i + 1];
      if (next)
        expect(
          s.startedAt < next.startedAt || (s.startedAt === next.startedAt && s.id < next.id),
          `${s.id}@${s.startedAt} before ${next.id}@${next.startedAt}`,
        ).toBe(true);
    }
    expect(
      listed.some((s, i) => listed[i + 1]?.startedAt === s.startedAt),
      "no two sandboxes shared a millisecond: the tie order went untested",
    ).toBe(true);
  });

  it("shares sandboxes across instances through the state directory: connect, list, kill, isAlive", async () => {
    const dir = stateDir();
    const a = new SimulatedSandboxProvider({ dir, fleet: "simtest" }, logger);
    const b = new SimulatedSandboxProvider({ dir, fleet: "simtest" }, logger);
    const other = new SimulatedSandboxProvider({ dir, fleet: "otherfleet" }, logger);
    const m1 = meta();
    const s1 = await a.create({ metadata: m1, envs: { A: "1" }, timeoutMs: 60_000 });
    const s2 = await a.create({ metadata: meta({ projectId: "p2" }), envs: {}, timeoutMs: 60_000 });
    expect(s1.id).toMatch(/^sim-[0-9a-f]{16}$/);
    expect(s1.provider).toBe("simulated");
    expect(s1.url(4096)).toBe(`sim://${s1.id}:4096`);

    const seen = await b.connect(s1.id);
    expect(seen?.id).toBe(s1.id);
    expect(await seen?.isAlive()).toBe(true);
    // Two creates may share a millisecond, and then list() orders them by id, not by creation.
    expect((await b.list()).map((s) => s.id).sort()).toEqual([s1.id, s2.id].sort());
    expect((await b.list({ projectId: "p2" })).map((s) => s.id)).toEqual([s2.id]);
    const [summary] = await b.list({ sessionId: m1.sessionId });
    expect(summary).toMatchObject({ id: s1.id, provider: "simulated", metadata: m1 });
    expect(summary?.endAt).toBe((summary?.startedAt ?? 0) + 60_000);
    expect(await other.list()).toEqual([]);

    expect(await b.kill(s1.id)).toBe(true);
    expect(await b.kill(s1.id)).toBe(false);
    expect(await s1.isAlive()).toBe(false);
    expect(await a.connect(s1.id)).toBeNull();
    expect((await a.list()).map((s) => s.id)).toEqual([s2.id]);
    await s2.kill();
    expect(await a.list()).toEqual([]);

    // Ended sandboxes stay readable for a benchmark's report.
    const ended = await readSimulatedState(dir, s1.id);
    expect(ended).toMatchObject({ id: s1.id, alive: false, metadata: m1 });
    expect(ended?.killedAt).toBeGreaterThanOrEqual(ended?.createdAt ?? Infinity);
    const all = await readAllSimulatedStates(dir);
    expect(all.states.map((s) => s.id).sort()).toEqual([s1.id, s2.id].sort());
    expect(all.unreadable).toEqual([]);
    expect(await a.kill("not-an-id")).toBe(false);
    expect(await a.connect("../x")).toBeNull();
  });

  it("refuses bad specs and spends the configured create time", async () => {
    const dir = stateDir();
    const p = new SimulatedSandboxProvider({ dir, fleet: "simtest", createMs: 120 }, logger);
    const refused = (promise: Promise<unknown>) =>
      promise.then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(await refused(p.create({ metadata: meta({ fleet: "else" }), envs: {}, timeoutMs: 1_000 }))).toBeInstanceOf(
      FleetError,
    );
    expect(
      await refused(p.create({ metadata: { ...meta(), attempt: "x" }, envs: {}, timeoutMs: 1_000 })),
    ).toBeInstanceOf(FleetError);
    expect(await refused(p.create({ metadata: meta(), envs: {}, timeoutMs: 0 }))).toBeInstanceOf(FleetError);
    expect(await refused(p.create({ metadata: meta(), envs: { "BAD-NAME": "1" }, timeoutMs: 1_000 }))).toBeInstanceOf(
      FleetError,
    );
    const started = Date.now();
    await p.create({ metadata: meta(), envs: {}, timeoutMs: 1_000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(115);
  });

  it("answers file and command calls cheaply, keeping written files on the object", async () => {
    const p = new SimulatedSandboxProvider({ dir: stateDir() }, logger);
    const sb = await p.create({ metadata: meta(), envs: {}, timeoutMs: 1_000 });
    await sb.writeFiles([{ path: "a/b.txt", content: "hi" }]);
    await sb.writeFiles([{ path: "cfg", content: new Uint8Array([1]) }], { base: "home" });
    expect(Buffer.from((await sb.readFile("a/./b.txt")) ?? []).toString()).toBe("hi");
    expect(await sb.readFile("cfg")).toBeNull();
    expect(await sb.readFile("missing")).toBeNull();
    await expect(sb.writeFiles([{ path: "../escape", content: "x" }])).rejects.toBeInstanceOf(FleetError);
    expect(await sb.run({ command: "git", args: ["status", "--porcelain=v1", "-z"] })).toEqual({
      exitCode: 0,
      stdout: "",
      stderr: "",
    });
    expect((await sb.startBackground({ command: "true", args: [] })).pid).toBeGreaterThan(0);
  });
});

describe("the simulated provider's quota and faults", () => {
  it("holds at most the quota of sandboxes across instances, answering more creates like E2B (429, Retry-After, limit)", async () => {
    const dir = stateDir();
    const [a, b] = [0, 1].map(
      () => new SimulatedSandboxProvider({ dir, fleet: "simtest", quota: 3, retryAfterMs: 700 }, logger),
    ) as [SimulatedSandboxProvider, SimulatedSandboxProvider];
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).create({ metadata: meta(), envs: {}, timeoutMs: 60_000 })),
    );
    const made = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    expect([made.length, refused.length]).toEqual([3, 7]);
    for (const e of refused) {
      expect(isProviderQuota(e)).toBe(true);
      if (isProviderQuota(e)) expect([e.code, e.retryAfterMs, e.limit]).toEqual(["rate_limited", 700, 3]);
    }
    expect(await a.list()).toHaveLength(3);
    // A kill (through either instance) gives its place back at once.
    await b.kill(made[0]?.id ?? "");
    const next = await a.create({ metadata: meta(), envs: {}, timeoutMs: 60_000 });
    expect(await next.isAlive()).toBe(true);
    await expect(b.create({ metadata: meta(), envs: {}, timeoutMs: 60_000 })).rejects.toSatisfy(isProviderQuota);
  });

  it("fails a session's first n creates for a rate_limit fault, whatever its attempt, with a Retry-After", async () => {
    const dir = stateDir();
    const p = new SimulatedSandboxProvider(
      {
        dir,
        fleet: "simtest",
        retryAfterMs: 250,
        createFaults: [{ projectId: "p1", kind: "rate_limit", attempts: 2 }],
      },
      logger,
    );
    const m = meta();
    for (const n of [1, 2]) {
      const e = await p.create({ metadata: m, envs: {}, timeoutMs: 1_000 }).catch((err: unknown) => err);
      expect(isProviderQuota(e) && [e.retryAfterMs, e.message.includes(`create ${n})`)]).toEqual([250, true]);
    }
    expect((await p.create({ metadata: m, envs: {}, timeoutMs: 1_000 })).id).toMatch(/^sim-/);
    // Another session of the project has its own count.
    await expect(p.create({ metadata: meta(), envs: {}, timeoutMs: 1_000 })).rejects.toSatisfy(isProviderQuota);
  });
});

describe("the simulated provider's timeouts", () => {
  it("gives a create at most its maximum, extends within it, and ends a sandbox at its timeout", async () => {
    const dir = stateDir();
    const p = new SimulatedSandboxProvider({ dir, fleet: "simtest", maxTimeoutMs: 400 }, logger);
    expect(p.maxTimeoutMs).toBe(400);
    const sb = await p.create({ metadata: meta(), envs: {}, timeoutMs: 3_600_000 });
    const made = await readSimulatedState(dir, sb.id);
    expect((made?.endAt ?? 0) - (made?.createdAt ?? 0)).toBe(400);
    await expect(p.setTimeout(sb.id, 401)).rejects.toBeInstanceOf(FleetError);
    await new Promise((r) => setTimeout(r, 250));
    expect(await p.setTimeout(sb.id, 400)).toBe(true);
    // Past its first end, alive thanks to the extension.
    await new Promise((r) => setTimeout(r, 250));
    expect(await sb.isAlive()).toBe(true);
    expect((await readSimulatedState(dir, sb.id))?.extensions).toBe(1);
    // Then nothing extends it: listed no more, gone, its end recorded as a lapse and not a kill.
    await new Promise((r) => setTimeout(r, 250));
    expect(await p.list()).toEqual([]);
    expect(await p.connect(sb.id)).toBeNull();
    expect(await p.setTimeout(sb.id, 100)).toBe(false);
    const ended = await readSimulatedState(dir, sb.id);
    expect([ended?.alive, ended?.expiredAt !== undefined, ended?.killedAt]).toEqual([false, true, undefined]);
  });
});

describe("simulated agent", () => {
  it("plays its scripted tool events at their times, then goes idle at promptedAt + N × interval", async () => {
    const dir = stateDir();
    const { sandbox, client, sessionId } = await prompted(dir, { events: 3, eventMs: 60 });
    const state = await readSimulatedState(dir, sandbox.id);
    const promptedAt = state?.promptedAt ?? 0;
    expect(promptedAt).toBeGreaterThan(0);
    const idleAt = simulatedIdleAt(state ?? { events: 0, eventMs: 0 });
    expect(idleAt).toBe(promptedAt + 180);

    expect(await client.status()).toEqual({ [sessionId]: "busy" });
    const busy = await client.messages(sessionId);
    expect(agentFinished(busy)).toBe(false);

    const events = await collect(client, (e) => e.type === "idle");
    const parts = events.filter((e) => e.event.type === "part");
    expect(parts).toHaveLength(3);
    parts.forEach((p, i) => {
      expect(p.at).toBeGreaterThanOrEqual(promptedAt + (i + 1) * 60);
      expect(p.at).toBeLessThan(promptedAt + (i + 1) * 60 + 150);
    });
    const idle = events.at(-1);
    expect(idle?.event).toEqual({ type: "idle", sessionId });
    expect(idle?.at).toBeGreaterThanOrEqual(idleAt ?? Infinity);
    expect(events[0]?.event).toEqual({ type: "status", sessionId, status: "busy" });

    const part = parts[0]?.event;
    if (part?.type !== "part" || part.part.kind !== "tool") throw new Error("expected a tool part");
    expect(part.part).toMatchObject({
      tool: "bash",
      status: "completed",
      input: { command: "echo simulated step 1" },
      sessionId,
    });
    expect(toolLines(part.part).map((l) => l.line)).toEqual([
      "▸ Bash echo simulated step 1",
      "✓ Bash echo simulated step 1",
    ]);

    expect(await client.status()).toEqual({});
    const messages = await client.messages(sessionId);
    expect(messages.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(messages[1]).toMatchObject({ finish: "stop", completedAt: idleAt });
    expect(agentFinished(messages)).toBe(true);
    const output = extractOutput(messages, await client.todos(sessionId), await client.diff(sessionId, "m"));
    expect(output.toolCalls).toHaveLength(3);
    expect(output.response).toContain("3 tool call(s)");
    expect(extractUsage(messages).tokensIn).toBeGreaterThan(0);
  });

  it("emits everything at once with no interval, and a later client in another 'process' sees the same run", async () => {
    const dir = stateDir();
    const { sandbox, client, sessionId } = await prompted(dir, { events: 5, eventMs: 0 });
    expect(await client.status()).toEqual({});
    const late = simulatedRuntime({ dir }).connect({ baseUrl: `sim://${sandbox.id}:4096`, password: "x" });
    const events = await collect(late, (e) => e.type === "idle", 1_000);
    expect(events.map((e) => e.event.type)).toEqual(["part", "part", "part", "part", "part", "status", "idle"]);
    expect(await late.messages(sessionId)).toEqual(await client.messages(sessionId));
  });

  it("an event stream opened before the prompt waits for it", async () => {
    const dir = stateDir();
    const provider = new SimulatedSandboxProvider({ dir, events: 2 }, logger);
    const sandbox = await provider.create({ metadata: meta(), envs: {}, timeoutMs: 60_000 });
    const runtime = simulatedRuntime({ dir });
    const watcher = runtime.connect({ baseUrl: sandbox.url(4096), password: "x" });
    const pending = collect(watcher, (e) => e.type === "idle");
    await new Promise((r) => setTimeout(r, 150));
    const spawner = runtime.connect({ baseUrl: sandbox.url(4096), password: "x" });
    await spawner.prompt((await spawner.createSession("t")).id, { text: "go", model: "m" });
    expect((await pending).filter((e) => e.event.type === "part")).toHaveLength(2);
  });

  it("abort ends the run at once; the idle time recorded is the abort's", async () => {
    const dir = stateDir();
    const { sandbox, client, sessionId } = await prompted(dir, { events: 10, eventMs: 100 });
    const stream = collect(client, (e) => e.type === "idle");
    await new Promise((r) => setTimeout(r, 250));
    await client.abort(sessionId);
    const events = await stream;
    expect(events.filter((e) => e.event.type === "part").length).toBeLessThan(4);
    expect(events.map((e) => e.event.type).slice(-3)).toEqual(["error", "status", "idle"]);
    expect(await client.status()).toEqual({});
    const messages = await client.messages(sessionId);
    expect(agentFinished(messages)).toBe(true);
    expect(messages[1]?.error?.name).toBe("MessageAbortedError");
    const state = await readSimulatedState(dir, sandbox.id);
    expect(simulatedIdleAt(state ?? { events: 0, eventMs: 0 })).toBe(state?.abortedAt);
    expect((state?.abortedAt ?? 0) - (state?.promptedAt ?? 0)).toBeLessThan(1_000);
  });

  it("is unreachable once its sandbox is killed, and a prompt cannot bring the sandbox back", async () => {
    const dir = stateDir();
    const { sandbox, client, sessionId } = await prompted(dir, { events: 2, eventMs: 10_000 });
    await sandbox.kill();
    await expect(client.status()).rejects.toMatchObject({ code: "agent", retryable: true });
    const fresh = simulatedRuntime({ dir }).connect({ baseUrl: sandbox.url(4096), password: "x" });
    await expect(fresh.prompt(sessionId, { text: "again", model: "m" })).rejects.toMatchObject({ code: "agent" });
    expect(await new SimulatedSandboxProvider({ dir }, logger).connect(sandbox.id)).toBeNull();
    await expect(client.messages("other-session")).rejects.toMatchObject({ code: "not_found" });
    expect(() => simulatedRuntime({ dir }).connect({ baseUrl: "http://127.0.0.1:1", password: "x" })).toThrow(
      FleetError,
    );
  });
});

describe("SANDBOX_PROVIDER=simulated", () => {
  it("is read from the environment and picks the simulated provider and agent together", async () => {
    const dir = stateDir();
    const env = loadConfig(sandboxEnv, {
      SANDBOX_PROVIDER: "simulated",
      FLEET_SIM_DIR: dir,
      FLEET_SIM_EVENTS: "2",
      FLEET_SIM_EVENT_MS: "10",
      FLEET_SIM_CREATE_MS: "0",
    });
    expect(env).toMatchObject({
      FLEET_SIM_DIR: dir,
      FLEET_SIM_EVENTS: 2,
      FLEET_SIM_EVENT_MS: 10,
      FLEET_SIM_CREATE_MS: 0,
    });
    expect(loadConfig(sandboxEnv, {})).toMatchObject({
      FLEET_SIM_EVENTS: 5,
      FLEET_SIM_EVENT_MS: 0,
      FLEET_SIM_CREATE_MS: 0,
    });
    expect(() => loadConfig(sandboxEnv, { FLEET_SIM_EVENTS: "-1" })).toThrow(/FLEET_SIM_EVENTS/);
    expect(
      loadConfig(sandboxEnv, { FLEET_SIM_CREATE_FAULTS: "p1=rate_limit:2, p2=transient,p3=permanent" })
        .FLEET_SIM_CREATE_FAULTS,
    ).toEqual([
      { projectId: "p1", kind: "rate_limit", attempts: 2 },
      { projectId: "p2", kind: "transient", attempts: 1 },
      { projectId: "p3", kind: "permanent", attempts: Number.MAX_SAFE_INTEGER },
    ]);
    expect(() => loadConfig(sandboxEnv, { FLEET_SIM_CREATE_FAULTS: "p1=flaky" })).toThrow(/FLEET_SIM_CREATE_FAULTS/);
    const provider = await createSandboxProvider(env, logger);
    const runtime = await createAgentRuntime(env, logger);
    expect([provider.name, runtime.name]).toEqual(["simulated", "simulated"]);
    expect(runtime.homeFiles()).toEqual([]);
    const sandbox = await provider.create({ metadata: meta({ fleet: "fleet" }), envs: {}, timeoutMs: 1_000 });
    const state = await readSimulatedState(dir, sandbox.id);
    expect(state).toMatchObject({ events: 2, eventMs: 10, alive: true });
  });
});
