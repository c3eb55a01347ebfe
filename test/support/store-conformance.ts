import { randomBytes } from "node:crypto";
import { MongoClient, type Collection, type Db, type Document } from "mongodb";

/** A MongoDB-protocol server the conformance suite checks, named by what it says it is. */
export interface StoreBackend {
  /** How the suite found it: the run's store (vitest's mongoUri) or MONGODB_URI. */
  source: string;
  uri: string;
  kind: "mongodb" | "ferretdb";
  version: string;
}

export async function describeBackend(source: string, uri: string): Promise<StoreBackend> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5_000 });
  try {
    const info = await client.db("admin").command({ buildInfo: 1 });
    const ferretdb: unknown = info.ferretdbVersion;
    return typeof ferretdb === "string"
      ? { source, uri, kind: "ferretdb", version: ferretdb }
      : { source, uri, kind: "mongodb", version: String(info.version) };
  } finally {
    await client.close();
  }
}

/**
 * Racing callers, one connection each, so their commands reach the server at the same time rather
 * than one after another down a shared socket.
 */
export class Racers {
  private constructor(readonly clients: MongoClient[]) {}

  static async open(uri: string, n: number): Promise<Racers> {
    return new Racers(
      await Promise.all(Array.from({ length: n }, () => new MongoClient(uri, { maxPoolSize: 4 }).connect())),
    );
  }

  get size(): number {
    return this.clients.length;
  }

  /** The collection as racer `i` (any number: taken modulo the racers) sees it. */
  coll<T extends Document = Document>(i: number, db: string, name: string): Collection<T> {
    return (this.clients[i % this.clients.length] as MongoClient).db(db).collection<T>(name);
  }

  db(name: string): Db {
    return (this.clients[0] as MongoClient).db(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}

/** Runs `fn` on a database of its own, dropped afterwards: each test its own data. */
export async function withDatabase<T>(racers: Racers, fn: (db: string) => Promise<T>): Promise<T> {
  const name = `conf${randomBytes(5).toString("hex")}`;
  try {
    return await fn(name);
  } finally {
    await racers
      .db(name)
      .dropDatabase()
      .catch(() => undefined);
  }
}

/** Races `racers` calls of `attempt` per round and counts the rounds by their number of winners. */
export async function raceRounds(
  rounds: number,
  racers: number,
  attempt: (round: number, racer: number) => Promise<boolean>,
): Promise<Map<number, number>> {
  const byWinners = new Map<number, number>();
  for (let round = 0; round < rounds; round++) {
    const won = await Promise.all(Array.from({ length: racers }, (_, racer) => attempt(round, racer)));
    const winners = won.filter(Boolean).length;
    byWinners.set(winners, (byWinners.get(winners) ?? 0) + 1);
  }
  return byWinners;
}

/**
 * Whether a find's explain output says an index served it: MongoDB names an index scan (or its
 * _id fast paths) in the winning plan; FerretDB on SQLite passes on SQLite's query plan, where a
 * search "USING INDEX" is an index and "SCAN" is the whole table.
 */
export function explainUsesIndex(explain: Document): boolean {
  const planner: unknown = explain.queryPlanner;
  const stages: string[] = [];
  const walk = (node: unknown, key = ""): void => {
    if (typeof node === "string") {
      if (key === "stage") stages.push(node);
      else if (/USING (COVERING )?INDEX|USING (INTEGER )?PRIMARY KEY/.test(node)) stages.push("SQLITE_INDEX");
    } else if (Array.isArray(node)) for (const n of node) walk(n);
    else if (node && typeof node === "object") for (const [k, v] of Object.entries(node)) walk(v, k);
  };
  walk(planner);
  return stages.some((s) => ["IXSCAN", "IDHACK", "EXPRESS_IXSCAN", "SQLITE_INDEX"].includes(s));
}

/** A shuffled 0..n-1, so insertion order says nothing about the sorted order. */
export function shuffled(n: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = randomBytes(4).readUInt32BE(0) % (i + 1);
    [out[i], out[j]] = [out[j] as number, out[i] as number];
  }
  return out;
}
