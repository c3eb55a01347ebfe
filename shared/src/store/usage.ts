import type { AnyBulkWriteOperation, Collection, Db } from "mongodb";
import {
  ProjectDayUsage,
  SessionUsage,
  UsageCall,
  UsageTotals,
  ZERO_USAGE,
  usageDay,
  type UsageDay,
} from "../contracts/index.js";
import { guarded } from "./errors.js";

/**
 * The `usage` collection: the model gateway's ledger. Three kinds of documents, told apart by `_id`
 * and `kind`: one per call (`call:<callId>`), a running total per session (`session:<id>`) and per
 * project and UTC day (`day:<project>:<YYYY-MM-DD>`). A call is recorded with one bulk write of three
 * upserts (one `update` command, one round trip): the call's record is inserted once whatever
 * happens, and the totals grow by `$inc`, atomic per document on MongoDB and on the fleet's FerretDB.
 */
export interface UsageStore {
  /** Records one call and adds it to its session's and its project's day totals: one store operation. */
  recordUsage(call: UsageCall): Promise<void>;
  /** A session's totals, or null when it made no call through the gateway. */
  sessionUsage(sessionId: string): Promise<SessionUsage | null>;
  /** A project's totals for one day (zero when it made no call). */
  projectDayUsage(projectId: string, day: UsageDay): Promise<UsageTotals>;
  /** A project's daily totals from `from` to `to` (inclusive), oldest first; days without calls are absent. */
  projectUsage(projectId: string, from: UsageDay, to: UsageDay): Promise<ProjectDayUsage[]>;
  /** One session's call records, oldest first (at most `limit`, default 1,000). */
  usageCalls(sessionId: string, limit?: number): Promise<UsageCall[]>;
}

/** What any of the three kinds may hold (a call's record has UsageCall's fields besides). */
type UsageDoc = Partial<Omit<UsageCall, "calls">> & {
  _id: string;
  kind: "call" | "session" | "day";
  day?: string;
  calls?: number;
  firstAt?: number;
  lastAt?: number;
};

const sessionKey = (id: string): string => `session:${id}`;
const dayKey = (projectId: string, day: string): string => `day:${projectId}:${day}`;

function totals(doc: UsageDoc | null): UsageTotals {
  if (!doc) return { ...ZERO_USAGE };
  return UsageTotals.parse({
    calls: doc.calls ?? 0,
    tokensIn: doc.tokensIn ?? 0,
    tokensOut: doc.tokensOut ?? 0,
    cachedTokens: doc.cachedTokens ?? 0,
    cost: doc.cost ?? 0,
  });
}

export class MongoUsage implements UsageStore {
  private readonly docs: Collection<UsageDoc>;

  constructor(db: Db) {
    this.docs = db.collection<UsageDoc>("usage");
  }

  async init(): Promise<void> {
    await this.docs.createIndex({ kind: 1, projectId: 1, day: 1 }, { name: "by_project_day" });
    await this.docs.createIndex({ kind: 1, sessionId: 1, at: 1 }, { name: "by_session_calls" });
  }

  async recordUsage(input: UsageCall): Promise<void> {
    const call = UsageCall.parse(input);
    const day = usageDay(call.at);
    const inc = {
      calls: 1,
      tokensIn: call.tokensIn,
      tokensOut: call.tokensOut,
      cachedTokens: call.cachedTokens,
      cost: call.cost,
    };
    // All three are updates, so the driver sends them as one `update` command; unordered, so a
    // failure of one does not keep the others from being applied.
    const ops: AnyBulkWriteOperation<UsageDoc>[] = [
      {
        updateOne: {
          filter: { _id: `call:${call.callId}` },
          update: { $setOnInsert: { kind: "call", day, ...call } },
          upsert: true,
        },
      },
      {
        updateOne: {
          filter: { _id: sessionKey(call.sessionId) },
          update: {
            $inc: inc,
            $max: { lastAt: call.at },
            $min: { firstAt: call.at },
            $setOnInsert: { kind: "session", sessionId: call.sessionId, projectId: call.projectId },
          },
          upsert: true,
        },
      },
      {
        updateOne: {
          filter: { _id: dayKey(call.projectId, day) },
          update: { $inc: inc, $setOnInsert: { kind: "day", projectId: call.projectId, day } },
          upsert: true,
        },
      },
    ];
    await guarded("recordUsage", () => this.docs.bulkWrite(ops, { ordered: false }));
  }

  sessionUsage(sessionId: string): Promise<SessionUsage | null> {
    return guarded("sessionUsage", async () => {
      const doc = await this.docs.findOne({ _id: sessionKey(sessionId) });
      if (!doc) return null;
      return SessionUsage.parse({ ...totals(doc), firstAt: doc.firstAt ?? 0, lastAt: doc.lastAt ?? 0 });
    });
  }

  projectDayUsage(projectId: string, day: UsageDay): Promise<UsageTotals> {
    return guarded("projectDayUsage", async () => totals(await this.docs.findOne({ _id: dayKey(projectId, day) })));
  }

  projectUsage(projectId: string, from: UsageDay, to: UsageDay): Promise<ProjectDayUsage[]> {
    return guarded("projectUsage", async () => {
      const docs = await this.docs
        .find({ kind: "day", projectId, day: { $gte: from, $lte: to } })
        .sort({ day: 1 })
        .limit(400)
        .toArray();
      return docs.map((d) => ProjectDayUsage.parse({ ...totals(d), projectId, day: d.day }));
    });
  }

  usageCalls(sessionId: string, limit = 1_000): Promise<UsageCall[]> {
    return guarded("usageCalls", async () => {
      const docs = await this.docs.find({ kind: "call", sessionId }).sort({ at: 1 }).limit(limit).toArray();
      return docs.map(({ _id, kind, day, ...rest }) => UsageCall.parse(rest));
    });
  }
}
