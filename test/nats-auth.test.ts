import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SCHEMA_VERSION, streamName, subjectFor } from "../shared/src/index.js";
import { defaultToolsDir, ensureNatsServer, freePort, generateNatsUsers, natsAuthConfig, startProcess, type ManagedProcess, type NatsUser } from "../shared/src/infra/index.js";
import { eventually, logger } from "./support/fixtures.js";
import { connectBus } from "../shared/src/bus/index.js";
import { progressSubject } from "../shared/src/contracts/index.js";

describe("NATS authorization: each user only its subjects", () => {
  let server: ManagedProcess;
  let url: string;
  let users: NatsUser[];
  const conns: NatsConnection[] = [];
  const as = async (role: NatsUser["role"]) => {
    const u = users.find((x) => x.role === role)!;
    const nc = await connect({ servers: url, user: u.user, pass: u.password, reconnect: false });
    conns.push(nc);
    return nc;
  };

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "fleet-natsauth-"));
    users = generateNatsUsers();
    const port = await freePort();
    url = `nats://127.0.0.1:${port}`;
    const conf = join(dir, "nats.conf");
    writeFileSync(conf, `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\n${natsAuthConfig(users)}`, { mode: 0o600 });
    server = startProcess({ name: "nats-auth", command: await ensureNatsServer(defaultToolsDir()), args: ["-c", conf], logFile: join(dir, "nats.log") });
    await eventually(async () => {
      const nc = await as("spawner");
      await nc.close();
      return true;
    }, 15_000, 100);
    // A fleet service provisions the streams and consumers, as it does at start.
    const spawner = users.find((u) => u.role === "spawner")!;
    const bus = await connectBus({ servers: url, namespace: "", name: "provision", user: spawner.user, pass: spawner.password }, { logger });
    await bus.provision();
    await bus.close();
  }, 60_000);

  afterAll(async () => {
    for (const nc of conns) await nc.close().catch(() => undefined);
    await server?.stop();
  });

  const request = (id: string) => JSON.stringify({ v: SCHEMA_VERSION, sessionId: id, projectId: "p", prompt: "x", requestedAt: 1 });

  it("refuses a connection without valid credentials", async () => {
    await expect(connect({ servers: url, reconnect: false })).rejects.toThrow(/Authorization/i);
    await expect(connect({ servers: url, user: "fleet-outside", pass: "wrong", reconnect: false })).rejects.toThrow(/Authorization/i);
  });

  it("lets an outside system publish session.requested and nothing the fleet publishes", async () => {
    const js = jetstream(await as("outside"), { timeout: 2_000 });
    const ack = await js.publish(subjectFor("", "requested"), request("from-outside"), { msgID: "requested:from-outside" });
    expect(ack.stream).toBe(streamName("", "work"));
    for (const kind of ["running", "completed", "failed", "cancelled"] as const) {
      await expect(js.publish(subjectFor("", kind), "{}"), kind).rejects.toThrow();
    }
    await expect(js.publish(subjectFor("", "log", "s1"), "{}")).rejects.toThrow();
  });

  it("lets an outside system follow logs and read completed/failed with its own consumers, not the rest", async () => {
    const poller = jetstream(await as("poller"));
    await poller.publish(subjectFor("", "log", "s-out"), JSON.stringify({ v: 1, sessionId: "s-out", seq: 1, at: 1, kind: "system", line: "hello" }));
    await poller.publish(subjectFor("", "completed"), JSON.stringify({ v: 1, sessionId: "s-out", projectId: "p", at: 1, response: "ok", toolCalls: 0 }));

    const outside = await as("outside");
    const js = jetstream(outside, { timeout: 2_000 });
    const ordered = await js.consumers.get(streamName("", "logs"), { filter_subjects: subjectFor("", "log", "s-out"), deliver_policy: DeliverPolicy.All });
    const line = await ordered.next({ expires: 2_000 });
    expect(line?.json<{ line: string }>().line).toBe("hello");

    const jsm = await jetstreamManager(outside, { checkAPI: false });
    await jsm.consumers.add(streamName("", "events"), { durable_name: "outside-results", ack_policy: AckPolicy.Explicit, filter_subject: subjectFor("", "completed") });
    const results = await js.consumers.get(streamName("", "events"), "outside-results");
    const done = await results.next({ expires: 2_000 });
    expect(done?.subject).toBe(subjectFor("", "completed"));
    done?.ack();

    // Cancel requests and the work queue are not for outside readers.
    await expect(jsm.consumers.add(streamName("", "events"), { durable_name: "peek-cancel", ack_policy: AckPolicy.Explicit, filter_subject: subjectFor("", "cancelled") })).rejects.toThrow();
    await expect(jsm.consumers.add(streamName("", "work"), { durable_name: "peek-work", ack_policy: AckPolicy.Explicit, filter_subject: subjectFor("", "running") })).rejects.toThrow();
  });

  it("keeps each fleet service to its own data subjects", async () => {
    const api = jetstream(await as("api"), { timeout: 2_000 });
    await api.publish(subjectFor("", "cancelled"), JSON.stringify({ v: 1, sessionId: "x", at: 1 }), { msgID: "cancelled:x" });
    await expect(api.publish(subjectFor("", "completed"), "{}")).rejects.toThrow();
    await expect(api.publish(subjectFor("", "running"), "{}")).rejects.toThrow();
    const watchdog = jetstream(await as("watchdog"), { timeout: 2_000 });
    await expect(watchdog.publish(subjectFor("", "requested"), request("w"))).rejects.toThrow();
  });

  it("lets the api ask the poller for sandbox progress, and nobody else answer or ask", async () => {
    const busAs = async (role: NatsUser["role"]) => {
      const u = users.find((x) => x.role === role)!;
      return connectBus({ servers: url, namespace: "", name: role, user: u.user, pass: u.password }, { logger });
    };
    const [api, poller, outside] = [await busAs("api"), await busAs("poller"), await as("outside")];
    try {
      const served = poller.serveProgress("s-1", async (p) => ({ ok: true, stored: p.lines.length, seq: 7 }));
      const msg = { v: SCHEMA_VERSION, sessionId: "s-1", attempt: 1, lines: [{ kind: "text" as const, line: "hi" }] };
      await eventually(async () => (await api.sendProgress(msg, 1_000).catch(() => undefined))?.ok === true, 10_000, 100);
      expect(await api.sendProgress(msg, 1_000)).toEqual({ ok: true, stored: 1, seq: 7 });
      // An outside system may neither ask nor listen on progress subjects.
      await expect(outside.request(progressSubject("", "s-1"), JSON.stringify(msg), { timeout: 1_000 })).rejects.toThrow();
      served.stop();
      // Once the server has the unsubscribe (a moment under load), nobody answers at all.
      await eventually(async () => /no poller watches/.test(await api.sendProgress(msg, 1_000).then(() => "", (e: Error) => e.message)), 10_000, 100);
    } finally {
      await api.close();
      await poller.close();
    }
  });
});
