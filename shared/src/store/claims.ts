import type { Collection, Db } from "mongodb";
import { isDuplicateKey, wrap } from "./errors.js";

/** The `claims` collection: named, one-time claims (e.g. `<sessionId>/spawn:2`, one spawn attempt). */
export interface ClaimStore {
  /** Takes a named claim once: true for the one caller that got it. A unique insert, so atomic on every backend. */
  claim(key: string, owner: string): Promise<boolean>;
}

type ClaimDoc = { _id: string; owner: string; at: number };

export class MongoClaims implements ClaimStore {
  private readonly claims: Collection<ClaimDoc>;

  constructor(db: Db) {
    this.claims = db.collection<ClaimDoc>("claims");
  }

  async claim(key: string, owner: string): Promise<boolean> {
    try {
      await this.claims.insertOne({ _id: key, owner, at: Date.now() });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw wrap("claim", err);
    }
  }
}
