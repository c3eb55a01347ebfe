import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoBulkWriteError, type Collection } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { defaultToolsDir } from "../devtools/src/infra/index.js";
import { startFerretDb } from "../devtools/src/infra/servers.js";
import { ensureFerretDb, ensureUpstreamFerretDb } from "../devtools/src/infra/tools.js";
import { MongoSessionStore } from "../shared/src/store/index.js";
import { logger } from "./support/fixtures.js";
import {
  Racers,
  describeBackend,
  explainUsesIndex,
  raceRounds,
  shuffled,
  withDatabase,
  type StoreBackend,
} from "./support/store-conformance.js";

/**
 * The single-document semantics the fleet's store relies on, on every backend this run reaches:
 * the run's store always, and MONGODB_URI when it names another server.
 */
const external = process.env.MONGODB_URI;
const backends: StoreBackend[] = [
  await describeBackend(
    external === inject("mongoUri") ? "MONGODB_URI (the run's store)" : "the run's store",
    inject("mongoUri"),
  ),
];
if (external && external !== inject("mongoUri")) backends.push(await describeBackend("MONGODB_URI", external));

type Status = { _id: string; status: string; by?: number };
type Counter = { _id: string; n: number };
type Wide = { _id: string; [field: string]: string | number };
type Keyed = { _id: string; k: number };
type Versioned = { _id: string; v: number };

for (const backend of backends) {
  describe(`store conformance on ${backend.source}: ${backend.kind} ${backend.version}`, () => {
    let racers: Racers;
    beforeAll(async () => {
      racers = await Racers.open(backend.uri, 8);
    });
    afterAll(async () => {
      await racers.close();
    });

    /**
     * `n` rounds on as many documents (ids `prefix` and the round, status "a") in a database of their own, each
     * raced by every racer through its own connection; the rounds by their number of winners.
     */
    const raceOnDocuments = (
      collection: string,
      prefix: string,
      n: number,
      attempt: (coll: Collection<Status>, id: string, racer: number) => Promise<boolean>,
    ): Promise<Record<number, number>> =>
      withDatabase(racers, async (db) => {
        await racers
          .coll<Status>(0, db, collection)
          .insertMany(Array.from({ length: n }, (_, i) => ({ _id: `${prefix}${i}`, status: "a" })));
        const byWinners = await raceRounds(n, racers.size, (round, racer) =>
          attempt(racers.coll<Status>(racer, db, collection), `${prefix}${round}`, racer),
        );
        return Object.fromEntries(byWinners);
      });

    it("gives exactly one winner to 8 racing compare-and-sets, in each of 200 rounds", async () => {
      const byWinners = await raceOnDocuments("cas", "r", 200, async (coll, _id, racer) => {
        return (await coll.findOneAndUpdate({ _id, status: "a" }, { $set: { status: "b", by: racer } })) !== null;
      });
      // Rounds by their number of winners: every round must have exactly one.
      expect(byWinners).toEqual({ 1: 200 });
    });

    it("gives a racing conditional delete to one caller only, in each of 100 rounds", async () => {
      const byWinners = await raceOnDocuments("del", "d", 100, async (coll, _id) => {
        return (await coll.findOneAndDelete({ _id, status: "a" })) !== null;
      });
      expect(byWinners).toEqual({ 1: 100 });
    });

    it("keeps all 400 of 400 concurrent $inc on one document", async () => {
      await withDatabase(racers, async (db) => {
        await racers.coll<Counter>(0, db, "inc").insertOne({ _id: "counter", n: 0 });
        const results = await Promise.all(
          Array.from({ length: 400 }, (_, i) =>
            racers.coll<Counter>(i, db, "inc").updateOne({ _id: "counter" }, { $inc: { n: 1 } }),
          ),
        );
        expect(results.reduce((sum, r) => sum + r.modifiedCount, 0)).toBe(400);
        expect((await racers.coll<Counter>(0, db, "inc").findOne({ _id: "counter" }))?.n).toBe(400);
      });
    });

    it("keeps all 100 concurrent $set of different fields on one document", async () => {
      await withDatabase(racers, async (db) => {
        await racers.coll<Wide>(0, db, "set").insertOne({ _id: "wide" });
        await Promise.all(
          Array.from({ length: 100 }, (_, i) =>
            racers.coll<Wide>(i, db, "set").updateOne({ _id: "wide" }, { $set: { [`f${i}`]: i } }),
          ),
        );
        const { _id, ...fields } = (await racers.coll<Wide>(0, db, "set").findOne({ _id: "wide" })) ?? { _id: "" };
        expect(Object.keys(fields).length).toBe(100);
        expect(fields).toEqual(Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`f${i}`, i])));
      });
    });

    it("reports a duplicate _id in an unordered insertMany as 11000 and stores the rest", async () => {
      await withDatabase(racers, async (db) => {
        const coll = racers.db(db).collection<Versioned>("ins");
        await coll.insertOne({ _id: "old", v: 0 });
        const batch: Versioned[] = [
          { _id: "a", v: 1 },
          { _id: "old", v: 1 },
          { _id: "b", v: 1 },
          { _id: "a", v: 2 },
          { _id: "c", v: 1 },
        ];
        const err: unknown = await coll.insertMany(batch, { ordered: false }).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(MongoBulkWriteError);
        const bulk = err as MongoBulkWriteError;
        const writeErrors = Array.isArray(bulk.writeErrors) ? bulk.writeErrors : [bulk.writeErrors];
        expect(writeErrors.map((e) => [e.index, e.code])).toEqual([
          [1, 11000],
          [3, 11000],
        ]);
        expect(bulk.insertedCount).toBe(3);
        expect(await coll.find({}).sort({ _id: 1 }).toArray()).toEqual([
          { _id: "a", v: 1 },
          { _id: "b", v: 1 },
          { _id: "c", v: 1 },
          { _id: "old", v: 0 },
        ]);
      });
    });

    const rangeIndex =
      backend.kind === "mongodb"
        ? "from the index"
        : "(FerretDB's SQLite backend serves no secondary index: order checked, plan not)";
    it(`answers a sorted range query on an indexed field in order ${rangeIndex}`, async () => {
      await withDatabase(racers, async (db) => {
        const coll = racers.db(db).collection<Keyed>("range");
        await coll.createIndex({ k: 1 }, { name: "by_k" });
        await coll.insertMany(shuffled(300).map((k) => ({ _id: `k${k}`, k })));
        const query = coll.find({ k: { $gte: 100, $lt: 200 } }).sort({ k: 1 });
        expect((await query.toArray()).map((d) => d.k)).toEqual(Array.from({ length: 100 }, (_, i) => 100 + i));
        const desc = await coll
          .find({ k: { $gt: 250 } })
          .sort({ k: -1 })
          .limit(5)
          .toArray();
        expect(desc.map((d) => d.k)).toEqual([299, 298, 297, 296, 295]);
        if (backend.kind === "mongodb") expect(explainUsesIndex(await query.explain())).toBe(true);
      });
    });

    it("serves a filter naming _id and another field from the _id index", async () => {
      await withDatabase(racers, async (db) => {
        const coll = racers.db(db).collection<Status>("byid");
        await coll.insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: `s${i}`, status: i % 2 ? "a" : "b" })));
        expect(await coll.find({ _id: "s3", status: "a" }).toArray()).toEqual([{ _id: "s3", status: "a" }]);
        expect(await coll.find({ _id: "s3", status: "b" }).toArray()).toEqual([]);
        expect(explainUsesIndex(await coll.find({ _id: "s3", status: "a" }).explain())).toBe(true);
      });
    });
  });
}

describe("the store adapter's start-up check", () => {
  const dirs: string[] = [];
  const started: Array<{ stop(): Promise<void> }> = [];
  afterAll(async () => {
    await Promise.all(started.map((p) => p.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function serve(binary: string): Promise<string> {
    const dataDir = mkdtempSync(join(tmpdir(), "fleet-storecheck-"));
    dirs.push(dataDir);
    const server = await startFerretDb({ binary, dataDir, persistent: false });
    started.push(server.process);
    return server.url;
  }

  it("refuses upstream FerretDB with the reason and what to run instead, unless told to start anyway", {
    timeout: 600_000,
  }, async () => {
    const uri = await serve(await ensureUpstreamFerretDb(join(defaultToolsDir(), "upstream")));
    const refused: unknown = await MongoSessionStore.connect({ uri, database: "check" }, logger).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ code: "config", retryable: false });
    expect(String((refused as Error).message)).toMatch(
      /FerretDB v1\.24\.2, whose conditional updates are not atomic.*\.\/fleet.*MongoDB.*FLEET_STORE_ALLOW_UNPATCHED=1/s,
    );
    const unsafe = await MongoSessionStore.connect({ uri, database: "check", allowUnsafeStore: true }, logger);
    await unsafe.ping();
    await unsafe.close();
  });

  it("accepts the fleet's FerretDB build", { timeout: 600_000 }, async () => {
    const uri = await serve(await ensureFerretDb(defaultToolsDir()));
    const store = await MongoSessionStore.connect({ uri, database: "check" }, logger);
    await store.ping();
    await store.close();
  });
});
