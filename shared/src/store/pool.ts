import type { Collection, Db } from "mongodb";
import { guarded } from "./errors.js";

/**
 * One pooled sandbox as the store knows it (`pool` collection, `_id` = the sandbox id). Its state only
 * moves forward: starting -> warm -> claimed (or gone, when its owner kills it). A claimed entry
 * names the one session that won it; it never returns to the pool and ends with that session.
 */
export interface PoolEntry {
  sandboxId: string;
  fleet: string;
  key: string;
  /** The spawner instance that created it and keeps it (refreshes `seenAt`) while it is warm. */
  owner: string;
  state: "starting" | "warm" | "claimed";
  /** The admission slot it holds (`slots` holder id) under FLEET_MAX_SANDBOXES, until claimed or reaped. */
  slotHolder?: string;
  /** Its agent server's process, so a stuck agent can be killed on its own. */
  agentPid?: number;
  createdAt: number;
  readyAt?: number;
  seenAt: number;
  sessionId?: string;
  attempt?: number;
  projectId?: string;
  claimedAt?: number;
}

export interface PoolClaim {
  sessionId: string;
  attempt: number;
  projectId: string;
}

/** What a spawner's pool reports of itself (`pool_status`, one document per instance), for `./fleet pool`. */
export interface PoolStatus {
  fleet: string;
  owner: string;
  key: string;
  target: number;
  ready: number;
  starting: number;
  /** Since the instance started: sessions that got a pooled sandbox, and those that started cold. */
  hits: number;
  misses: number;
  failures: number;
  lastError?: string;
  at: number;
}

/** The `pool` collection: warm sandboxes per pool key, and the claims that bind them to sessions. */
export interface PoolStore {
  /** Records a sandbox being made for the pool (state starting). */
  addPoolEntry(entry: Pick<PoolEntry, "sandboxId" | "fleet" | "key" | "owner" | "slotHolder">): Promise<void>;
  /** starting -> warm (its agent answered and its workspace is bootstrapped); false when it is gone. */
  markPoolWarm(sandboxId: string, agentPid?: number): Promise<boolean>;
  /**
   * Claims the oldest warm sandbox of a key for one session: a single compare-and-set of its state
   * from warm to claimed, so of any number of racing sessions exactly one gets each sandbox. Null
   * when none is warm.
   */
  claimPooled(fleet: string, key: string, claim: PoolClaim, now?: number): Promise<PoolEntry | null>;
  poolEntry(sandboxId: string): Promise<PoolEntry | null>;
  poolEntries(
    fleet: string,
    filter?: { key?: string; owner?: string; state?: PoolEntry["state"]; sessionId?: string },
  ): Promise<PoolEntry[]>;
  /** Refreshes `seenAt` of an owner's unclaimed entries: they are still kept. */
  touchPool(fleet: string, owner: string, now?: number): Promise<void>;
  /**
   * Removes an entry, only while it is unclaimed (a claimed one is the session's record of its
   * sandbox, and goes when the session's sandbox is reaped); true when it was removed.
   */
  removeUnclaimed(sandboxId: string): Promise<boolean>;
  /** Removes an entry whatever its state (its sandbox is gone). */
  removePoolEntry(sandboxId: string): Promise<void>;
  reportPoolStatus(status: PoolStatus): Promise<void>;
  /** The latest report of every instance of a fleet, newest first. */
  poolStatuses(fleet: string): Promise<PoolStatus[]>;
}

/**
 * The holder id of the fleet-wide slot a pooled sandbox takes before it is created: it names the
 * spawner instance, so a slot its owner took but never recorded (the owner died between taking the
 * slot and recording the sandbox) can be told from one its owner is still recording.
 */
export function poolSlotHolder(owner: string, id: string): string {
  return `pool:${owner}:${id}`;
}

/** The spawner instance a pool slot holder names; undefined for any other holder. */
export function poolSlotOwner(holder: string): string | undefined {
  if (!holder.startsWith("pool:")) return undefined;
  const rest = holder.slice("pool:".length);
  const end = rest.lastIndexOf(":");
  return end > 0 ? rest.slice(0, end) : undefined;
}

type PoolDoc = Omit<PoolEntry, "sandboxId"> & { _id: string };

function entry(doc: PoolDoc): PoolEntry {
  const { _id, ...rest } = doc;
  return { sandboxId: _id, ...rest };
}

export class MongoPool implements PoolStore {
  private readonly pool: Collection<PoolDoc>;
  private readonly statuses: Collection<PoolStatus & { _id: string }>;

  constructor(db: Db) {
    this.pool = db.collection<PoolDoc>("pool");
    this.statuses = db.collection<PoolStatus & { _id: string }>("pool_status");
  }

  async reportPoolStatus(status: PoolStatus): Promise<void> {
    await guarded("reportPoolStatus", () =>
      this.statuses.replaceOne({ _id: `${status.fleet}/${status.owner}` }, status, { upsert: true }),
    );
  }

  async poolStatuses(fleet: string): Promise<PoolStatus[]> {
    const docs = await guarded("poolStatuses", () =>
      this.statuses.find({ fleet }).sort({ at: -1 }).limit(1_000).toArray(),
    );
    return docs.map(({ _id, ...rest }) => rest);
  }

  async init(): Promise<void> {
    await this.pool.createIndex({ fleet: 1, key: 1, state: 1, readyAt: 1 }, { name: "by_key_state" });
  }

  async addPoolEntry(e: Pick<PoolEntry, "sandboxId" | "fleet" | "key" | "owner" | "slotHolder">): Promise<void> {
    const now = Date.now();
    await guarded("addPoolEntry", () =>
      this.pool.insertOne({
        _id: e.sandboxId,
        fleet: e.fleet,
        key: e.key,
        owner: e.owner,
        state: "starting",
        ...(e.slotHolder ? { slotHolder: e.slotHolder } : {}),
        createdAt: now,
        seenAt: now,
      }),
    );
  }

  async markPoolWarm(sandboxId: string, agentPid?: number): Promise<boolean> {
    const now = Date.now();
    const r = await guarded("markPoolWarm", () =>
      this.pool.updateOne(
        { _id: sandboxId, state: "starting" },
        { $set: { state: "warm", readyAt: now, seenAt: now, ...(agentPid ? { agentPid } : {}) } },
      ),
    );
    return r.modifiedCount === 1;
  }

  async claimPooled(fleet: string, key: string, claim: PoolClaim, now = Date.now()): Promise<PoolEntry | null> {
    const doc = await guarded("claimPooled", () =>
      this.pool.findOneAndUpdate(
        { fleet, key, state: "warm" },
        {
          $set: {
            state: "claimed",
            sessionId: claim.sessionId,
            attempt: claim.attempt,
            projectId: claim.projectId,
            claimedAt: now,
          },
        },
        { sort: { readyAt: 1 }, returnDocument: "after" },
      ),
    );
    return doc ? entry(doc) : null;
  }

  async poolEntry(sandboxId: string): Promise<PoolEntry | null> {
    const doc = await guarded("poolEntry", () => this.pool.findOne({ _id: sandboxId }));
    return doc ? entry(doc) : null;
  }

  async poolEntries(
    fleet: string,
    filter: { key?: string; owner?: string; state?: PoolEntry["state"]; sessionId?: string } = {},
  ): Promise<PoolEntry[]> {
    const docs = await guarded("poolEntries", () =>
      this.pool
        .find({ fleet, ...filter })
        .sort({ createdAt: 1 })
        .limit(10_000)
        .toArray(),
    );
    return docs.map(entry);
  }

  async touchPool(fleet: string, owner: string, now = Date.now()): Promise<void> {
    await guarded("touchPool", () =>
      this.pool.updateMany({ fleet, owner, state: { $in: ["starting", "warm"] } }, { $set: { seenAt: now } }),
    );
  }

  async removeUnclaimed(sandboxId: string): Promise<boolean> {
    const r = await guarded("removeUnclaimed", () =>
      this.pool.deleteOne({ _id: sandboxId, state: { $in: ["starting", "warm"] } }),
    );
    return r.deletedCount === 1;
  }

  async removePoolEntry(sandboxId: string): Promise<void> {
    await guarded("removePoolEntry", () => this.pool.deleteOne({ _id: sandboxId }));
  }
}
