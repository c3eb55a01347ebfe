import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Session } from "../shared/src/index.js";
import { SCENARIOS, startScriptedModel, type ScenarioInput, type ScriptedModel } from "../devtools/src/model/index.js";
import { LocalSandboxProvider } from "../shared/src/sandbox/local/index.js";
import { cleanup, eventually, logger, uniqueNamespace } from "./support/fixtures.js";
import { api, startTestFleet, type TestFleet } from "./support/fleet.js";

describe("admission caps", () => {
  let model: ScriptedModel;
  let fleet: TestFleet;
  let ns: string;

  beforeAll(async () => {
    ns = uniqueNamespace("adm");
    model = await startScriptedModel({
      port: 0,
      scenario: SCENARIOS["text-only"] as ScenarioInput,
      byModel: { slow: SCENARIOS.slow as ScenarioInput },
      logger,
    });
    fleet = await startTestFleet({
      namespace: ns,
      modelUrl: model.url,
      env: { FLEET_MAX_SANDBOXES: "1", POLLER_STATUS_INTERVAL_MS: "300" },
      services: [["api"], ["spawner"], ["spawner"], ["poller"], ["watchdog"]],
    });
  }, 120_000);

  afterAll(async () => {
    await fleet?.stop();
    await model?.close();
    await cleanup(ns, ns);
  });

  it("queues requests over the cap in order, shows their place, and runs them all, one sandbox at a time", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        (await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", { projectId: "p-adm", prompt: `q${i}` })).body
          .sessionId,
      );
      await new Promise((r) => setTimeout(r, 20));
    }
    const provider = new LocalSandboxProvider({ rootDir: fleet.sandboxDir }, logger);
    let peak = 0;
    const positions = new Map<string, Set<number>>();
    const done = await eventually(
      async () => {
        peak = Math.max(peak, (await provider.list()).length);
        const docs = await Promise.all(
          ids.map(async (id) => (await api<Session>(fleet, "GET", `/v1/sessions/${id}`)).body),
        );
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
    const get = async (id: string) => (await api<Session>(fleet, "GET", `/v1/sessions/${id}`)).body;
    const submit = async (body: Record<string, unknown>) =>
      (await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", { projectId: "p-adm", ...body })).body.sessionId;
    const holder = await submit({ prompt: "hold the slot", model: "slow" });
    await eventually(async () => (await get(holder)).status === "running", 60_000);
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
    expect(done.attempt).toBe(1);
    expect((await get(holder)).status).toBe("completed");
  }, 200_000);
});
