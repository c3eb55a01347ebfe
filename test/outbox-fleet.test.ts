import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { feedStreamName, mintCallbackToken, subjectFor, type Session } from "../shared/src/index.js";
import { generateNatsUsers, natsAuthConfig, provisionOutsideFeed, type NatsUser } from "../shared/src/bus/index.js";
import { defaultToolsDir, ensureNatsServer, freePort } from "../devtools/src/infra/index.js";
import { SCENARIOS, type ScenarioInput } from "../devtools/src/model/index.js";
import { eventually, sleep } from "./support/fixtures.js";
import { useTestFleet } from "./support/fleet-fixture.js";
import { Restartable } from "./support/restartable.js";

/** Busy long enough that no session ends by itself during the test. */
const long: ScenarioInput = {
  name: "long",
  turns: [
    { type: "tools", calls: [{ name: "bash", arguments: { command: "sleep 90" } }] },
    { type: "text", text: "Slept." },
  ],
};

/**
 * The outbox with the whole fleet as processes: sessions end while the fleet's nats-server is down
 * for 10 s, by the paths that need no bus (a sandbox's completion callback to the api, the poller
 * finding the sandbox dead, the watchdog's deadline). The nats-server has the launcher's accounts
 * and users (each service its own role), restartable in place; the outside reader is the outside
 * role with a durable consumer of its own on the terminal subjects of its feed.
 */
describe("terminal events of sessions that end while the bus is down reach an outside consumer once", () => {
  const users = generateNatsUsers();
  const user = (role: NatsUser["role"]) => users.find((u) => u.role === role) as NatsUser;
  const as = (role: NatsUser["role"]) => ({ user: user(role).user, pass: user(role).password });
  const role = (r: NatsUser["role"]): Record<string, string> => ({
    NATS_USER: user(r).user,
    NATS_PASSWORD: user(r).password,
  });
  let dir: string;
  let nats: Restartable;
  let reader: NatsConnection;
  const fleet = useTestFleet({
    prefix: "obf",
    timeoutMs: 180_000,
    infra: async (ns) => {
      dir = mkdtempSync(join(tmpdir(), "fleet-outbox-fleet-"));
      const port = await freePort();
      const natsUrl = `nats://127.0.0.1:${port}`;
      const conf = join(dir, "nats.conf");
      writeFileSync(
        conf,
        `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\n${natsAuthConfig(users, ns)}`,
        { mode: 0o600 },
      );
      nats = new Restartable(
        "nats-obf",
        await ensureNatsServer(defaultToolsDir()),
        ["-c", conf],
        join(dir, "nats.log"),
        async () => {
          await (await connect({ servers: natsUrl, reconnect: false, timeout: 500, ...as("spawner") })).close();
        },
      );
      await nats.start();
      const provisioner = await connect({ servers: natsUrl, ...as("spawner") });
      await provisionOutsideFeed(provisioner, ns);
      await provisioner.close();
      reader = await connect({ servers: natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...as("outside") });
      return { natsUrl };
    },
    model: { scenario: long, byModel: { ...SCENARIOS, long } },
    env: { POLLER_STATUS_INTERVAL_MS: "500", WATCHDOG_INTERVAL_MS: "500", REAPER_INTERVAL_MS: "600000" },
    services: [
      ["api", role("api")],
      ["spawner", role("spawner")],
      ["poller", role("poller")],
      ["watchdog", role("watchdog")],
    ],
    store: true,
    submitDefaults: { projectId: "p-obf", prompt: "go", model: "long" },
    teardown: async () => {
      await reader?.close().catch(() => undefined);
      await nats?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  });
  const ns = fleet.namespace;
  const { submit } = fleet;
  const get = async (id: string) => (await fleet.store.get(id)) as Session;

  it("a callback completion, a deadline and a dead sandbox during a 10 s outage: one event each, slots free, no sandbox", async () => {
    const jsm = await jetstreamManager(reader, { checkAPI: false });
    // What the outside account is lent of the terminal subjects (bus.md, Authorization).
    const filters = (["completed", "failed", "cancelled"] as const).map((k) => subjectFor(ns, k));
    await jsm.consumers.add(feedStreamName(ns), {
      durable_name: "acme",
      ack_policy: AckPolicy.Explicit,
      filter_subjects: filters,
    });
    const [done, lost, late] = [await submit({}), await submit({}), await submit({ timeoutMs: 45_000 })];
    for (const id of [done, lost, late])
      await eventually(async () => (await get(id)).status === "running", 60_000, 200);
    // The bus goes 6 s before the deadline, so the watchdog ends that session during the outage.
    const { deadlineAt } = await get(late);
    expect(deadlineAt - Date.now(), "setup took too long for the deadline to fall in the outage").toBeGreaterThan(
      6_000,
    );
    await sleep(deadlineAt - 6_000 - Date.now());

    const down = Date.now();
    await nats.stop();
    const token = await mintCallbackToken(
      { keys: [{ kid: "k1", secret: fleet.callbackKeys.split(":")[1] as string }] },
      done,
      1,
    );
    const completed = await fetch(new URL(`/v1/callbacks/sessions/${done}/complete`, fleet.apiUrl), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ response: "done from inside" }),
    });
    // Soft: a failure here (before the outbox: 503, the event's publish failed after the write)
    // should not hide what the outside consumer got.
    expect.soft(completed.status).toBe(200);
    process.kill((await get(lost)).sandbox?.agentPid as number, "SIGKILL");
    // The api (callback) and the watchdog (deadline) act on the store alone. No poller watches a
    // session while the bus is away (its hold on the watch ended with the connection), so the dead
    // sandbox is noticed by the poller that takes the watch once the bus is back.
    const ended = await eventually(
      async () => {
        const all = await Promise.all([done, late].map(get));
        return all.every((s) => ["completed", "failed"].includes(s.status)) ? all : undefined;
      },
      10_000,
      200,
    );
    await sleep(Math.max(0, 10_000 - (Date.now() - down)));
    const up = Date.now();
    expect((await get(lost)).status).toBe("running");
    await nats.start();
    // Each ended while the bus was down, so its event could only go out after.
    for (const s of ended) expect((s.completedAt ?? 0) > down && (s.completedAt ?? 0) < up, s.id).toBe(true);
    expect(ended.map((s) => `${s.status} ${s.error?.code ?? ""}`)).toEqual(["completed ", "failed timeout"]);
    const failed = await eventually(
      async () => ((await get(lost)).status === "failed" ? get(lost) : undefined),
      30_000,
      200,
    );
    expect(failed.error?.code).toBe("sandbox_lost");

    const js = jetstream(reader, { timeout: 2_000 });
    // The reader reconnects on its own; JetStream answers a moment after the server is up.
    const consumer = await eventually(
      () => js.consumers.get(feedStreamName(ns), "acme").catch(() => undefined),
      20_000,
      250,
    );
    const seen: string[] = [];
    const drain = async () => {
      for (let m = await consumer.next({ expires: 1_000 }); m; m = await consumer.next({ expires: 1_000 })) {
        seen.push(`${m.subject.slice(ns.length + 1)} ${m.json<{ sessionId: string }>().sessionId}`);
        await m.ackAck();
      }
    };
    await eventually(
      async () => {
        await drain().catch(() => undefined);
        return seen.length >= 3;
      },
      30_000,
      250,
    ).catch(() => undefined);
    // More watchdog rounds: nothing more comes.
    await sleep(2_000);
    await drain();
    expect
      .soft(seen.sort())
      .toEqual([`session.completed ${done}`, `session.failed ${late}`, `session.failed ${lost}`].sort());
    for (const id of [done, lost, late]) expect((await get(id)).eventOwed, id).toBeUndefined();
    expect((await fleet.store.heldSlots()).filter((s) => [done, lost, late].includes(s.sessionId))).toEqual([]);
    for (const id of [done, lost, late]) await fleet.noSandbox(id, 15_000, 250);
  }, 180_000);
});
