import type { Collection, Db } from "mongodb";
import { z } from "zod";
import { guarded, isDuplicateKey } from "./errors.js";

/**
 * The fleet-wide admission cap learned from the provider's quota answers, one document per scope
 * (`admission_caps`), shared by every spawner so all admit under the same cap. `rev` makes each
 * change a compare-and-set: of spawners reacting to the same answer, one changes it.
 */
export const LearnedCap = z.object({
  scope: z.string().min(1),
  /** Sandboxes the fleet may hold at once as learned; absent until the provider first said "limit". */
  cap: z.number().int().positive().optional(),
  /** The concurrent limit the provider's answer named, when one did: the cap is never raised past it. */
  providerLimit: z.number().int().positive().optional(),
  /** Quota answers seen, ever. */
  hits: z.number().int().nonnegative(),
  lastHitAt: z.number().optional(),
  /** When the cap last went down or up. */
  lastChangeAt: z.number(),
  lastRetryAfterMs: z.number().int().nonnegative().optional(),
  rev: z.number().int().nonnegative(),
  updatedAt: z.number(),
});
export type LearnedCap = z.infer<typeof LearnedCap>;

/** A capacity this large is no cap: acquireSlot only counts the slot (one insert, keyed by the session). */
export const UNBOUNDED_SLOTS = 100_000;

/** The `slots` collection: admission slots, `capacity` per scope, each held by one session. */
export interface SlotStore {
  /**
   * Takes one of `capacity` slots of a scope (e.g. "global", "project:p1") for a session; true when
   * it holds one (already holding counts). Unique keys make it atomic on every backend.
   */
  acquireSlot(scope: string, capacity: number, sessionId: string, projectId?: string): Promise<boolean>;
  /** Slots of a scope in use now. */
  slotsInUse(scope: string): Promise<number>;
  /**
   * Slots of a scope in use now, and how many of them each project's sessions hold (a slot taken
   * without a project, such as a warm-pool sandbox's, counts in the total only). One read.
   */
  slotsByProject(scope: string): Promise<{ total: number; byProject: Map<string, number> }>;
  /** Frees every slot the session holds. Idempotent. */
  releaseSlots(sessionId: string): Promise<void>;
  /** Hands every slot of one holder to another (a warm-pool sandbox's slot to the session that claimed it). */
  transferSlots(fromHolder: string, toHolder: string, projectId?: string): Promise<number>;
  /** Every held slot, for the sweep that frees those of ended sessions. */
  heldSlots(): Promise<Array<{ scope: string; sessionId: string; at: number }>>;
  /** The learned cap of a scope; null before the first quota answer. */
  learnedCap(scope: string): Promise<LearnedCap | null>;
  /**
   * Replaces the learned cap if it is still at revision `expectedRev` (-1: none yet); true when this
   * call changed it. The new document's revision is `expectedRev + 1`.
   */
  replaceLearnedCap(expectedRev: number, next: Omit<LearnedCap, "rev" | "updatedAt">): Promise<boolean>;
}

type SlotDoc = { _id: string; scope: string; sessionId: string; projectId?: string; at: number };
type CapDoc = Omit<LearnedCap, "scope"> & { _id: string };

/** Slot n of a scope is the document `<scope>#<n>`: taking it is an insert only one caller wins. */
export class MongoSlots implements SlotStore {
  private readonly slots: Collection<SlotDoc>;
  private readonly caps: Collection<CapDoc>;

  constructor(db: Db) {
    this.slots = db.collection<SlotDoc>("slots");
    this.caps = db.collection<CapDoc>("admission_caps");
  }

  async init(): Promise<void> {
    await this.slots.createIndex({ sessionId: 1 }, { name: "by_session" });
    await this.slots.createIndex({ scope: 1 }, { name: "by_scope" });
  }

  acquireSlot(scope: string, capacity: number, sessionId: string, projectId?: string): Promise<boolean> {
    const slot = (id: string): SlotDoc => ({
      _id: id,
      scope,
      sessionId,
      ...(projectId ? { projectId } : {}),
      at: Date.now(),
    });
    return guarded("acquireSlot", async () => {
      // No cap: the slot only counts. One insert keyed by the session (a repeat finds it there).
      if (capacity >= UNBOUNDED_SLOTS) {
        try {
          await this.slots.insertOne(slot(`${scope}@${sessionId}`));
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
        }
        return true;
      }
      if (await this.slots.findOne({ scope, sessionId })) return true;
      // From a random slot: under churn the free ones are anywhere, and the expected number of
      // inserts is 1 / (1 - the share in use) whatever the capacity.
      const start = Math.floor(Math.random() * capacity);
      for (let i = 0; i < capacity; i++) {
        const id = `${scope}#${(start + i) % capacity}`;
        try {
          await this.slots.insertOne(slot(id));
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          continue;
        }
        // Slots taken while no cap held (keyed by session) count too: past the capacity, give it back.
        if ((await this.slots.countDocuments({ scope })) <= capacity) return true;
        await this.slots.deleteOne({ _id: id });
        return false;
      }
      return false;
    });
  }

  slotsInUse(scope: string): Promise<number> {
    return guarded("slotsInUse", () => this.slots.countDocuments({ scope }));
  }

  async slotsByProject(scope: string): Promise<{ total: number; byProject: Map<string, number> }> {
    const docs = await guarded("slotsByProject", () =>
      this.slots.find({ scope }).project<{ projectId?: string }>({ _id: 0, projectId: 1 }).toArray(),
    );
    const byProject = new Map<string, number>();
    for (const d of docs) if (d.projectId) byProject.set(d.projectId, (byProject.get(d.projectId) ?? 0) + 1);
    return { total: docs.length, byProject };
  }

  async releaseSlots(sessionId: string): Promise<void> {
    await guarded("releaseSlots", () => this.slots.deleteMany({ sessionId }));
  }

  async transferSlots(fromHolder: string, toHolder: string, projectId?: string): Promise<number> {
    const r = await guarded("transferSlots", () =>
      this.slots.updateMany(
        { sessionId: fromHolder },
        { $set: { sessionId: toHolder, ...(projectId ? { projectId } : {}) } },
      ),
    );
    return r.modifiedCount;
  }

  async heldSlots(): Promise<Array<{ scope: string; sessionId: string; at: number }>> {
    const docs = await guarded("heldSlots", () => this.slots.find({}).limit(10_000).toArray());
    return docs.map((d) => ({ scope: d.scope, sessionId: d.sessionId, at: d.at }));
  }

  async learnedCap(scope: string): Promise<LearnedCap | null> {
    const doc = await guarded("learnedCap", () => this.caps.findOne({ _id: scope }));
    if (!doc) return null;
    const { _id, ...rest } = doc;
    return LearnedCap.parse({ scope: _id, ...rest });
  }

  replaceLearnedCap(expectedRev: number, next: Omit<LearnedCap, "rev" | "updatedAt">): Promise<boolean> {
    const { scope, ...fields } = LearnedCap.omit({ rev: true, updatedAt: true }).parse(next);
    const doc: CapDoc = { _id: scope, ...fields, rev: expectedRev + 1, updatedAt: Date.now() };
    return guarded("replaceLearnedCap", async () => {
      if (expectedRev < 0) {
        try {
          await this.caps.insertOne(doc);
          return true;
        } catch (err) {
          if (isDuplicateKey(err)) return false;
          throw err;
        }
      }
      const r = await this.caps.replaceOne({ _id: scope, rev: expectedRev }, doc);
      return r.modifiedCount === 1;
    });
  }
}
