import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { type CommandStartedEvent, type Db, MongoClient } from "mongodb";
import { afterAll, beforeAll, inject } from "vitest";
import {
  STREAMS,
  connectBus,
  createLogger,
  streamName,
  MongoSessionStore,
  type Bus,
  type NatsBusConfig,
  type StreamKey,
} from "../../shared/src/index.js";

export const logger = createLogger({ name: "test", level: (process.env.TEST_LOG_LEVEL as "silent") ?? "silent" });

/** A namespace unique to this test file (and call), so files can run in parallel on one server. */
export function uniqueNamespace(prefix = "t"): string {
  return `${prefix}${randomBytes(4).toString("hex")}`;
}

/** A store on `database` of the run's shared server, or of the server at `uri`. */
export async function openStore(
  database: string,
  uri = inject("mongoUri"),
  options: { maxPoolSize?: number } = {},
): Promise<MongoSessionStore> {
  const store = await MongoSessionStore.connect({ uri, database, serverSelectionTimeoutMs: 5_000, ...options }, logger);
  await store.init();
  return store;
}

export async function openBus(
  namespace: string,
  options: { store?: MongoSessionStore; name?: string; config?: Partial<NatsBusConfig> } = {},
): Promise<Bus> {
  const bus = await connectBus(
    { servers: inject("natsUrl"), namespace, name: options.name ?? `test-${namespace}`, ...options.config },
    { logger, ...(options.store ? { deadLetters: options.store } : {}) },
  );
  return bus;
}

/** Deletes the namespace's streams and drops its database, on the run's shared servers. */
export async function cleanup(namespace: string, database?: string): Promise<void> {
  await deleteStreams(namespace);
  if (database) await dropDatabase(database);
}

export async function deleteStreams(namespace: string): Promise<void> {
  const nc = await connect({ servers: inject("natsUrl") });
  const jsm = await jetstreamManager(nc);
  for (const key of Object.keys(STREAMS) as StreamKey[]) {
    await jsm.streams.delete(streamName(namespace, key)).catch(() => undefined);
  }
  await nc.close();
}

export async function dropDatabase(database: string): Promise<void> {
  const client = new MongoClient(inject("mongoUri"));
  await client
    .db(database)
    .dropDatabase()
    .catch(() => undefined);
  await client.close();
}

/** Polls until `check` returns a truthy value or the bound passes. */
export async function eventually<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`condition not met in ${timeoutMs} ms${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The value, or a failed test naming what was missing. */
export function present<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`expected ${what}, found none`);
  return value;
}

/**
 * The run's store in a database of the enclosing describe's own: opened before its tests, closed
 * and dropped after them. Every call goes to the opened store (and throws before it is open); `database`
 * is the database's name.
 */
export function useStore(prefix: string): MongoSessionStore & { readonly database: string } {
  const db = uniqueNamespace(prefix);
  let store: MongoSessionStore | undefined;
  beforeAll(async () => {
    store = await openStore(db);
  });
  afterAll(async () => {
    await store?.close();
    await cleanup(db, db);
  });
  return handle("store", () => store, { database: db });
}

/**
 * One store adapter over a database of its own, on a client that records the commands sent there:
 * `sent(op)` runs `op` and answers the names of the commands it cost, in order. Opened before the
 * describe's tests; the database is dropped and the client closed after them.
 */
export function useCommandLog<T extends object>(
  prefix: string,
  open: (db: Db) => T | Promise<T>,
): { adapter: T; db: Db; sent(op: () => Promise<unknown>): Promise<string[]> } {
  const name = uniqueNamespace(prefix);
  const commands: string[] = [];
  let client: MongoClient | undefined;
  let adapter: T | undefined;
  beforeAll(async () => {
    client = new MongoClient(inject("mongoUri"), { monitorCommands: true });
    client.on("commandStarted", (e: CommandStartedEvent) => {
      if (e.databaseName === name) commands.push(e.commandName);
    });
    await client.connect();
    adapter = await open(client.db(name));
  });
  afterAll(async () => {
    await client
      ?.db(name)
      .dropDatabase()
      .catch(() => undefined);
    await client?.close();
  });
  return {
    adapter: handle("adapter", () => adapter),
    db: handle("database", () => client?.db(name)),
    async sent(op) {
      commands.length = 0;
      await op();
      return [...commands];
    },
  };
}

/**
 * A stand-in for an object a fixture opens later: every member read goes to `current()` (methods
 * bound to it) and throws while there is none yet; `fixed` members answer at once.
 */
export function handle<T extends object, F extends object = Record<never, never>>(
  what: string,
  current: () => T | undefined,
  fixed?: F,
): T & Readonly<F> {
  const opened = (): T => {
    const value = current();
    if (!value) throw new Error(`the test ${what} is not open`);
    return value;
  };
  return new Proxy({} as T & Readonly<F>, {
    get(_target, key) {
      if (fixed && Object.hasOwn(fixed, key)) return Reflect.get(fixed, key);
      const target = opened();
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
    has: (_target, key) => (fixed !== undefined && Object.hasOwn(fixed, key)) || Reflect.has(opened(), key),
  });
}

/** Runs every step, whatever failed before it; then raises the first error, if any. */
export async function runAll(steps: ReadonlyArray<() => unknown>): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps)
    await Promise.resolve()
      .then(step)
      .catch((err: unknown) => errors.push(err));
  if (errors.length > 0) throw errors[0];
}
