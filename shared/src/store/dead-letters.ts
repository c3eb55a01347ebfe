import type { Collection, Db } from "mongodb";
import type { DeadLetterSink } from "../bus/index.js";
import { DeadLetter } from "../contracts/index.js";
import { guarded, isDuplicateKey, wrap } from "./errors.js";

/** The `dead_letters` collection: bus messages given up on, kept for a person to look at. */
export interface DeadLetterStore extends DeadLetterSink {
  /** Newest first. */
  deadLetters(options?: { limit?: number }): Promise<DeadLetter[]>;
}

type DeadDoc = Omit<DeadLetter, "id"> & { _id: string };

export class MongoDeadLetters implements DeadLetterStore {
  private readonly dead: Collection<DeadDoc>;

  constructor(db: Db) {
    this.dead = db.collection<DeadDoc>("dead_letters");
  }

  async init(): Promise<void> {
    await this.dead.createIndex({ at: -1 }, { name: "by_time" });
  }

  async recordDead(letter: DeadLetter): Promise<void> {
    const { id, ...rest } = DeadLetter.parse(letter);
    try {
      // The same message may be reported by a handler and by the server's advisory: keep the first.
      await this.dead.updateOne({ _id: id }, { $setOnInsert: rest }, { upsert: true });
    } catch (err) {
      if (isDuplicateKey(err)) return;
      throw wrap("recordDead", err);
    }
  }

  deadLetters(options: { limit?: number } = {}): Promise<DeadLetter[]> {
    return guarded("deadLetters", async () =>
      (
        await this.dead
          .find({})
          .sort({ at: -1 })
          .limit(options.limit ?? 100)
          .toArray()
      ).map(({ _id, ...rest }) => DeadLetter.parse({ id: _id, ...rest })),
    );
  }
}
