import { MongoClient, type MongoClientOptions } from "mongodb";
import { FleetError, errorMessage } from "../errors/index.js";
import type { Logger } from "../log/index.js";
import { wrap } from "./errors.js";

export interface MongoStoreConfig {
  /** Connections to the store at most (the driver's maxPoolSize); the driver's default when unset. */
  maxPoolSize?: number;
  uri: string;
  database: string;
  /** Server selection bound: how long an operation waits for an unreachable server before failing. */
  serverSelectionTimeoutMs?: number;
  appName?: string;
  /**
   * Start on a FerretDB without the fleet's changes, whose conditional updates are not atomic (see
   * checkStoreGuarantees). Only to look at data; the fleet's guarantees do not hold on it.
   */
  allowUnsafeStore?: boolean;
  /**
   * What a replica set needs, each set only when given so that the same option in the URI
   * (`?w=majority&readPreference=primary&retryWrites=true&wtimeoutMS=…`) applies otherwise.
   * docs/guarantees.md says which guarantees need which.
   */
  replicaSet?: StoreReplicaSettings;
}

export interface StoreReplicaSettings {
  /** `majority`: a write is acknowledged once most members have it, so it survives the primary's loss. */
  writeConcern?: "majority" | number | undefined;
  /** Bound of waiting for the write concern; past it the write reports an error (it may still apply). */
  writeConcernTimeoutMs?: number | undefined;
  /** `majority`: reads return only what a majority acknowledged (never a write later rolled back). */
  readConcern?: "local" | "majority" | undefined;
  /** Where reads go; compare-and-sets always go to the primary. `primary` keeps reads after writes consistent. */
  readPreference?: "primary" | "primaryPreferred" | "secondary" | "secondaryPreferred" | "nearest" | undefined;
  /** Retry a write once on a new primary after a failover (the driver's retryable writes); on by default. */
  retryWrites?: boolean | undefined;
  /** Bound of one socket read or write; unset: the driver's (none). */
  socketTimeoutMs?: number | undefined;
  connectTimeoutMs?: number | undefined;
}

/** The driver options of the replica set settings that were given. */
export function replicaOptions(r: StoreReplicaSettings = {}): MongoClientOptions {
  return {
    ...(r.writeConcern !== undefined || r.writeConcernTimeoutMs !== undefined
      ? {
          writeConcern: {
            ...(r.writeConcern !== undefined ? { w: r.writeConcern } : {}),
            ...(r.writeConcernTimeoutMs !== undefined ? { wtimeoutMS: r.writeConcernTimeoutMs } : {}),
          },
        }
      : {}),
    ...(r.readConcern ? { readConcern: { level: r.readConcern } } : {}),
    ...(r.readPreference ? { readPreference: r.readPreference } : {}),
    ...(r.retryWrites !== undefined ? { retryWrites: r.retryWrites } : {}),
    ...(r.socketTimeoutMs !== undefined ? { socketTimeoutMS: r.socketTimeoutMs } : {}),
    ...(r.connectTimeoutMs !== undefined ? { connectTimeoutMS: r.connectTimeoutMs } : {}),
  };
}

/** The first fleet build of FerretDB (infra/ferretdb-patch.ts) that makes single-document updates atomic. */
const FERRETDB_MIN_FLEET_BUILD = 2;

/**
 * Every compare-and-set of the store is one conditional findOneAndUpdate or updateOne, which is
 * only sound where a single-document update is atomic. FerretDB 1.24 as published runs
 * findAndModify and update as a read, then a separate write: two racing compare-and-sets both win
 * and concurrent increments are lost. It reports itself in buildInfo (ferretdbVersion); MongoDB
 * does not, and passes untouched.
 */
async function checkStoreGuarantees(client: MongoClient, config: MongoStoreConfig, logger: Logger): Promise<void> {
  const info = await client.db("admin").command({ buildInfo: 1 });
  const ferretdb: unknown = info.ferretdbVersion;
  if (typeof ferretdb !== "string") return;
  const build = /-fleet\.(\d+)\b/.exec(ferretdb);
  if (build && Number(build[1]) >= FERRETDB_MIN_FLEET_BUILD) return;
  const why = `the store is FerretDB ${ferretdb}, whose conditional updates are not atomic (findAndModify and update read, then write separately: racing compare-and-sets both win, concurrent increments are lost)`;
  if (config.allowUnsafeStore) {
    logger.warn({ ferretdb }, `${why}; starting anyway because allowUnsafeStore is set`);
    return;
  }
  throw new FleetError(
    "config",
    `${why}. Run ./fleet, which builds and starts the fleet's FerretDB (v1.24.2-fleet.${FERRETDB_MIN_FLEET_BUILD} or later), or point MONGODB_URI at MongoDB; FLEET_STORE_ALLOW_UNPATCHED=1 (allowUnsafeStore) starts anyway, without the fleet's guarantees`,
  );
}

/** A connected client to a store that keeps the fleet's guarantees (or a config error saying why not). */
export async function connectStore(config: MongoStoreConfig, logger: Logger): Promise<MongoClient> {
  const client = new MongoClient(config.uri, {
    serverSelectionTimeoutMS: config.serverSelectionTimeoutMs ?? 10_000,
    appName: config.appName ?? "fleet",
    retryWrites: true,
    ...replicaOptions(config.replicaSet),
    // A bounded pool queues requests in the driver (in order) rather than in the store, where
    // a single-writer backend such as FerretDB on SQLite lets waiting writers starve.
    ...(config.maxPoolSize ? { maxPoolSize: config.maxPoolSize } : {}),
  });
  try {
    await client.connect();
  } catch (err) {
    throw new FleetError("store_unavailable", `cannot reach the store: ${errorMessage(err)}`, {
      retryable: true,
      cause: err,
    });
  }
  try {
    await checkStoreGuarantees(client, config, logger);
  } catch (err) {
    await client.close().catch(() => undefined);
    throw wrap("buildInfo", err);
  }
  return client;
}
