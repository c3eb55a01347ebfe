import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { agentPassword, type Session } from "../shared/src/index.js";
import { SCENARIOS, startScriptedModel, type ScenarioInput, type ScriptedModel } from "../devtools/src/model/index.js";
import { LocalSandboxProvider } from "../shared/src/sandbox/local/index.js";
import { cleanup, eventually, logger, uniqueNamespace } from "./support/fixtures.js";
import { api, startTestFleet, type TestFleet } from "./support/fleet.js";

const MODEL_KEY = "sk-fleet-test-MODELKEY-7f3a9c";

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    try {
      const st = statSync(p);
      // Sockets (a sandbox's bridges) and other special files hold no text to search.
      return st.isDirectory() ? filesUnder(p) : st.isFile() ? [p] : [];
    } catch {
      return []; // removed while we looked
    }
  });
}

describe("secrets never reach logs or stored documents", () => {
  let model: ScriptedModel;
  let fleet: TestFleet;
  let ns: string;

  beforeAll(async () => {
    ns = uniqueNamespace("sec");
    model = await startScriptedModel({ port: 0, scenario: SCENARIOS.demo as ScenarioInput, logger });
    fleet = await startTestFleet({
      namespace: ns,
      modelUrl: model.url,
      env: { FLEET_MODEL_API_KEY: MODEL_KEY, LOG_LEVEL: "trace" },
      services: [["api"], ["spawner"], ["poller"], ["watchdog"]],
    });
  }, 120_000);

  afterAll(async () => {
    await fleet?.stop();
    await model?.close();
    await cleanup(ns, ns);
  });

  it("runs a whole session at trace level and finds none of its secrets anywhere", async () => {
    const { body } = await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", {
      projectId: "p-sec",
      prompt: "go",
    });
    const done = await eventually(async () => {
      const s = (await api<Session>(fleet, "GET", `/v1/sessions/${body.sessionId}`)).body;
      return s.status === "completed" ? s : undefined;
    }, 90_000);
    // The sandbox goes right after the session ends; look once it is gone.
    const provider = new LocalSandboxProvider({ rootDir: fleet.sandboxDir }, logger);
    await eventually(async () => (await provider.list({ sessionId: done.id })).length === 0, 15_000);
    const password = agentPassword(fleet.agentSecret, done.id, done.attempt);
    const secrets = {
      "model api key": MODEL_KEY,
      "agent secret": fleet.agentSecret,
      "agent password": password,
      "agent basic auth": Buffer.from(`opencode:${password}`).toString("base64"),
      "callback signing key": fleet.callbackKeys.split(":")[1] as string,
      "api key": fleet.apiKey,
    };
    // Every service log (at trace level) and every file the fleet left on disk.
    const haystacks: Array<[string, string]> = filesUnder(fleet.dir).map((f) => [f, readFileSync(f, "latin1")]);
    expect(haystacks.some(([f]) => f.endsWith("spawner-0.log"))).toBe(true);
    // Every document of every collection of the fleet's database.
    const client = new MongoClient(inject("mongoUri"));
    const db = client.db(fleet.database);
    for (const c of await db.listCollections().toArray()) {
      haystacks.push([`collection ${c.name}`, JSON.stringify(await db.collection(c.name).find({}).toArray())]);
    }
    await client.close();
    // The haystacks are real: the session's own id is in them, where a leaked secret would be too.
    expect(haystacks.filter(([, t]) => t.includes(done.id)).length).toBeGreaterThan(3);
    const found = haystacks.flatMap(([where, text]) =>
      Object.entries(secrets)
        .filter(([, v]) => text.includes(v))
        .map(([what]) => `${what} in ${where}`),
    );
    expect(found).toEqual([]);
  }, 150_000);
});
