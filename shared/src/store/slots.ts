import type { Collection, Db } from "mongodb";
import { guarded, isDuplicateKey } from "./errors.js";

/** The `slots` collection: admission slots, `capacity` per scope, each held by one session. */
export interface SlotStore {
  /**
   * Takes one of `capacity` slots of a scope (e.g. "global", "project:p1") for a session; true when
   * it holds one (already holding counts). Unique keys make it atomic on every backend.
   */
  acquireSlot(scope: string, capacity: number, sessionId: string): Promise<boolean>;
  /** Slots of a scope in use now. */
  slotsInUse(scope: string): Promise<number>;
  /** Frees every slot the session holds. Idempotent. */
  releaseSlots(sessionId: string): Promise<void>;
  /** Hands every slot of one holder to another (a warm-pool sandbox's slot to the session that claimed it). */
  transferSlots(fromHolder: string, toHolder: string): Promise<number>;
  /** Every held slot, for the sweep that frees those of ended sessions. */
  heldSlots(): Promise<Array<{ scope: string; sessionId: string; at: number }>>;
}

type SlotDoc = { _id: string; scope: string; sessionId: string; at: number };

/** Slot n of a scope is the document `<scope>#<n>`: taking it is an insert only one caller wins. */
export class MongoSlots implements SlotStore {
  private readonly slots: Collection<SlotDoc>;

  constructor(db: Db) {
    this.slots = db.collection<SlotDoc>("slots");
  }

  async init(): Promise<void> {
    await this.slots.createIndex({ sessionId: 1 }, { name: "by_session" });
    await this.slots.createIndex({ scope: 1 }, { name: "by_scope" });
  }

  acquireSlot(scope: string, capacity: number, sessionId: string): Promise<boolean> {
    return guarded("acquireSlot", async () => {
      if (await this.slots.findOne({ scope, sessionId })) return true;
      for (let n = 0; n < capacity; n++) {
        try {
          await this.slots.insertOne({ _id: `${scope}#${n}`, scope, sessionId, at: Date.now() });
          return true;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
        }
      }
      return false;
    });
  }

  slotsInUse(scope: string): Promise<number> {
    return guarded("slotsInUse", () => this.slots.countDocuments({ scope }));
  }

  async releaseSlots(sessionId: string): Promise<void> {
    await guarded("releaseSlots", () => this.slots.deleteMany({ sessionId }));
  }

  async transferSlots(fromHolder: string, toHolder: string): Promise<number> {
    const r = await guarded("transferSlots", () =>
      this.slots.updateMany({ sessionId: fromHolder }, { $set: { sessionId: toHolder } }),
    );
    return r.modifiedCount;
  }

  async heldSlots(): Promise<Array<{ scope: string; sessionId: string; at: number }>> {
    const docs = await guarded("heldSlots", () => this.slots.find({}).limit(10_000).toArray());
    return docs.map((d) => ({ scope: d.scope, sessionId: d.sessionId, at: d.at }));
  }
}
