import type { Collection, Db } from "mongodb";
import { ApiKeyRecord } from "../auth/index.js";
import { guarded } from "./errors.js";

/** The `api_keys` collection: API key records (the hash, never the key), revoked but never deleted. */
export interface ApiKeyStore {
  saveApiKey(record: ApiKeyRecord): Promise<void>;
  apiKey(id: string): Promise<ApiKeyRecord | null>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** True when the key existed and was active. */
  revokeApiKey(id: string): Promise<boolean>;
}

type KeyDoc = Omit<ApiKeyRecord, "id"> & { _id: string };

function fromDoc({ _id, ...rest }: KeyDoc): ApiKeyRecord {
  return ApiKeyRecord.parse({ id: _id, ...rest });
}

export class MongoApiKeys implements ApiKeyStore {
  private readonly keys: Collection<KeyDoc>;

  constructor(db: Db) {
    this.keys = db.collection<KeyDoc>("api_keys");
  }

  async saveApiKey(record: ApiKeyRecord): Promise<void> {
    const { id, ...rest } = ApiKeyRecord.parse(record);
    await guarded("saveApiKey", () => this.keys.insertOne({ _id: id, ...rest }));
  }

  apiKey(id: string): Promise<ApiKeyRecord | null> {
    return guarded("apiKey", async () => {
      const doc = await this.keys.findOne({ _id: id });
      return doc ? fromDoc(doc) : null;
    });
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    return guarded("listApiKeys", async () => (await this.keys.find({}).sort({ createdAt: 1 }).toArray()).map(fromDoc));
  }

  async revokeApiKey(id: string): Promise<boolean> {
    const res = await guarded("revokeApiKey", () =>
      this.keys.updateOne({ _id: id, revokedAt: { $exists: false } }, { $set: { revokedAt: Date.now() } }),
    );
    return res.matchedCount === 1;
  }
}
