import { MongoBulkWriteError, type Collection, type Db } from "mongodb";
import { LogLine } from "../contracts/index.js";
import { DUPLICATE_KEY, guarded, wrap } from "./errors.js";

/** The `session_logs` collection: each session's lines, gap-free from seq 1, stored once each. */
export interface LogLineStore {
  /** Stores lines once each; lines already stored (same sessionId and seq) are skipped, not errors. */
  appendLogs(lines: readonly LogLine[]): Promise<{ inserted: number }>;
  /** Lines with seq > afterSeq in order. */
  logs(sessionId: string, options?: { afterSeq?: number; limit?: number }): Promise<LogLine[]>;
  /** Highest stored seq, 0 when none. */
  lastLogSeq(sessionId: string): Promise<number>;
}

type LogDoc = LogLine & { _id: string };

/** How many log lines `logs` reads by key, round by round, before it queries for the rest. */
const KEY_READ_ROUNDS = [1, 3, 12] as const;

function withoutId<T extends { _id: unknown }>({ _id, ...rest }: T): Omit<T, "_id"> {
  return rest;
}

/** Deterministic ids: a replayed line hits its own key, so it is stored once whoever writes it. */
function logId(sessionId: string, seq: number): string {
  return `${sessionId}:${String(seq).padStart(10, "0")}`;
}

export class MongoLogLines implements LogLineStore {
  private readonly lines: Collection<LogDoc>;

  constructor(db: Db) {
    this.lines = db.collection<LogDoc>("session_logs");
  }

  async init(): Promise<void> {
    await this.lines.createIndex({ sessionId: 1, seq: 1 }, { unique: true, name: "session_seq" });
  }

  async appendLogs(lines: readonly LogLine[]): Promise<{ inserted: number }> {
    if (lines.length === 0) return { inserted: 0 };
    const docs = lines.map((l) => ({ _id: logId(l.sessionId, l.seq), ...LogLine.parse(l) }));
    try {
      const res = await this.lines.insertMany(docs, { ordered: false });
      return { inserted: res.insertedCount };
    } catch (err) {
      if (err instanceof MongoBulkWriteError) {
        const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
        if (errors.every((e) => e.code === DUPLICATE_KEY)) {
          // Only a line that is really there counts as stored: a store going down mid-batch has been
          // seen to answer with duplicate-key errors for lines it then did not keep.
          const present = await this.lines.countDocuments({ _id: { $in: docs.map((d) => d._id) } }).catch(() => -1);
          if (present === docs.length) return { inserted: err.result.insertedCount };
        }
      }
      throw wrap("appendLogs", err);
    }
  }

  /** Whether line `seq` of a session is stored: one primary-key lookup. */
  private async hasLine(sessionId: string, seq: number): Promise<boolean> {
    return (await this.lines.findOne({ _id: logId(sessionId, seq) }, { projection: { _id: 1 } })) !== null;
  }

  logs(sessionId: string, options: { afterSeq?: number; limit?: number } = {}): Promise<LogLine[]> {
    const limit = Math.min(Math.max(options.limit ?? 1_000, 1), 10_000);
    const after = options.afterSeq ?? 0;
    return guarded("logs", async () => {
      // Lines are gap-free and keyed by their seq, so the next few (the common reads: a follower
      // that is up to date or nearly, a watch taking over a session that has only its setup lines)
      // are read by key, in rounds of 1, 3 and 12 until one is missing. Only a longer run uses the
      // (sessionId, seq) query, which some stores serve by scanning every session's lines.
      const found: LogLine[] = [];
      for (const round of KEY_READ_ROUNDS) {
        const seqs = Array.from(
          { length: Math.min(round, limit - found.length) },
          (_, i) => after + found.length + 1 + i,
        );
        const docs = await Promise.all(seqs.map((seq) => this.lines.findOne({ _id: logId(sessionId, seq) })));
        const missing = docs.indexOf(null);
        for (const d of missing < 0 ? docs : docs.slice(0, missing)) if (d) found.push(LogLine.parse(withoutId(d)));
        if (missing >= 0 || found.length >= limit) return found;
      }
      const rest = await this.lines
        .find({ sessionId, seq: { $gt: after + found.length } })
        .sort({ seq: 1 })
        .limit(limit - found.length)
        .toArray();
      return [...found, ...rest.map((d) => LogLine.parse(withoutId(d)))];
    });
  }

  lastLogSeq(sessionId: string): Promise<number> {
    return guarded("lastLogSeq", async () => {
      // Gap-free from 1: double until a line is missing, then halve the interval (key lookups only).
      if (!(await this.hasLine(sessionId, 1))) return 0;
      let lo = 1;
      let hi = 2;
      while (await this.hasLine(sessionId, hi)) {
        lo = hi;
        hi *= 2;
      }
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (await this.hasLine(sessionId, mid)) lo = mid;
        else hi = mid;
      }
      return lo;
    });
  }
}
