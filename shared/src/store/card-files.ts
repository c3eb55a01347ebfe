import type { Collection, Db } from "mongodb";
import { CardFile } from "../contracts/index.js";
import { guarded } from "./errors.js";

/** The `card_files` collection: the files a card's sessions leave behind, one document per path. */
export interface CardFileStore {
  /** Merges what a card's session changed into the card's saved files: upserts `files`, drops `deleted`. */
  saveCardFiles(cardId: string, files: readonly CardFile[], deleted?: readonly string[]): Promise<void>;
  cardFiles(cardId: string): Promise<CardFile[]>;
}

type CardFileDoc = CardFile & { _id: string };

export class MongoCardFiles implements CardFileStore {
  private readonly files: Collection<CardFileDoc>;

  constructor(db: Db) {
    this.files = db.collection<CardFileDoc>("card_files");
  }

  async init(): Promise<void> {
    await this.files.createIndex({ cardId: 1, path: 1 }, { name: "by_card" });
  }

  async saveCardFiles(cardId: string, files: readonly CardFile[], deleted: readonly string[] = []): Promise<void> {
    const docs = files.map((f) => ({ _id: `${cardId}:${f.path}`, ...CardFile.parse(f) }));
    await guarded("saveCardFiles", async () => {
      if (deleted.length) await this.files.deleteMany({ _id: { $in: deleted.map((p) => `${cardId}:${p}`) } });
      for (const doc of docs) await this.files.replaceOne({ _id: doc._id }, doc, { upsert: true });
    });
  }

  cardFiles(cardId: string): Promise<CardFile[]> {
    return guarded("cardFiles", async () =>
      (await this.files.find({ cardId }).sort({ path: 1 }).toArray()).map(({ _id, ...f }) => CardFile.parse(f)),
    );
  }
}
