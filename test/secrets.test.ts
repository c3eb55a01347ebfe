import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { describe, expect, inject, it } from "vitest";
import { agentPassword } from "../shared/src/index.js";
import { eventually } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";

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
  // The model key is the gateway's alone; the scripted model refuses calls without it, so the
  // session completing shows the key was used, upstream of the gateway only.
  const fleet = useTestFleet({
    prefix: "sec",
    model: { scenario: "demo", apiKey: MODEL_KEY },
    env: { LOG_LEVEL: "trace" },
    services: [["gateway", { FLEET_MODEL_API_KEY: MODEL_KEY }], ["api"], ["spawner"], ["poller"], ["watchdog"]],
  });

  it("runs a whole session at trace level and finds none of its secrets anywhere", async () => {
    const id = await fleet.submit({ projectId: "p-sec", prompt: "go" });
    const done = await eventually(async () => {
      const s = await fleet.get(id);
      return s.status === "completed" ? s : undefined;
    }, 90_000);
    // Its calls went through the gateway, into the ledger (which is among the documents searched).
    expect(done.usage?.calls).toBeGreaterThan(0);
    // The sandbox goes right after the session ends; look once it is gone.
    await fleet.noSandbox(done.id);
    const password = agentPassword(fleet.agentSecret, done.id, done.attempt);
    const secrets = {
      "model api key": MODEL_KEY,
      "agent secret": fleet.agentSecret,
      "agent password": password,
      "agent basic auth": Buffer.from(`opencode:${password}`).toString("base64"),
      "callback signing key": fleet.callbackKeys.split(":")[1] as string,
      "gateway signing key": fleet.gatewayKeys.split(":")[1] as string,
      "api key": fleet.apiKey,
    };
    // Every service log (at trace level) and every file the fleet left on disk.
    const haystacks: Array<[string, string]> = filesUnder(fleet.dir).flatMap((f): Array<[string, string]> => {
      try {
        return [[f, readFileSync(f, "latin1")]];
      } catch {
        return []; // removed between the listing and the read (a killed sandbox's folder going away)
      }
    });
    expect(haystacks.some(([f]) => f.endsWith("spawner-0.log"))).toBe(true);
    expect(haystacks.some(([f]) => f.endsWith("gateway-0.log"))).toBe(true);
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
