import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import type { BenchInfra } from "./env.js";

/**
 * The raw limits of the bus and the store on this machine, with the same client libraries the fleet
 * uses, measured in the same run as the fleet's figures. Payloads are the size of a log line.
 */
export interface Baselines {
  /** JetStream async publish with acks, file storage: messages/s. */
  jsPublish: number;
  /** Pull consume with explicit ack: messages/s. */
  jsConsume: number;
  /** Single findOneAndUpdate calls (16 at a time): operations/s. */
  findOneAndUpdate: number;
  /** insertMany of log-line-sized documents, 100 per call: documents/s. */
  insertManyDocs: number;
  /** insertMany calls/s in that run. */
  insertManyCalls: number;
}

const PAYLOAD = JSON.stringify({
  v: 1,
  sessionId: "bench-session-000000",
  seq: 1,
  at: Date.now(),
  kind: "tool",
  line: "✓ Bash echo simulated step 1".padEnd(100, "."),
});

export async function measureBaselines(b: BenchInfra, n: number): Promise<Baselines> {
  const jsm = await b.js.jetstreamManager();
  const stream = "BENCH_RAW";
  await jsm.streams.delete(stream).catch(() => undefined);
  await jsm.streams.add({
    name: stream,
    subjects: ["bench.raw.>"],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
  });

  // Async publish: a window of outstanding publishes, each acknowledged by the server.
  let t = performance.now();
  const window = 1_000;
  for (let sent = 0; sent < n; ) {
    const batch = Math.min(window, n - sent);
    await Promise.all(Array.from({ length: batch }, (_, i) => b.js.publish(`bench.raw.${(sent + i) % 100}`, PAYLOAD)));
    sent += batch;
  }
  const jsPublish = n / ((performance.now() - t) / 1000);

  await jsm.consumers.add(stream, {
    durable_name: "raw",
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: 10_000,
  });
  const consumer = await b.js.consumers.get(stream, "raw");
  t = performance.now();
  const messages = await consumer.consume({ max_messages: 1_000 });
  let got = 0;
  for await (const m of messages) {
    m.ack();
    if (++got >= n) break;
  }
  const jsConsume = n / ((performance.now() - t) / 1000);
  await jsm.streams.delete(stream);

  const db = b.mongo.db("bench_raw");
  await db.dropDatabase();
  const docs = db.collection<{ _id: string; n: number; status: string; at: number }>("docs");
  const ids = Array.from({ length: 200 }, (_, i) => `doc-${i}`);
  await docs.insertMany(ids.map((_id) => ({ _id, n: 0, status: "pending", at: 0 })));
  const updates = Math.max(200, Math.floor(n / 5));
  t = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < updates) {
        const i = next++;
        await docs.findOneAndUpdate(
          { _id: ids[i % ids.length] as string },
          { $inc: { n: 1 }, $set: { at: Date.now(), status: "running" } },
          { returnDocument: "after" },
        );
      }
    }),
  );
  const findOneAndUpdate = updates / ((performance.now() - t) / 1000);

  const lines = db.collection<{ _id: string; sessionId: string; seq: number; at: number; kind: string; line: string }>(
    "lines",
  );
  const perCall = 100;
  const calls = Math.max(10, Math.floor(n / perCall));
  t = performance.now();
  let call = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (call < calls) {
        const c = call++;
        await lines.insertMany(
          Array.from({ length: perCall }, (_, i) => ({
            _id: `s${c}:${i}`,
            sessionId: `s${c}`,
            seq: i + 1,
            at: Date.now(),
            kind: "tool",
            line: "✓ Bash echo simulated step".padEnd(100, "."),
          })),
          { ordered: false },
        );
      }
    }),
  );
  const seconds = (performance.now() - t) / 1000;
  await db.dropDatabase();
  return {
    jsPublish,
    jsConsume,
    findOneAndUpdate,
    insertManyDocs: (calls * perCall) / seconds,
    insertManyCalls: calls / seconds,
  };
}
