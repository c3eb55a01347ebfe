import type { Bus } from "../bus/index.js";
import { LIMITS, SCHEMA_VERSION, type LogLine, type SessionLog } from "../contracts/index.js";
import type { Logger } from "../log/index.js";
import type { SessionStore } from "../store/index.js";

export interface NewLine {
  kind: LogLine["kind"];
  line: string;
  /** Identity of what the line reports; a line whose key was written before is skipped. */
  key?: string;
}

export interface SessionLogDeps {
  store: SessionStore;
  bus: Bus;
  logger: Logger;
}

/** Every line one session may have, and a little more: the stream keeps twice that per session. */
const MAX_SCAN = 2 * LIMITS.logLinesPerSession;

/**
 * The writer of one session's log lines: sequence numbers 1, 2, 3… with no gap, each line published
 * to the log stream (acknowledged by JetStream, deduplicated on its Nats-Msg-Id `log:<id>:<seq>`);
 * the archiver stores it afterwards. Opened by whichever stage owns the session; a writer opened
 * after a crash continues from the stream: its last line's seq and the keys of its lines.
 */
export class SessionLogWriter {
  /** Lines waiting for the next write, with the callers waiting for them. */
  private pending: Array<{ lines: readonly NewLine[]; done: () => void; failed: (err: unknown) => void }> = [];
  private writing = false;
  /** The lines of a write that failed: any of them may be in the stream. The next write settles them first. */
  private unconfirmed: SessionLog[] = [];

  private constructor(
    private readonly deps: SessionLogDeps,
    readonly sessionId: string,
    private lastSeq: number,
    private readonly keys: Set<string>,
  ) {}

  /**
   * `fresh`: the caller knows no writer ever wrote for this session (its first setup), so neither
   * the stream nor the store is asked for its lines. `after`: the caller knows the last line written
   * (by a writer whose keys it never writes) and that no one else writes; it continues after it.
   */
  static async open(
    deps: SessionLogDeps,
    sessionId: string,
    options: { fresh?: boolean; after?: number } = {},
  ): Promise<SessionLogWriter> {
    if (options.fresh) return new SessionLogWriter(deps, sessionId, 0, new Set());
    if (options.after !== undefined) return new SessionLogWriter(deps, sessionId, options.after, new Set());
    let lines: Array<Pick<LogLine, "seq" | "key">> = await deps.bus.readLogs(sessionId, { limit: MAX_SCAN });
    // Nothing in the stream: a new session, or (past the stream's retention, or after the stream lost
    // its data) one whose lines only the store has. Continue after those rather than reuse their seqs.
    if (lines.length === 0 && (await deps.store.lastLogSeq(sessionId)) > 0)
      lines = await deps.store.logs(sessionId, { limit: MAX_SCAN });
    const writer = new SessionLogWriter(
      deps,
      sessionId,
      lines.at(-1)?.seq ?? 0,
      new Set(lines.flatMap((l) => (l.key ? [l.key] : []))),
    );
    await writer.fillGaps(lines.map((l) => l.seq));
    return writer;
  }

  get seq(): number {
    return this.lastSeq;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /**
   * Appends in call order; resolves once the lines are in the stream. Appends made while a write is
   * in flight go out together in the next one (one round of publishes).
   */
  append(lines: readonly NewLine[]): Promise<void> {
    return new Promise<void>((done, failed) => {
      this.pending.push({ lines, done, failed });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.write(batch.flatMap((b) => b.lines));
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.failed(err);
      }
    }
    this.writing = false;
  }

  private async write(lines: readonly NewLine[]): Promise<void> {
    if (this.unconfirmed.length > 0) await this.settle();
    // A key seen before, or earlier in this batch, is skipped.
    const seen = new Set<string>();
    let fresh = lines.filter((l) => {
      if (!l.key) return true;
      if (this.keys.has(l.key) || seen.has(l.key)) return false;
      seen.add(l.key);
      return true;
    });
    // One session cannot flood the stream or the store: past the cap, one marker and then nothing.
    const room = LIMITS.logLinesPerSession - this.lastSeq;
    if (room <= 0) return;
    if (fresh.length >= room) {
      fresh = [
        ...fresh.slice(0, room - 1),
        {
          kind: "system",
          line: `[log truncated: more than ${LIMITS.logLinesPerSession} lines; the rest is not kept]`,
          key: "log:truncated",
        },
      ];
    }
    if (fresh.length === 0) return;
    const at = Date.now();
    const docs: SessionLog[] = fresh.map((l, i) => ({
      v: SCHEMA_VERSION,
      sessionId: this.sessionId,
      seq: this.lastSeq + i + 1,
      at,
      kind: l.kind,
      line: l.line.length > LIMITS.logLineChars ? `${l.line.slice(0, LIMITS.logLineChars - 12)} [truncated]` : l.line,
      ...(l.key ? { key: l.key } : {}),
    }));
    try {
      // Published together: one connection keeps their order, so the stream holds them in seq order.
      await Promise.all(docs.map((d) => this.deps.bus.publish("log", d)));
    } catch (err) {
      this.unconfirmed = docs;
      throw err;
    }
    this.confirm(docs);
  }

  private confirm(docs: readonly SessionLog[]): void {
    for (const d of docs) if (d.key) this.keys.add(d.key);
    this.lastSeq = Math.max(this.lastSeq, docs.at(-1)?.seq ?? 0);
  }

  /**
   * After a failed write some of its lines may be in the stream and others not (the ones after a
   * failed one may have landed). What the stream lacks is published again under the same ids, so
   * each line is there once and the seqs have no gap; its callers were told it failed and write
   * again what they still need, which the keys then skip.
   */
  private async settle(): Promise<void> {
    const there = new Set(
      (await this.deps.bus.readLogs(this.sessionId, { afterSeq: this.lastSeq, limit: MAX_SCAN })).map((l) => l.seq),
    );
    await Promise.all(this.unconfirmed.filter((d) => !there.has(d.seq)).map((d) => this.deps.bus.publish("log", d)));
    this.confirm(this.unconfirmed);
    this.unconfirmed = [];
  }

  /**
   * A writer that crashed between a failed write and settling it leaves a gap below its last line.
   * Readers wait for gaps to close, so each is closed with a line saying what happened.
   */
  private async fillGaps(seqs: readonly number[]): Promise<void> {
    const present = new Set(seqs);
    const missing: SessionLog[] = [];
    for (let seq = (seqs[0] ?? 1) + 1; seq < this.lastSeq; seq++) {
      if (!present.has(seq))
        missing.push({
          v: SCHEMA_VERSION,
          sessionId: this.sessionId,
          seq,
          at: Date.now(),
          kind: "system",
          line: "[line lost: its writer stopped before the stream confirmed it]",
        });
    }
    if (missing.length === 0) return;
    this.deps.logger.warn(
      { sessionId: this.sessionId, missing: missing.map((m) => m.seq) },
      "closing gaps in the session's log",
    );
    await Promise.all(missing.map((d) => this.deps.bus.publish("log", d)));
  }
}
