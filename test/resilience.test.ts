import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MongoClient } from "mongodb";
import { SessionConfig, connectBus, type Session } from "../shared/src/index.js";
import { defaultToolsDir, ensureFerretDb, freePort, pingMongo } from "../devtools/src/infra/index.js";
import { SCENARIOS, type ScenarioInput } from "../devtools/src/model/index.js";
import { MongoSessionStore } from "../shared/src/store/index.js";
import { eventually, logger, present, sleep } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { api } from "./support/fleet.js";
import { Restartable, restartableNats } from "./support/restartable.js";

const steps: ScenarioInput = {
  name: "steps",
  turns: [
    ...[1, 2, 3, 4, 5, 6].map((i) => ({
      type: "tools" as const,
      calls: [{ name: "bash", arguments: { command: `sleep 1; echo step ${i}` } }],
    })),
    { type: "text" as const, text: "All steps done." },
  ],
};

describe("the fleet rides out a restarted nats-server, a store outage and a shutdown", () => {
  let nats: Restartable;
  let ferret: Restartable;
  let natsUrl: string;
  let mongoUri: string;
  const fleet = useTestFleet({
    prefix: "res",
    timeoutMs: 180_000,
    infra: async () => {
      const dir = mkdtempSync(join(tmpdir(), "fleet-resilience-"));
      const tools = defaultToolsDir();
      const ferretBin = await ensureFerretDb(tools);
      const fp = await freePort();
      mongoUri = `mongodb://127.0.0.1:${fp}/`;
      ({ server: nats, url: natsUrl } = await restartableNats("nats", dir));
      ferret = new Restartable(
        "ferretdb",
        ferretBin,
        [
          "--handler=sqlite",
          `--sqlite-url=file:${join(dir, "fdb")}/`,
          `--listen-addr=127.0.0.1:${fp}`,
          `--state-dir=${join(dir, "fdb")}`,
          "--debug-addr=-",
          "--telemetry=disable",
          "--log-level=error",
        ],
        join(dir, "ferretdb.log"),
        () => pingMongo(mongoUri, 500),
      );
      mkdirSync(join(dir, "fdb"), { recursive: true });
      await Promise.all([nats.start(), ferret.start()]);
      return { natsUrl, mongoUri };
    },
    model: { scenario: steps, byModel: { ...SCENARIOS, steps } },
    env: { FLEET_ACK_WAIT_MS: "6000", POLLER_STATUS_INTERVAL_MS: "500", FLEET_SHUTDOWN_MS: "5000" },
    services: [["api"], ["spawner"], ["poller"], ["poller"], ["watchdog"]],
    submitDefaults: { projectId: "p-res", prompt: "go", model: "steps" },
    teardown: async () => {
      await nats?.stop();
      await ferret?.stop();
    },
  });
  const { submit, get } = fleet;
  const lineCount = async (id: string) =>
    (await api<{ lines: unknown[] }>(fleet, "GET", `/v1/sessions/${id}/logs`)).body.lines.length;
  const completes = async (id: string) => {
    const s = await eventually(
      async () => {
        const d = await get(id).catch(() => undefined);
        return d && ["completed", "failed", "cancelled"].includes(d.status) ? d : undefined;
      },
      120_000,
      250,
    );
    expect(s.status).toBe("completed");
    const lines = (await api<{ lines: Array<{ seq: number; line: string }> }>(fleet, "GET", `/v1/sessions/${id}/logs`))
      .body.lines;
    expect(lines.map((l) => l.seq)).toEqual(lines.map((_, i) => i + 1));
    for (const i of [1, 2, 3, 4, 5, 6]) expect(lines.filter((l) => l.line.includes(`echo step ${i}`))).toHaveLength(2);
    return s;
  };

  it("completes a session in flight across a nats-server restart", async () => {
    const id = await submit();
    await eventually(async () => (await lineCount(id)) >= 5, 60_000);
    await nats.stop();
    await sleep(2_000);
    await nats.start();
    await completes(id);
    // The services reconnected on their own: a new session runs too.
    const next = await submit({ model: "text-only" });
    await eventually(async () => (await get(next)).status === "completed", 90_000);
  }, 180_000);

  it("completes a session in flight across 10 s without the store: its lines go on reaching the stream, and are all stored once after", async () => {
    const id = await submit();
    await eventually(async () => (await lineCount(id)) >= 5, 60_000);
    const bus = await connectBus(
      { servers: natsUrl, namespace: fleet.namespace, name: "resilience-reader" },
      { logger },
    );
    try {
      const down = Date.now();
      await ferret.stop();
      const before = await bus.lastLogSeq(id);
      // Lines are published first and archived after: without the store, progress still streams.
      await eventually(async () => (await bus.lastLogSeq(id)) >= before + 3, 9_000, 200);
      await sleep(Math.max(0, 10_000 - (Date.now() - down)));
      await ferret.start();
      await completes(id);
      // The archiver caught up: the store itself holds every line of the stream, each once.
      const last = await bus.lastLogSeq(id);
      const client = await MongoClient.connect(mongoUri);
      try {
        const lines = client.db(fleet.database).collection<{ seq: number }>("session_logs");
        const stored = await eventually(
          async () => {
            const seqs = (await lines.find({ sessionId: id }, { projection: { seq: 1 } }).toArray())
              .map((d) => d.seq)
              .sort((a, b) => a - b);
            return seqs.length >= last ? seqs : undefined;
          },
          30_000,
          250,
        );
        expect(stored).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      } finally {
        await client.close();
      }
    } finally {
      await bus.close();
    }
  }, 180_000);

  it("a poller stopped with SIGTERM exits 0 and hands its session over at once", async () => {
    const id = await submit();
    await eventually(async () => (await lineCount(id)) >= 5, 60_000);
    const owner = present(
      fleet.services.find((s) => s.name === "poller" && s.process.running && watchedBy(s.process.logFile, id)),
      "the poller watching it",
    );
    const stoppedAt = Date.now();
    owner.process.stop(20_000);
    expect(await owner.process.exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(6_000);
    // Released with a nak: the other poller resumes well before the 6 s ack deadline would pass.
    await eventually(
      () => fleet.services.some((s) => s.name === "poller" && s !== owner && watchedBy(s.process.logFile, id, 2)),
      5_000,
      100,
    );
    await completes(id);
    await fleet.add("poller");
  }, 180_000);

  it("every idle service stops on SIGTERM with exit 0 within its shutdown bound", async () => {
    const extra = await Promise.all((["api", "spawner", "poller", "watchdog"] as const).map((n) => fleet.add(n)));
    await Promise.all(
      extra.map(async (s) => {
        const t = Date.now();
        void s.process.stop(20_000);
        expect(await s.process.exited, s.name).toBe(0);
        expect(Date.now() - t, s.name).toBeLessThan(7_000);
      }),
    );
  }, 120_000);

  it("a submit retried after the api died between storing and publishing yields one session", async () => {
    // As if the api stored the document and died before publishing: the client's retry repairs it.
    const store = await MongoSessionStore.connect({ uri: mongoUri, database: fleet.database }, logger);
    await store.create({
      id: "crashed-submit",
      projectId: "p-res",
      prompt: "go",
      config: SessionConfig.parse({ model: "text-only" }),
    });
    await store.close();
    const retried = await api<{ sessionId: string }>(fleet, "POST", "/v1/sessions", {
      projectId: "p-res",
      prompt: "go",
      model: "text-only",
      sessionId: "crashed-submit",
    });
    expect(retried.body.sessionId).toBe("crashed-submit");
    const s = await eventually(
      async () => ((await get("crashed-submit")).status === "completed" ? get("crashed-submit") : undefined),
      90_000,
    );
    expect(s.attempt).toBe(1);
    const page = await api<{ items: Session[] }>(fleet, "GET", "/v1/sessions?projectId=p-res&limit=200");
    expect(page.body.items.filter((x) => x.id === "crashed-submit")).toHaveLength(1);
  }, 120_000);
});

function watchedBy(file: string, id: string, delivery?: number): boolean {
  const text = readFileSync(file, "utf8");
  return text
    .split("\n")
    .some(
      (l) =>
        l.includes(`"sessionId":"${id}"`) &&
        l.includes("watching session") &&
        (delivery === undefined || l.includes(`"delivery":${delivery}`)),
    );
}
